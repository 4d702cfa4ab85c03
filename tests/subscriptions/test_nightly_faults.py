"""The nightly run off the happy path: a bad record, a cancelled subscription, a date
after today, and the exit codes of `run_nightly` that tell an operator what happened."""

import os
import subprocess
import sys
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from subscriptions import billing
from subscriptions.models import (
    Invoice,
    InvoiceLine,
    JobRun,
    Namespace,
    Reconciliation,
    Subscription,
    Suspension,
)
from subscriptions.services import batches
from subscriptions.services import reconciliations as recon_services
from subscriptions.services.nightly import NIGHTLY_LOCK_KEY, nightly_run
from tests.assertions import database_url
from tests.factories import SubscriptionFactory, SuspensionFactory

Q1_END = date(2026, 4, 1)
INVOICE_DAY = date(2026, 4, 8)
ROOT = Path(__file__).resolve().parents[2]


def book(count: int, *, over: int = 10) -> list[Subscription]:
    subs = SubscriptionFactory.create_batch(count)
    Namespace.objects.update(seats_in_use=100 + over, max_seats_used=100 + over)
    return subs


def unpriceable(sub: Subscription) -> None:
    """A record whose quarter cannot be priced: a high-water mark (written around the
    usage import's checks) that makes the amount overflow the money columns."""
    Subscription.objects.filter(pk=sub.pk).update(annual_unit_price=billing.MAX_ANNUAL_UNIT_PRICE)
    Namespace.objects.filter(pk=sub.namespace_id).update(max_seats_used=2_147_483_647)


@pytest.mark.django_db
def test_one_unpriceable_subscription_fails_alone_and_the_rest_is_billed(monkeypatch):
    monkeypatch.setattr(batches, "BATCH_SIZE", 2)
    subs = book(5)
    bad = subs[1]  # in the first batch, with a good one
    unpriceable(bad)

    result = nightly_run(run_date=Q1_END)

    assert result.counts["reconciliation_notify"] == {"notified": 4, "failed": 1}
    failed = Reconciliation.objects.get(subscription=bad)
    assert (failed.status, failed.amount, failed.attempts) == ("failed", None, 1)
    assert "numeric field overflow" in failed.failure_reason
    assert failed.history.latest().history_change_reason == "pricing failed"
    others = Reconciliation.objects.exclude(subscription=bad)
    assert set(others.values_list("status", "amount")) == {("pending", Decimal("750.00"))}
    job = JobRun.objects.get(pk=result.job_run_id)
    assert job.status == "failed"
    assert [(e["step"], e["subscription"], e["reconciliation"]) for e in job.errors] == [
        ("reconciliation_notify", bad.pk, failed.pk)
    ]

    nightly_run(run_date=INVOICE_DAY)  # the rest is invoiced; the bad one is retried
    assert InvoiceLine.objects.filter(kind="qsr_overage").count() == 4
    failed.refresh_from_db()
    # Retried on 2 and 3 April (caught up on the way to the invoice day), then left.
    assert (failed.status, failed.attempts) == ("failed", recon_services.MAX_ATTEMPTS)


@pytest.mark.django_db
def test_a_failed_pricing_is_retried_and_billed_once_the_data_is_fixed():
    (sub,) = book(1)
    unpriceable(sub)
    nightly_run(run_date=Q1_END)
    Subscription.objects.filter(pk=sub.pk).update(annual_unit_price=Decimal("100.00"))
    Namespace.objects.filter(pk=sub.namespace_id).update(max_seats_used=110)

    nightly_run(run_date=date(2026, 4, 2))
    recon = Reconciliation.objects.get()
    assert (recon.status, recon.amount, recon.failure_reason) == ("pending", Decimal("750"), "")
    nightly_run(run_date=INVOICE_DAY)
    recon.refresh_from_db()
    assert recon.status == "processed"
    assert Invoice.objects.get().lines.get().amount == Decimal("750.00")


@pytest.mark.django_db
def test_a_pricing_that_keeps_failing_stops_after_three_attempts():
    (sub,) = book(1)
    unpriceable(sub)
    for day in range(1, 7):
        nightly_run(run_date=date(2026, 4, day))
    recon = Reconciliation.objects.get()
    assert (recon.status, recon.attempts) == ("failed", recon_services.MAX_ATTEMPTS)
    assert not JobRun.objects.filter(run_date=date(2026, 4, 6), status="failed").exists()


@pytest.mark.django_db
def test_a_renewal_that_fails_does_not_hold_up_the_others(monkeypatch):
    from subscriptions.services import renewals

    subs = SubscriptionFactory.create_batch(
        3, term_start=date(2025, 3, 1), term_end=date(2026, 3, 1)
    )
    real = renewals._renew

    def renew(sub, *, actor):
        if sub.pk == subs[0].pk:
            raise RuntimeError("ledger refused")
        return real(sub, actor=actor)

    monkeypatch.setattr(renewals, "_renew", renew)
    result = nightly_run(run_date=date(2026, 3, 1))
    assert result.counts["renewal"]["renewed"] == 2
    assert result.counts["renewal"]["failed"] == 1
    assert {(e["step"], e["subscription"]) for e in result.errors} == {("renewal", subs[0].pk)}
    terms = dict(Subscription.objects.values_list("pk", "term_start"))
    assert terms == {subs[0].pk: date(2025, 3, 1), **{s.pk: date(2026, 3, 1) for s in subs[1:]}}


