"""End to end: a real Celery worker and beat, a real Redis broker (embedded unless
CELERY_BROKER_URL names one) and the test PostgreSQL database."""

import uuid

import pytest
from django.utils import timezone

from portal.celery import app as celery_app
from subscriptions import billing
from subscriptions.models import InvoiceLine, JobRun, Reconciliation
from subscriptions.tasks import nightly_run_task
from tests.factories import SubscriptionFactory
from tests.processes import start, stop, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker_queue(tmp_path):
    queue = f"e2e-{uuid.uuid4().hex[:8]}"
    worker = start(
        ["worker", "--pool", "solo", "--loglevel", "INFO", "--queues", queue,
         "--without-gossip", "--without-mingle", "--hostname", f"{queue}@%h"],
        queue,
        tmp_path,
    )  # fmt: skip
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    yield queue, worker
    celery_app.conf.task_always_eager = eager
    stop(worker)


def test_a_real_worker_runs_the_nightly_task_and_invoices(worker_queue, tmp_path):
    queue, _ = worker_queue
    sub = SubscriptionFactory()
    sub.namespace.seats_in_use = sub.namespace.max_seats_used = 110
    sub.namespace.save()

    nightly_run_task.apply_async(args=["2026-04-01"], queue=queue)
    wait_for(
        lambda: Reconciliation.objects.filter(subscription=sub, status="pending").exists(),
        seconds=90,
        what="the reconciliation to be notified",
        logs=tmp_path,
    )
    nightly_run_task.apply_async(args=["2026-04-08"], queue=queue)
    wait_for(
        lambda: InvoiceLine.objects.filter(reconciliation__subscription=sub).exists(),
        seconds=60,
        what="the reconciliation to be invoiced",
        logs=tmp_path,
    )
    recon = Reconciliation.objects.get(subscription=sub)
    assert recon.status == "processed"
    assert str(InvoiceLine.objects.get(reconciliation=recon).amount) == "750.00"
    # The invoice commits mid-run; the run's later steps (suspensions, renewals, expiry)
    # finish a moment after.
    wait_for(
        lambda: not JobRun.objects.filter(status="running").exists(),
        seconds=30,
        what="the nightly run to finish",
        logs=tmp_path,
    )
    assert set(JobRun.objects.values_list("status", flat=True)) == {"succeeded"}


def test_beat_triggers_the_nightly_run_on_a_worker(worker_queue, tmp_path):
    queue, _ = worker_queue
    today = timezone.localdate()
    # A subscription whose first quarter ends today, so tonight's run has work.
    sub = SubscriptionFactory(
        term_start=billing.add_months(today, -3),
        term_end=billing.add_months(today, 9),
    )
    sub.namespace.seats_in_use = sub.namespace.max_seats_used = 104
    sub.namespace.save()
    beat = start(
        ["beat", "--loglevel", "INFO", "--schedule", str(tmp_path / "beat-schedule")],
        queue,
        tmp_path,
        NIGHTLY_RUN_EVERY_SECONDS="2",
    )
    try:
        wait_for(
            lambda: (
                JobRun.objects.filter(run_date=today, trigger="beat").exists()
                and Reconciliation.objects.filter(subscription=sub).exists()
            ),
            seconds=90,
            what="beat's nightly run",
            logs=tmp_path,
        )
    finally:
        stop(beat)
    recon = Reconciliation.objects.get(subscription=sub)
    assert recon.status == "pending" and recon.overage_seats == 4
    assert recon.reconciliation_date <= today
