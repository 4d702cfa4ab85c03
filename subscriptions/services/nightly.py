"""The nightly run: seat refresh, reconciliation, suspensions, renewals, expiry — in that
order (DOMAIN.md "Nightly jobs"), for one date, recorded as a JobRun.

Only one run at a time: a PostgreSQL advisory lock is taken for the whole run, and a
second run (another beat, a manual run) that cannot get it stops without doing
anything. Inside, every step is idempotent and row-locked, so even work that slipped
past the lock could not be done twice.

Catch-up: a run first runs, in order, every night missed since the last completed one
(a JobRun that went through all its steps). Each missed night is an ordinary night for
its own date: it folds only the usage reports dated up to that night, prices a quarter
with the paid seats the quarters before it left, and starts and resumes what was due
then. So the ledger after an outage is, by construction, the ledger of running each
night; `tests/subscriptions/test_catch_up.py` holds it to that.

No night after today: the portal does not bill the future. A simulation (`only`) is
exempt, since it runs a future timeline in a transaction it rolls back.

Steps of other apps: the subscriptions app imports none of the apps built on it, so a
step whose work belongs to one of them (expiry: approvals) gets its function from that
app's `AppConfig.ready()` through `register_step`. A run refuses to start while a step
has none.

Fan-out: given a `dispatch`, the batched steps are shared with workers (see
`fanout.py`); without one, the run works every batch itself. Either way the same
functions do the work.

Abandoned runs: a run records a heartbeat as it goes. Whoever takes the lock (the next
run, or the watchdog task) knows that no run is alive, so a job run still `running` is
one whose process stopped (killed, or its database connection lost): it is marked
`abandoned` with its last heartbeat, and its night is not completed, so the next run
does it again.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import partial
from typing import Protocol

from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Now
from django.utils import timezone

from portal.policy import SYSTEM, Actor
from subscriptions.models import JobRun
from subscriptions.services import fanout, renewals, suspensions
from subscriptions.services import reconciliations as recon
from subscriptions.services.batches import BatchedStep
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
# The steps of STEPS whose function another app registers (`register_step`).
REGISTERED_STEPS = ("expiry",)

# The steps that work in batches, which a run can share with workers.
BATCHED_STEPS: dict[str, BatchedStep] = {
    step.name: step
    for step in (
        recon.CREATE,
        recon.NOTIFY,
        recon.INVOICE,
        suspensions.START,
        suspensions.RESUME,
        renewals.RENEW,
    )
}

Progress = Callable[[str, int], None]


class StepFunction(Protocol):
    """What another app registers for a step: its counts for the night; a record that
    fails goes into `errors` and is tried again the next night."""

    def __call__(
        self, *, run_date: date, actor: Actor, errors: list[dict], only: Sequence[int] | None
    ) -> Mapping[str, int]: ...


_step_functions: dict[str, StepFunction] = {}


def register_step(name: str, function: StepFunction) -> None:
    """Make `function` the work of the nightly step `name` (one of REGISTERED_STEPS). Its
    app calls this from `AppConfig.ready()`; registering again replaces the function."""
    if name not in REGISTERED_STEPS:
        raise ValueError(
            f"{name!r} is not a nightly step another app provides; those are {REGISTERED_STEPS}"
        )
    _step_functions[name] = function


def registered_step(name: str) -> StepFunction:
    """The function registered for the step `name`."""
    try:
        return _step_functions[name]
    except KeyError:
        raise NightlyStepMissing(
            f"the nightly step {name!r} has no function: the app that does its work registers "
            "it with register_step() from its AppConfig.ready() (expiry: approvals, which "
            "must be in INSTALLED_APPS)"
        ) from None


class NightlyAlreadyRunning(Exception):
    pass


class NightlyDateInFuture(ValueError):
    pass


class NightlyStepMissing(ImproperlyConfigured):
    """A step of STEPS has no function: the app that provides it did not register one."""


class _DryRunRollback(Exception):
    pass


@dataclass
class NightlyResult:
    run_date: date
    dry_run: bool
    counts: dict[str, dict[str, int]]
    errors: list[dict]
    job_run_id: int | None
    # The missed nights this run caught up first, oldest first.
    caught_up: list[NightlyResult] = field(default_factory=list)

    @property
    def nights(self) -> list[NightlyResult]:
        return [*self.caught_up, self]

    @property
    def failed(self) -> bool:
        """Whether any night of the run recorded an error."""
        return any(night.errors for night in self.nights)


def last_completed_night() -> date | None:
    """The latest date whose nightly run went through all its steps (with or without
    errors in some of them: those are retried by the later nights)."""
    return (
        JobRun.objects.filter(status__in=[JobRun.Status.SUCCEEDED, JobRun.Status.FAILED])
        .exclude(trigger="simulation")
        .order_by("-run_date")
        .values_list("run_date", flat=True)
        .first()
    )


def nights_due(run_date: date) -> list[date]:
    """The nights a run for `run_date` works through: the ones missed since the last
    completed night, then `run_date` itself. A first run, or a rerun of a past night,
    is that night alone."""
    last = last_completed_night()
    first = run_date if last is None or last >= run_date else last + timedelta(days=1)
    return [first + timedelta(days=n) for n in range((run_date - first).days + 1)]


def _try_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [NIGHTLY_LOCK_KEY])
        return cursor.fetchone()[0]


def _unlock() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s)", [NIGHTLY_LOCK_KEY])


def job_runs_abandon_dead() -> list[int]:
    """Mark `abandoned` every job run still `running`. Only for the holder of the
    nightly lock: no run can be alive then, so these are runs whose process stopped."""
    dead = list(
        JobRun.objects.filter(status=JobRun.Status.RUNNING)
        .exclude(trigger="simulation")
        .values_list("pk", "heartbeat_at", "started_at", "step")
    )
    for pk, beat, started, step in dead:
        last = beat or started
        reason = (
            f"its process stopped during {step or 'start-up'}: no sign of life since "
            f"{timezone.localtime(last):%Y-%m-%d %H:%M:%S %Z}; the next run does the night again"
        )
        logger.warning("job run %s abandoned: %s", pk, reason)
        JobRun.objects.filter(pk=pk, status=JobRun.Status.RUNNING).update(
            status=JobRun.Status.ABANDONED, finished_at=Now(), abandoned_reason=reason
        )
    return [pk for pk, *_ in dead]


def nightly_watchdog() -> list[int]:
    """The periodic check: when no run holds the lock, runs left `running` are dead.
    Returns the job runs it marked abandoned."""
    if not _try_lock():
        return []  # a run is alive and holds the lock
    try:
        return job_runs_abandon_dead()
    finally:
        _unlock()


def nightly_run(
    *,
    run_date: date,
    dry_run: bool = False,
    trigger: str = "command",
    actor: Actor = SYSTEM,
    progress: Progress | None = None,
    only: Sequence[int] | None = None,
    dispatch: fanout.Dispatch | None = None,
    max_nights: int | None = None,
) -> NightlyResult:
    """Run every nightly step for `run_date`, after the nights missed since the last
    completed one (see the module docstring). With `dry_run`, everything happens inside
    a transaction that is rolled back: the counts say what would happen, nothing is
    written and no email leaves (emails go out only on commit).

    Refuses a `run_date` after today (portal time zone) with NightlyDateInFuture.
    `max_nights` stops after that many nights (the oldest first): the result then is
    for an earlier date than `run_date`, and the caller goes on later.

    `only` limits the run to these subscriptions (a simulation): it touches nothing
    else, runs `run_date` alone and does not take the nightly lock, so it never holds
    up the real run."""
    for name in REGISTERED_STEPS:
        registered_step(name)  # refuses before anything starts
    run = partial(_run, trigger=trigger, actor=actor, progress=progress, only=only)
    if only is not None:
        return run(run_date=run_date)
    today = timezone.localdate()
    if run_date > today:
        raise NightlyDateInFuture(
            f"{run_date} is after today ({today}); a night is run on or after its date"
        )
    if not _try_lock():
        raise NightlyAlreadyRunning(f"a nightly run is in progress; not starting {run_date}")
    try:
        job_runs_abandon_dead()
        if not dry_run:
            return _run_nights(run, run_date, trigger, dispatch, max_nights)
        holder: list[NightlyResult] = []
        try:
            with transaction.atomic():
                holder.append(_run_nights(run, run_date, trigger, None, max_nights))
                raise _DryRunRollback
        except _DryRunRollback:
            pass
        result = holder[0]
        for night in result.nights:
            night.dry_run, night.job_run_id = True, None
        return result
    finally:
        _unlock()


def _run_nights(
    run: Callable[..., NightlyResult],
    run_date: date,
    trigger: str,
    dispatch: fanout.Dispatch | None,
    max_nights: int | None,
) -> NightlyResult:
    nights = nights_due(run_date)[:max_nights]
    *missed, last = nights
    if missed or last < run_date:
        logger.warning("catching up missed nights %s .. %s", nights[0], run_date)
    label = trigger if last == run_date else f"{trigger} catch-up"
    caught_up = [
        run(run_date=day, trigger=f"{trigger} catch-up", dispatch=dispatch) for day in missed
    ]
    result = run(run_date=last, trigger=label, dispatch=dispatch)
    result.caught_up = caught_up
    return result


def _run(
    *,
    run_date: date,
    trigger: str,
    actor: Actor,
    progress: Progress | None,
    only: Sequence[int] | None,
    dispatch: fanout.Dispatch | None = None,
) -> NightlyResult:
    job = JobRun.objects.create(run_date=run_date, trigger=trigger, heartbeat_at=timezone.now())
    counts: dict[str, dict[str, int]] = {}
    errors: list[dict] = []

    def track(step: str) -> Callable[[int], None]:
        def on_batch(done: int) -> None:
            JobRun.objects.filter(pk=job.pk).update(
                progress_done=F("progress_done") + done, heartbeat_at=Now()
            )
            if progress:
                progress(step, done)

        return on_batch

    steps: dict[str, Callable[[], Mapping[str, int]]] = {
        "seat_refresh": lambda: Counter(
            refreshed=seats_refresh(run_date=run_date, actor=actor, only=only)
        ),
        "reconciliation_create": lambda: recon.reconciliations_create_due(
            run_date=run_date,
            actor=actor,
            on_batch=track("reconciliation_create"),
            errors=errors,
            only=only,
        ),
        "reconciliation_notify": lambda: recon.reconciliations_notify_due(
            run_date=run_date,
            actor=actor,
            on_batch=track("reconciliation_notify"),
            errors=errors,
            only=only,
        ),
        "reconciliation_invoice": lambda: recon.reconciliations_invoice_due(
            run_date=run_date,
            actor=actor,
            on_batch=track("reconciliation_invoice"),
            errors=errors,
            only=only,
        ),
        "suspension_start": lambda: suspensions_start_due(
            run_date=run_date,
            actor=actor,
            on_batch=track("suspension_start"),
            errors=errors,
            only=only,
        ),
        "suspension_resume": lambda: suspensions_resume_due(
            run_date=run_date,
            actor=actor,
            on_batch=track("suspension_resume"),
            errors=errors,
            only=only,
        ),
        "renewal": lambda: subscriptions_renew_due(
            run_date=run_date, actor=actor, on_batch=track("renewal"), errors=errors, only=only
        ),
    }
    for name in REGISTERED_STEPS:
        steps[name] = partial(
            registered_step(name), run_date=run_date, actor=actor, errors=errors, only=only
        )
    if dispatch is not None:
        for name, batched in BATCHED_STEPS.items():
            steps[name] = partial(
                fanout.run_step,
                batched,
                job_id=job.pk,
                run_date=run_date,
                actor=actor,
                dispatch=dispatch,
                errors=errors,
            )
    status = JobRun.Status.SUCCEEDED
    seconds: dict[str, float] = {}
    for step in STEPS:
        JobRun.objects.filter(pk=job.pk).update(step=step, progress_done=0, heartbeat_at=Now())
        started, errors_before = time.monotonic(), len(errors)
        try:
            counts[step] = dict(steps[step]())
        except Exception as exc:
            # A step that fails as a whole is recorded; the later steps still run, and
            # the next run picks up whatever this one left (every step is idempotent).
            logger.exception("nightly step %s failed for %s", step, run_date)
            errors.append({"step": step, "subscription": None, "error": str(exc)})
            status = JobRun.Status.FAILED
        seconds[step] = round(time.monotonic() - started, 3)
        new_errors = errors[errors_before:]
        _log_step(job.pk, run_date, step, counts.get(step, {}), seconds[step], new_errors)
        JobRun.objects.filter(pk=job.pk).update(counts=counts, errors=errors, step_seconds=seconds)
    if errors and status == JobRun.Status.SUCCEEDED:
        status = JobRun.Status.FAILED
    JobRun.objects.filter(pk=job.pk).update(
        status=status, step="", finished_at=timezone.now(), counts=counts, errors=errors
    )
    logger.info(
        "nightly run %s for %s %s in %.1f s",
        job.pk,
        run_date,
        status,
        sum(seconds.values()),
        extra={"job_run": job.pk, "run_date": str(run_date), "status": str(status),
               "seconds": round(sum(seconds.values()), 3), "errors": len(errors)},
    )  # fmt: skip
    return NightlyResult(
        run_date=run_date, dry_run=False, counts=counts, errors=errors, job_run_id=job.pk
    )


def _log_step(
    job_id: int,
    run_date: date,
    step: str,
    counts: Mapping[str, int],
    seconds: float,
    new_errors: list[dict],
) -> None:
    """One line a step: what it did, by outcome, how long it took, the errors it added."""
    logger.info(
        "nightly step %s for %s: %s in %.3f s",
        step,
        run_date,
        ", ".join(f"{n} {what}" for what, n in counts.items()) or "nothing",
        seconds,
        extra={
            "job_run": job_id,
            "run_date": str(run_date),
            "step": step,
            "counts": dict(counts),
            "seconds": seconds,
            "errors": len(new_errors),
        },
    )
