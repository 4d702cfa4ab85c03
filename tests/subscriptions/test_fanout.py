"""The night shared with workers, and runs whose process stopped: the batches are done
once each whoever does them, a worker that dies holding one delays it by its lease, and
no job run is left `running`."""

import time
from datetime import date
from decimal import Decimal

import psycopg
import pytest
from django.db import connection

from portal.policy import SYSTEM
from subscriptions.models import InvoiceLine, JobRun, Namespace, NightBatch, Reconciliation
from subscriptions.services import batches, fanout
from subscriptions.services.nightly import (
    BATCHED_STEPS,
    NIGHTLY_LOCK_KEY,
    last_completed_night,
    nightly_run,
    nightly_watchdog,
)
from tests.factories import SubscriptionFactory

Q1_END, INVOICE_DAY = date(2026, 4, 1), date(2026, 4, 8)


@pytest.fixture
def small_batches(monkeypatch):
    monkeypatch.setattr(batches, "BATCH_SIZE", 2)


def book(count: int):
    subs = SubscriptionFactory.create_batch(count)
    Namespace.objects.update(seats_in_use=110, max_seats_used=110)
    return subs


def a_worker(job_id: int, step: str) -> None:
    """A worker that takes the request at once (as the task does)."""
    fanout.help_with(job_id, step, BATCHED_STEPS, actor=SYSTEM)


def ledger() -> list:
    return sorted(
        Reconciliation.objects.values_list("subscription_id", "quarter", "status", "amount")
    )


@pytest.mark.django_db
def test_a_night_shared_with_workers_writes_the_ledger_once(small_batches):
    subs = book(7)
    asked: list[tuple[int, str]] = []

    def dispatch(job_id: int, step: str) -> None:
        asked.append((job_id, step))
        a_worker(job_id, step)

    first = nightly_run(run_date=Q1_END, dispatch=dispatch)
    nightly_run(run_date=INVOICE_DAY, dispatch=dispatch)

    assert first.counts["reconciliation_create"] == {"created": 7}
    assert first.counts["reconciliation_notify"] == {"notified": 7}
    assert ledger() == sorted((s.pk, 1, "processed", Decimal("750.00")) for s in subs)
    assert InvoiceLine.objects.filter(kind="qsr_overage").count() == 7
    # Seven records in batches of two: four batches, three of them offered to workers.
    assert asked.count((first.job_run_id, "reconciliation_create")) == 3
    assert set(NightBatch.objects.values_list("status", flat=True)) == {"done"}


@pytest.mark.django_db
def test_with_no_worker_to_help_the_run_does_every_batch_itself(small_batches):
    subs = book(5)
    nightly_run(run_date=Q1_END, dispatch=lambda job_id, step: None)
    assert len(ledger()) == len(subs)
    assert JobRun.objects.get().status == "succeeded"


@pytest.mark.django_db
def test_a_batch_held_by_a_worker_that_died_is_done_when_its_lease_runs_out(
    small_batches, monkeypatch
):
    monkeypatch.setattr(fanout, "LEASE_SECONDS", 1)
    subs = book(4)
    died_holding: list[int] = []

    def dispatch(job_id: int, step: str) -> None:
        if not died_holding:
            claimed = fanout._claim(job_id, step)  # takes a batch, then is killed
            died_holding.append(claimed[0])

    result = nightly_run(run_date=Q1_END, dispatch=dispatch)

    assert result.counts["reconciliation_create"] == {"created": 4}
    assert len(ledger()) == len(subs)
    held = NightBatch.objects.get(pk=died_holding[0])
    assert (held.status, held.attempts) == ("done", 2)


@pytest.mark.django_db
def test_a_record_that_fails_in_a_workers_batch_is_listed_in_the_job_run(small_batches):
    subs = book(3)
    Namespace.objects.filter(pk=subs[1].namespace_id).update(max_seats_used=2_147_483_647)
    from subscriptions import billing

    type(subs[1]).objects.filter(pk=subs[1].pk).update(
        annual_unit_price=billing.MAX_ANNUAL_UNIT_PRICE
    )
    result = nightly_run(run_date=Q1_END, dispatch=a_worker)
    assert result.counts["reconciliation_notify"] == {"notified": 2, "failed": 1}
    job = JobRun.objects.get(pk=result.job_run_id)
    assert job.status == "failed"
    assert [(e["step"], e["subscription"]) for e in job.errors] == [
        ("reconciliation_notify", subs[1].pk)
    ]


@pytest.mark.django_db
def test_a_run_whose_process_stopped_is_abandoned_and_its_night_done_again():
    (sub,) = book(1)
    # A run was killed on 1 April: its job run says `running`, its lock is gone.
    dead = JobRun.objects.create(run_date=Q1_END, trigger="beat", step="reconciliation_notify")

    assert nightly_watchdog() == [dead.pk]
    dead.refresh_from_db()
    assert dead.status == "abandoned"
    assert dead.abandoned_reason.startswith(
        "its process stopped during reconciliation_notify: no sign of life since"
    )
    assert dead.finished_at is not None
    assert last_completed_night() is None  # an abandoned night is not a completed one
    assert nightly_watchdog() == []

    nightly_run(run_date=Q1_END)
    assert ledger() == [(sub.pk, 1, "pending", Decimal("750.00"))]


@pytest.mark.django_db(transaction=True)
def test_the_watchdog_leaves_a_run_that_holds_the_lock_alone():
    alive = JobRun.objects.create(run_date=Q1_END, trigger="beat")
    db = connection.settings_dict
    with psycopg.connect(
        dbname=db["NAME"], user=db["USER"], host=db["HOST"], port=db["PORT"] or None
    ) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [NIGHTLY_LOCK_KEY])
        assert nightly_watchdog() == []
        alive.refresh_from_db()
        assert alive.status == "running"
    # The process holding it is gone (its connection closed): now it is dead. The
    # server lets the lock go when that backend has exited, a moment after the close.
    deadline = time.monotonic() + 10
    while (abandoned := nightly_watchdog()) == [] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert abandoned == [alive.pk]


@pytest.mark.django_db
def test_the_admin_shows_an_abandoned_run_and_why(admin_client):
    dead = JobRun.objects.create(run_date=Q1_END, trigger="beat", step="renewal")
    nightly_watchdog()

    listing = admin_client.get("/admin/subscriptions/jobrun/?status=abandoned").content.decode()
    page = admin_client.get(f"/admin/subscriptions/jobrun/{dead.pk}/change/").content.decode()

    assert "Abandoned (its process stopped)" in listing
    assert "its process stopped during renewal: no sign of life since" in page
