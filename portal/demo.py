"""`make run`: the portal with demo data, a Celery worker and beat, until Ctrl-C.

Starts the embedded PostgreSQL and Redis unless DATABASE_URL / CELERY_BROKER_URL name
real servers, migrates, loads the demo data (idempotent), then runs the web server, one
worker and beat as child processes. Ctrl-C (or SIGTERM) stops all three, and the
embedded servers if this command started them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.dev")

from portal import embedded

HOST = os.environ.get("PORTAL_HOST", "127.0.0.1")
PORT = os.environ.get("PORTAL_PORT", "8000")


def manage(*args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], check=True)


def main() -> int:
    os.chdir(embedded.BASE_DIR)
    env = dict(os.environ)
    embedded.start_needed(env)
    os.environ["CELERY_BROKER_URL"] = env["CELERY_BROKER_URL"]

    manage("migrate", "--noinput")
    manage("seed_demo")
    # Tonight's work up to now (usually nothing: the demo book is current, and nights
    # missed since the last `make run` are caught up), so the job runs page shows what a
    # run records. A night that recorded errors (exit 1) is shown there; the demo goes on.
    nightly = subprocess.run([sys.executable, "manage.py", "run_nightly", "--no-progress"])
    if nightly.returncode not in (0, 1):
        return nightly.returncode

    schedule = embedded.VAR_DIR / "celerybeat-schedule"
    commands = {
        "web": [sys.executable, "manage.py", "runserver", f"{HOST}:{PORT}", "--noreload"],
        "worker": [sys.executable, "-m", "celery", "-A", "portal", "worker",
                   "--loglevel", "INFO", "--concurrency", "2", "--hostname", "demo@%h"],
        "beat": [sys.executable, "-m", "celery", "-A", "portal", "beat",
                 "--loglevel", "INFO", "--schedule", str(schedule)],
    }  # fmt: skip
    children = {name: subprocess.Popen(cmd, env=env) for name, cmd in commands.items()}

    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    print(
        f"\nPortal running at http://{HOST}:{PORT}/  (web, Celery worker and beat)\n"
        f"Demo logins: {embedded.VAR_DIR / 'demo-logins.txt'} (printed above)\n"
        "Two-factor login: sales_ops also asks for a code. Add its two-factor secret (printed\n"
        "beside its password, third column of the file) to an authenticator app.\n"
        "Press Ctrl-C to stop everything.\n",
        flush=True,
    )
    exit_code = 0
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                print(f"{name} exited with {child.returncode}; stopping the others", flush=True)
                stopping, exit_code = True, 1
                break
        time.sleep(0.5)

    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    embedded.stop_started()
    print("Stopped.", flush=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
