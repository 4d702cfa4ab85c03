"""The nightly run fanned out across workers.

The run (the coordinator) holds the nightly advisory lock for the whole night, as
always. For each batched step it writes the step's batches as `NightBatch` rows, asks
workers to help, and works batches itself too, so a night finishes even with a single
worker and never waits on one that is busy. Any process claims the next batch of the
step with `SKIP LOCKED`, for LEASE_SECONDS; a worker that dies holding one lets it go
when the lease runs out, and someone else does it. A step starts only when every batch
of the previous one is done. The work on a batch is the same function the run uses when
it works alone (`BatchedStep.batch`): idempotent and row-locked, so a batch done twice
(its worker died after the work, before it said so) charges nothing twice.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from datetime import date

from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Now

from portal.policy import Actor
from subscriptions.models import JobRun, NightBatch
from subscriptions.services.batches import BatchedStep, chunks

logger = logging.getLogger(__name__)

LEASE_SECONDS = 120
MAX_BATCH_ATTEMPTS = 3
POLL_SECONDS = 0.2
# Ask workers to help: (job run id, step name).
Dispatch = Callable[[int, str], None]


def heartbeat(job_id: int, *, done: int = 0) -> None:
    """The run is alive (and `done` more records are through)."""
    JobRun.objects.filter(pk=job_id).update(
        heartbeat_at=Now(), progress_done=F("progress_done") + done
    )


def run_step(
    step: BatchedStep,
    *,
    job_id: int,
    run_date: date,
    actor: Actor,
    dispatch: Dispatch,
    errors: list,
) -> Counter[str]:
    """Run `step` for the whole book with the help of workers; returns its counts and
    adds its record errors to `errors`."""
    ids = step.due(run_date, None)
    batches = [
        NightBatch(job_run_id=job_id, step=step.name, seq=seq, ids=list(batch))
        for seq, batch in enumerate(chunks(ids, step.size))
    ]
    NightBatch.objects.filter(job_run_id=job_id, step=step.name).delete()  # a rerun's
    NightBatch.objects.bulk_create(batches)
    for _ in range(len(batches) - 1):  # the coordinator takes a share itself
        dispatch(job_id, step.name)
    pending = NightBatch.objects.filter(job_run_id=job_id, step=step.name, status="pending")
    last_beat = time.monotonic()
    while True:
        work_batches(step, job_id=job_id, run_date=run_date, actor=actor)
        if not pending.exists():
            break
        # The rest is held by workers: wait for them, or for their leases to run out.
        if time.monotonic() - last_beat > 5:
            heartbeat(job_id)
            last_beat = time.monotonic()
        time.sleep(POLL_SECONDS)
    counts: Counter[str] = Counter()
    for batch_counts, batch_errors in NightBatch.objects.filter(
        job_run_id=job_id, step=step.name
    ).values_list("counts", "errors"):
        counts.update(batch_counts)
        errors.extend(batch_errors)
    if step.tail:
        counts += step.tail(run_date=run_date, actor=actor, only=None)
    return counts


_CLAIM = """
UPDATE {table} b SET claimed_until = clock_timestamp() + make_interval(secs => %(lease)s),
                     attempts = b.attempts + 1
WHERE b.id = (
    SELECT id FROM {table}
    WHERE job_run_id = %(job)s AND step = %(step)s AND status = 'pending'
      AND (claimed_until IS NULL OR claimed_until < clock_timestamp())
    ORDER BY seq
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING b.id, b.ids, b.attempts
"""


def _claim(job_id: int, step: str) -> tuple[int, list[int], int] | None:
    table = connection.ops.quote_name(NightBatch._meta.db_table)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            _CLAIM.format(table=table), {"lease": LEASE_SECONDS, "job": job_id, "step": step}
        )
        return cursor.fetchone()


def work_batches(step: BatchedStep, *, job_id: int, run_date: date, actor: Actor) -> int:
    """Claim and work batches of `step` until none is left to claim; returns how many
    this process did."""
    done = 0
    while claimed := _claim(job_id, step.name):
        pk, ids, attempts = claimed
        errors: list[dict] = []
        try:
            counts = step.batch(ids, run_date=run_date, actor=actor, errors=errors)
        except Exception as exc:  # the database went away, say: the batch as a whole
            logger.exception("batch %s of %s failed (attempt %d)", pk, step.name, attempts)
            if attempts < MAX_BATCH_ATTEMPTS:
                NightBatch.objects.filter(pk=pk).update(claimed_until=None)
                continue
            error = {"step": step.name, "batch": pk, "error": str(exc)[:2000]}
            NightBatch.objects.filter(pk=pk).update(
                status="failed", claimed_until=None, errors=[error], counts={"failed": len(ids)}
            )
            continue
        NightBatch.objects.filter(pk=pk).update(
            status="done", claimed_until=None, counts=dict(counts), errors=errors
        )
        heartbeat(job_id, done=len(ids))
        done += 1
    return done


def help_with(job_id: int, step_name: str, steps: dict[str, BatchedStep], actor: Actor) -> int:
    """A worker's share of a running night: the batches of `step_name` nobody holds."""
    job = JobRun.objects.filter(pk=job_id, status=JobRun.Status.RUNNING).first()
    if job is None or step_name not in steps:
        return 0  # the night is over (or was abandoned): nothing to help with
    return work_batches(steps[step_name], job_id=job_id, run_date=job.run_date, actor=actor)
