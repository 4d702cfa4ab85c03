"""The nightly run: seat refresh, reconciliation, suspensions, renewals, expiry — in that
order (DOMAIN.md "Nightly jobs"), for one date, recorded as a JobRun.

Only one run at a time: a PostgreSQL advisory lock is taken for the whole run, and a
second run (another beat, a manual run) that cannot get it stops without doing
anything. Inside, every step is idempotent and row-locked, so even work that slipped
past the lock could not be done twice.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from approvals.services import approval_requests_expire
from subscriptions.models import JobRun
from subscriptions.services import reconciliations as recon
from subscriptions.services.renewals import subscriptions_renew_due
from subscriptions.services.seats import seats_refresh
from subscriptions.services.suspensions import suspensions_resume_due, suspensions_start_due

logger = logging.getLogger(__name__)

NIGHTLY_LOCK_KEY = 0x4E16_4781  # any constant; the same for every process of the portal
STEPS = (
    "seat_refresh",
    "reconciliation_create",
    "reconciliation_notify",
    "reconciliation_invoice",
    "suspension_start",
    "suspension_resume",
    "renewal",
    "expiry",
)

Progress = Callable[[str, int], None]


class NightlyAlreadyRunning(Exception):
    pass


class _DryRunRollback(Exception):
    pass


@dataclass
class NightlyResult:
    run_date: date
    dry_run: bool
    counts: dict[str, dict[str, int]]
    errors: list[dict]
    job_run_id: int | None


def _try_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [NIGHTLY_LOCK_KEY])
        return cursor.fetchone()[0]


def _unlock() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s)", [NIGHTLY_LOCK_KEY])


def nightly_run(
    *,
    run_date: date,
    dry_run: bool = False,
    trigger: str = "command",
    actor=None,
    progress: Progress | None = None,
    only: Sequence[int] | None = None,
) -> NightlyResult:
    """Run every nightly step for `run_date`. With `dry_run`, everything happens inside
    a transaction that is rolled back: the counts say what would happen, nothing is
    written and no email leaves (emails go out only on commit).

    `only` limits the run to these subscriptions (a simulation): it touches nothing
    else and does not take the nightly lock, so it never holds up the real run."""
    run = partial(
        _run, run_date=run_date, trigger=trigger, actor=actor, progress=progress, only=only
    )
    if only is not None:
        return run()
    if not _try_lock():
        raise NightlyAlreadyRunning(f"a nightly run is in progress; not starting {run_date}")
    try:
        if not dry_run:
            return run()
        holder: list[NightlyResult] = []
        try:
            with transaction.atomic():
                holder.append(run())
                raise _DryRunRollback
        except _DryRunRollback:
            pass
        result = holder[0]
        result.dry_run, result.job_run_id = True, None
        return result
    finally:
        _unlock()


def _run(
    *, run_date: date, trigger: str, actor, progress: Progress | None, only: Sequence[int] | None
) -> NightlyResult:
    job = JobRun.objects.create(run_date=run_date, trigger=trigger)
    counts: dict[str, dict[str, int]] = {}
    errors: list[dict] = []

    def track(step: str) -> Callable[[int], None]:
        def on_batch(done: int) -> None:
            JobRun.objects.filter(pk=job.pk).update(progress_done=F("progress_done") + done)
            if progress:
                progress(step, done)

        return on_batch

    steps: dict[str, Callable[[], Counter]] = {
        "seat_refresh": lambda: Counter(
            refreshed=seats_refresh(run_date=run_date, actor=actor, only=only)
        ),
        "reconciliation_create": lambda: recon.reconciliations_create_due(
            run_date=run_date, actor=actor, on_batch=track("reconciliation_create"), only=only
        ),
        "reconciliation_notify": lambda: recon.reconciliations_notify_due(
            run_date=run_date, actor=actor, on_batch=track("reconciliation_notify"), only=only
        ),
        "reconciliation_invoice": lambda: recon.reconciliations_invoice_due(
            run_date=run_date,
            actor=actor,
            on_batch=track("reconciliation_invoice"),
            errors=errors,
            only=only,
        ),
        "suspension_start": lambda: suspensions_start_due(
            run_date=run_date, actor=actor, on_batch=track("suspension_start"), only=only
        ),
        "suspension_resume": lambda: suspensions_resume_due(
            run_date=run_date, actor=actor, on_batch=track("suspension_resume"), only=only
        ),
        "renewal": lambda: subscriptions_renew_due(
            run_date=run_date, actor=actor, on_batch=track("renewal"), only=only
        ),
        "expiry": lambda: approval_requests_expire(run_date=run_date, actor=actor, only=only),
    }
    status = JobRun.Status.SUCCEEDED
    for step in STEPS:
        JobRun.objects.filter(pk=job.pk).update(step=step, progress_done=0)
        try:
            counts[step] = dict(steps[step]())
        except Exception as exc:
            # A step that fails as a whole is recorded; the later steps still run, and
            # the next run picks up whatever this one left (every step is idempotent).
            logger.exception("nightly step %s failed for %s", step, run_date)
            errors.append({"step": step, "subscription": None, "error": str(exc)})
            status = JobRun.Status.FAILED
        JobRun.objects.filter(pk=job.pk).update(counts=counts, errors=errors)
    if errors and status == JobRun.Status.SUCCEEDED:
        status = JobRun.Status.FAILED
    JobRun.objects.filter(pk=job.pk).update(
        status=status, step="", finished_at=timezone.now(), counts=counts, errors=errors
    )
    return NightlyResult(
        run_date=run_date, dry_run=False, counts=counts, errors=errors, job_run_id=job.pk
    )


def nightly_run_request(*, run_date: date, actor=None) -> None:
    """Ask a worker for the nightly run of `run_date`, once the caller's transaction
    commits (a request made in a transaction that rolls back is never sent)."""
    from subscriptions.tasks import nightly_run_task

    logger.info("nightly run for %s requested by %s", run_date, actor)
    transaction.on_commit(lambda: nightly_run_task.delay(run_date.isoformat()))
