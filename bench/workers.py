"""The nightly bench on real Celery workers (`bench/nightly.py --workers N`).

Starts N worker processes (one task at a time each) on a private queue of the
configured broker, against the bench database. Each night is asked for as beat does,
with `nightly_run_task`; the worker that takes it runs the night and shares the batched
steps with the others (`subscriptions/services/fanout.py`). A night's time runs from
the request to its job run's end, read from the database.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class WorkerNight:
    run_date: date
    seconds: float
    status: str
    errors: int


@dataclass
class WorkerRun:
    subscriptions: int
    workers: int
    nights: list[WorkerNight] = field(default_factory=list)
    quiet_seconds: float = 0.0

    @property
    def subs_per_second(self) -> float:
        return self.subscriptions / max(sum(n.seconds for n in self.nights), 1e-9)


@contextlib.contextmanager
def celery_workers(count: int, log_dir: Path) -> Iterator[str]:
    """`count` worker processes on a queue of their own; yields the queue's name."""
    from portal.celery import app

    queue = f"bench-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "CELERY_TASK_DEFAULT_QUEUE": queue}
    names = [f"{queue}-{n}@bench" for n in range(count)]
    procs = []
    for name in names:
        log = open(log_dir / f"{name.split('@')[0]}.log", "w")  # noqa: SIM115
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "portal", "worker", "--pool", "solo",
                 "--queues", queue, "--hostname", name, "--without-gossip",
                 "--without-mingle", "--loglevel", "WARNING"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            answered = app.control.inspect(destination=names, timeout=1).ping() or {}
            if len(answered) == count:
                break
        else:
            raise RuntimeError(f"bench: the workers did not start; see {log_dir}")
        yield queue
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def run_night(day: date, queue: str) -> WorkerNight:
    from subscriptions.models import JobRun
    from subscriptions.tasks import nightly_run_task

    started = time.perf_counter()
    nightly_run_task.apply_async(args=[day.isoformat()], queue=queue)
    done = JobRun.objects.filter(run_date=day, status__in=["succeeded", "failed"])
    while not done.exists():
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    job = done.get()
    return WorkerNight(day, seconds, job.status, len(job.errors))


def run_book_on_workers(*, n: int, workers: int, r: date, seed_book, log_dir: Path) -> WorkerRun:
    seed_book()
    run = WorkerRun(subscriptions=n, workers=workers)
    with celery_workers(workers, log_dir) as queue:
        run.nights.append(run_night(r, queue))
        started = time.perf_counter()
        for offset in range(1, 7):
            run_night(r + timedelta(days=offset), queue)
        run.quiet_seconds = time.perf_counter() - started
        run.nights.append(run_night(r + timedelta(days=7), queue))
    return run


def report(runs: list[WorkerRun]) -> None:
    print("\nThe nightly run on Celery workers (R: create + notify; R+7: invoice)")
    header = f"  {'workers':>7}  {'R (s)':>7}  {'R+7 (s)':>8}  {'R+1..6 (s)*':>11}  subs/s  status"
    print(header)
    for run in runs:
        first, last = run.nights
        status = "ok" if {first.status, last.status} == {"succeeded"} else "ERRORS"
        print(
            f"  {run.workers:>7}  {first.seconds:>7.2f}  {last.seconds:>8.2f}  "
            f"{run.quiet_seconds:>11.2f}  {run.subs_per_second:>6,.0f}  {status}"
        )
    print("  * the quiet nights, while the workers also send the night's notices (outbox)")
    if len(runs) > 1:
        base = runs[0]
        for run in runs[1:]:
            ratio = run.subs_per_second / max(base.subs_per_second, 1e-9)
            print(f"  {run.workers} workers: {ratio:.2f} x the rate of {base.workers}")
