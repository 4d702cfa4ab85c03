"""Celery tasks: thin wrappers that take a date or ids and call the services.

Every task has a time limit, and every one is safe to run twice (README "Workers"):
`acks_late` with `reject_on_worker_lost` (settings) puts a task whose worker died back
on the queue, and the broker's visibility timeout is above the longest time limit, so a
task still running is never handed to a second worker.
"""

from __future__ import annotations

import logging
from datetime import date

from celery import shared_task
from django.conf import settings
from django.db import OperationalError, transaction
from django.db.models import Max
from django.utils import timezone

from portal.policy import SYSTEM, Actor
from subscriptions.models import JobRun
from subscriptions.services import fanout
from subscriptions.services.nightly import (
    BATCHED_STEPS,
    NightlyAlreadyRunning,
    last_completed_night,
    nightly_run,
    nightly_watchdog,
)

logger = logging.getLogger(__name__)


def _help(job_id: int, step: str) -> None:
    nightly_batch_task.delay(job_id, step)


@shared_task(
    bind=True,
    autoretry_for=(OperationalError,),  # the database went away for a moment
    retry_backoff=30,
    retry_backoff_max=600,
    max_retries=5,
    soft_time_limit=settings.NIGHTLY_TASK_TIME_LIMIT - 60,
    time_limit=settings.NIGHTLY_TASK_TIME_LIMIT,
)
def nightly_run_task(self, run_date: str | None = None) -> dict:
    """The nightly run for `run_date` (ISO date; default: today in the portal's zone),
    after the nights missed since the last completed one: one night per task, the next
    in a new task, so that no task runs longer than its time limit."""
    day = date.fromisoformat(run_date) if run_date else timezone.localdate()
    last = last_completed_night()
    if run_date and last and day <= last:
        # A request met twice (redelivered after its worker died, say): already done.
        return {"run_date": day.isoformat(), "already_done": True}
    try:
        result = nightly_run(
            run_date=day,
            trigger="beat" if not run_date else "task",
            actor=SYSTEM,
            dispatch=_help,
            max_nights=1,
        )
    except NightlyAlreadyRunning as exc:
        # Another run (a manual one, say) holds the lock: come back later rather than
        # lose the night; whatever that run did is not done twice.
        raise self.retry(exc=exc, countdown=300, max_retries=12) from exc
    if result.run_date < day:
        nightly_run_task.delay(day.isoformat())  # the next missed night
    return {"run_date": result.run_date.isoformat(), "job_run": result.job_run_id}


@shared_task(
    soft_time_limit=settings.NIGHTLY_BATCH_TIME_LIMIT - 30,
    time_limit=settings.NIGHTLY_BATCH_TIME_LIMIT,
)
def nightly_batch_task(job_run_id: int, step: str) -> int:
    """A worker's share of a running night: the batches of `step` nobody holds."""
    return fanout.help_with(job_run_id, step, BATCHED_STEPS, SYSTEM)


@shared_task(soft_time_limit=50, time_limit=60)
def nightly_watchdog_task() -> dict:
    """Mark runs whose process stopped `abandoned`, and start the night again."""
    abandoned = nightly_watchdog()
    if abandoned:
        # Its night again (and, through the catch-up, any missed before it).
        day = JobRun.objects.filter(pk__in=abandoned).aggregate(day=Max("run_date"))["day"]
        nightly_run_task.delay(day.isoformat())
    return {"abandoned": abandoned}


def nightly_run_request(*, run_date: date, actor: Actor) -> None:
    """Ask a worker for the nightly run of `run_date`, once the caller's transaction
    commits (a request made in a transaction that rolls back is never sent)."""
    logger.info("nightly run for %s requested by %s", run_date, actor)
    transaction.on_commit(lambda: nightly_run_task.delay(run_date.isoformat()))
