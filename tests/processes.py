"""Real worker and beat processes for the end-to-end tests: started against the test
database and the configured broker, on a private queue, and stopped again."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from django.conf import settings

from tests.assertions import database_url


def start(
    args: list[str], queue: str, tmp_path, *, broker: str | None = None, **extra_env
) -> subprocess.Popen:
    """`celery -A portal ARGS` in a session of its own (so that the whole worker, main
    process and children, can be killed at once), logging to tmp_path."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings.dev",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": broker or settings.CELERY_BROKER_URL,
        # A private queue: a demo worker on the same broker never takes these tasks.
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        **extra_env,
    }
    name = f"{args[0]}-{len(list(tmp_path.glob('*.log')))}"
    log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "portal", *args],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_for(predicate, *, seconds: float, what: str, logs, every: float = 0.25) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    output = "\n".join(p.read_text()[-3000:] for p in logs.glob("*.log"))
    pytest.fail(f"timed out waiting for {what}; process output:\n{output}")


def stop(*procs: subprocess.Popen) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
