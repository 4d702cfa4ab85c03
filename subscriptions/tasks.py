"""Celery tasks: thin wrappers that take a date and call the services."""

from __future__ import annotations

from datetime import date

from celery import shared_task
from django.db import OperationalError
from django.utils import timezone

from subscriptions.services.nightly import NightlyAlreadyRunning, nightly_run


@shared_task(
    bind=True,
    acks_late=True,  # every step is idempotent: a run lost with its worker is redone
    autoretry_for=(OperationalError,),  # the database went away for a moment
    retry_backoff=30,
    retry_backoff_max=600,
    max_retries=5,
)
def nightly_run_task(self, run_date: str | None = None) -> dict:
    """The nightly run for `run_date` (ISO date; default: today in the portal's zone)."""
    day = date.fromisoformat(run_date) if run_date else timezone.localdate()
    try:
        result = nightly_run(run_date=day, trigger="beat" if not run_date else "task")
    except NightlyAlreadyRunning as exc:
        # Another run (a manual one, say) holds the lock: come back later rather than
        # lose the night; whatever that run did is not done twice.
        raise self.retry(exc=exc, countdown=300, max_retries=12) from exc
    return {"run_date": day.isoformat(), "job_run": result.job_run_id, "counts": result.counts}