@pytest.mark.django_db
def test_the_nightly_steps_leave_a_cancelled_subscription_alone():
    (sub,) = book(1)
    SuspensionFactory(
        subscription=sub, suspend_date=date(2026, 3, 10), resume_date=date(2026, 5, 1)
    )
    suspended = SubscriptionFactory()
    SuspensionFactory(
        subscription=suspended,
        suspend_date=date(2026, 3, 1),
        resume_date=date(2026, 3, 20),
        status="active",
    )
    nightly_run(run_date=date(2026, 2, 28))
    Subscription.objects.filter(status="active").update(status="cancelled")
    Subscription.objects.filter(pk=suspended.pk).update(status="cancelled")

    for day in (date(2026, 3, 10), date(2026, 3, 20), Q1_END, INVOICE_DAY):
        nightly_run(run_date=day)

    assert set(Subscription.objects.values_list("status", flat=True)) == {"cancelled"}
    assert set(Suspension.objects.values_list("status", flat=True)) == {"scheduled", "active"}
    assert not Invoice.objects.exists()  # no credit of the rest of the term, no charge
    assert not Reconciliation.objects.exists()


@pytest.mark.django_db
def test_a_scheduled_reconciliation_of_a_cancelled_subscription_is_not_priced():
    (sub,) = book(1)
    nightly_run(run_date=date(2026, 3, 31))
    nightly_run(run_date=Q1_END)
    Subscription.objects.filter(pk=sub.pk).update(status="cancelled")
    Reconciliation.objects.update(status="scheduled", amount=None, notify_date=date(2026, 4, 2))
    nightly_run(run_date=date(2026, 4, 2))
    assert Reconciliation.objects.get().status == "scheduled"


# --- run_nightly: refusals and exit codes ------------------------------------------------


@pytest.mark.django_db
def test_run_nightly_refuses_a_date_after_today_and_writes_nothing(capsys):
    SubscriptionFactory()
    tomorrow = timezone.localdate() + timedelta(days=1)
    with pytest.raises(CommandError, match=f"{tomorrow} is after today") as refused:
        call_command("run_nightly", "--date", tomorrow.isoformat(), "--no-progress")
    assert refused.value.returncode == 2
    past = timezone.localdate() - timedelta(days=2)
    with pytest.raises(CommandError) as refused:
        call_command("run_nightly", "--date", past.isoformat(), "--until", tomorrow.isoformat())
    assert refused.value.returncode == 2
    assert not JobRun.objects.exists()


@pytest.mark.django_db
def test_run_nightly_exits_1_when_a_night_recorded_errors(capsys):
    (sub,) = book(1)
    unpriceable(sub)
    with pytest.raises(CommandError, match="errors were recorded") as failed:
        call_command("run_nightly", "--date", Q1_END.isoformat(), "--no-progress")
    assert failed.value.returncode == 1
    assert "reconciliation_notify" in capsys.readouterr().err


@pytest.mark.django_db
def test_run_nightly_exits_0_and_lists_the_caught_up_nights(capsys):
    book(1)
    call_command("run_nightly", "--date", "2026-03-30", "--no-progress")
    call_command("run_nightly", "--date", "2026-04-02", "--no-progress")
    out = capsys.readouterr().out
    assert "for 2026-03-31 (a missed night, caught up)" in out
    assert "for 2026-04-01 (a missed night, caught up)" in out
    assert "reconciliation_notify    notified 1" in out


@pytest.mark.django_db(transaction=True)
def test_run_nightly_exits_3_while_another_run_holds_the_lock():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [NIGHTLY_LOCK_KEY])
    env = {**os.environ, "DATABASE_URL": database_url()}
    try:
        done = _run_nightly_process(env)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [NIGHTLY_LOCK_KEY])
    assert done.returncode == 3, done.stderr
    assert "a nightly run is in progress" in done.stderr


def test_run_nightly_exits_2_for_a_malformed_date():
    env = {**os.environ, "DATABASE_URL": "postgres://portal@127.0.0.1:9/portal"}
    done = _run_nightly_process(env, "--date", "2026-13-01")
    assert done.returncode == 2
    assert "not a date (YYYY-MM-DD): '2026-13-01'" in done.stderr


def test_run_nightly_exits_4_with_one_line_when_the_database_is_unreachable():
    env = {**os.environ, "DATABASE_URL": "postgres://portal@127.0.0.1:9/portal"}
    done = _run_nightly_process(env)
    assert done.returncode == 4
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("CommandError: the database cannot be reached")


def _run_nightly_process(env: dict, *args: str) -> subprocess.CompletedProcess:
    env = {**env, "DJANGO_SETTINGS_MODULE": "portal.settings.test"}
    return subprocess.run(
        [sys.executable, "manage.py", "run_nightly", "--no-progress", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
