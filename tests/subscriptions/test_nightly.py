"""The nightly engine as its users rely on it: never twice, never lost, safe to race."""

import threading
from datetime import date
from decimal import Decimal

import psycopg
import pytest
from django.core import mail
from django.db import connection, transaction

from portal.policy import SYSTEM
from subscriptions import billing
from subscriptions.models import (
    Invoice,
    InvoiceLine,
    JobRun,
    Namespace,
    Reconciliation,
    Subscription,
)
from subscriptions.services import batches, nightly
from subscriptions.services import reconciliations as recon_services
from subscriptions.services.nightly import (
    NIGHTLY_LOCK_KEY,
    NightlyAlreadyRunning,
    NightlyStepMissing,
    nightly_run,
)
from subscriptions.services.reconciliations import invoice as invoice_step
from subscriptions.tasks import nightly_run_request
from tests.factories import (
    SeatUsageReportFactory,
    SelfManagedNamespaceFactory,
    SubscriptionFactory,
    UserFactory,
)

Q1_END = date(2026, 4, 1)
INVOICE_DAY = date(2026, 4, 8)


def book(count: int, *, over: int = 10) -> list[Subscription]:
    """`count` QSR subscriptions of 100 seats whose namespaces peaked at 100 + over."""
    subs = SubscriptionFactory.create_batch(count)
    for sub in subs:
        sub.namespace.seats_in_use = sub.namespace.max_seats_used = 100 + over
        sub.namespace.save()
    return subs


def ledger() -> dict:
    return {
        "reconciliations": sorted(
            Reconciliation.objects.values_list("subscription_id", "quarter", "status", "amount")
        ),
        "lines": sorted(InvoiceLine.objects.values_list("reconciliation_id", "kind", "amount")),
        "invoices": Invoice.objects.count(),
        "seats": sorted(Subscription.objects.values_list("pk", "seats")),
    }


@pytest.mark.django_db
def test_a_quarter_end_notifies_then_invoices_a_week_later():
    (sub,) = book(1)
    first = nightly_run(run_date=Q1_END)
    recon = Reconciliation.objects.get(subscription=sub)
    assert recon.status == "pending"
    assert recon.amount == Decimal("750.00")
    assert first.counts["reconciliation_notify"] == {"notified": 1}

    nightly_run(run_date=INVOICE_DAY)
    recon.refresh_from_db()
    sub.refresh_from_db()
    assert recon.status == "processed"
    assert sub.seats == 110
    line = InvoiceLine.objects.get(reconciliation=recon)
    assert (line.kind, line.quantity, line.amount) == ("qsr_overage", 10, Decimal("750.00"))
    assert line.invoice.issue_date == INVOICE_DAY


@pytest.mark.django_db
def test_the_notice_tells_the_billing_contact_seats_amount_and_invoice_date(
    django_capture_on_commit_callbacks,
):
    (sub,) = book(1)
    with django_capture_on_commit_callbacks(execute=True):
        nightly_run(run_date=Q1_END)
    (notice,) = mail.outbox
    assert notice.to == [sub.customer.billing_email]
    assert "USD 750.00" in notice.subject and "2026-04-08" in notice.subject
    assert "110 seats" in notice.body and "10 more than the 100 seats" in notice.body


@pytest.mark.django_db
def test_no_overage_is_processed_at_zero_with_no_notice_and_no_invoice(
    django_capture_on_commit_callbacks,
):
    (sub,) = book(1, over=0)
    with django_capture_on_commit_callbacks(execute=True):
        nightly_run(run_date=Q1_END)
        nightly_run(run_date=INVOICE_DAY)
    recon = Reconciliation.objects.get(subscription=sub)
    assert (recon.status, recon.amount) == ("processed", Decimal("0.00"))
    assert mail.outbox == []
    assert not InvoiceLine.objects.filter(kind="qsr_overage").exists()


@pytest.mark.django_db
def test_self_managed_notice_six_days_late_and_invoice_a_week_after():
    sub = SubscriptionFactory(
        namespace=SelfManagedNamespaceFactory(seats_in_use=120, max_seats_used=120)
    )
    sub.namespace.customer = sub.customer
    sub.namespace.save()
    nightly_run(run_date=Q1_END)
    recon = Reconciliation.objects.get(subscription=sub)
    assert (recon.status, recon.notify_date) == ("scheduled", date(2026, 4, 7))
    nightly_run(run_date=date(2026, 4, 7))
    recon.refresh_from_db()
    assert (recon.status, recon.invoice_date) == ("pending", date(2026, 4, 14))
    nightly_run(run_date=date(2026, 4, 14))
    recon.refresh_from_db()
    assert recon.status == "processed" and recon.amount == Decimal("1500.00")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"qsr_state": "disabled_for_bug", "qsr_bug_url": "https://bugs.example.com/1"},
         "disabled_for_bug"),
        ({"qsr_state": "paused", "qsr_paused_until": date(2026, 6, 30)}, "paused"),
        ({"channel": "reseller"}, "ineligible"),
        ({"status": "suspended"}, None),
    ],
)  # fmt: skip
def test_every_quarter_end_gets_a_record_even_when_skipped(change, reason):
    (sub,) = book(1)
    Subscription.objects.filter(pk=sub.pk).update(**change)
    if change.get("status") == "suspended":
        sub.suspensions.create(
            suspend_date=date(2026, 3, 1), resume_date=date(2026, 5, 1), status="active",
            ticket_url="https://tickets.example.com/9",
        )  # fmt: skip
        reason = "suspended"
    nightly_run(run_date=Q1_END)
    recon = Reconciliation.objects.get(subscription=sub)
    assert (recon.status, recon.skip_reason) == ("skipped", reason)
    assert not InvoiceLine.objects.filter(kind="qsr_overage").exists()


@pytest.mark.django_db
def test_a_pending_reconciliation_of_a_subscription_paused_before_invoicing_is_skipped():
    (sub,) = book(1)
    nightly_run(run_date=Q1_END)
    Subscription.objects.filter(pk=sub.pk).update(
        qsr_state="paused", qsr_paused_until=date(2026, 5, 1)
    )
    nightly_run(run_date=INVOICE_DAY)
    recon = Reconciliation.objects.get(subscription=sub)
    assert (recon.status, recon.skip_reason) == ("skipped", "paused")
    assert not Invoice.objects.filter(idempotency_key=f"qsr:{recon.pk}").exists()


@pytest.mark.django_db
def test_the_quarter_peak_is_the_highest_report_of_the_quarter_capped_by_the_mark():
    later, reset, silent = book(3)

    def report(sub, day, users):
        SeatUsageReportFactory(namespace=sub.namespace, date=day, billable_users=users)

    # Usage after the quarter end raised the mark: it belongs to the next quarter.
    report(later, date(2026, 2, 10), 115)
    report(later, date(2026, 3, 31), 112)
    report(later, Q1_END, 120)
    # A max seats reset lowered the mark below the quarter's reports: the mark wins.
    report(reset, date(2026, 3, 1), 130)
    Namespace.objects.filter(pk=later.namespace_id).update(seats_in_use=120, max_seats_used=120)
    Namespace.objects.filter(pk=reset.namespace_id).update(seats_in_use=100, max_seats_used=112)
    nightly_run(run_date=Q1_END)

    peaks = dict(Reconciliation.objects.values_list("subscription_id", "max_seats_used"))
    # The namespace without reports keeps its recorded mark (110).
    assert peaks == {later.pk: 115, reset.pk: 112, silent.pk: 110}


@pytest.mark.django_db
def test_every_record_a_night_changes_has_a_history_row_with_who_and_why():
    invoiced, no_overage, paused = book(3)
    Namespace.objects.filter(pk=no_overage.namespace_id).update(seats_in_use=90, max_seats_used=90)
    actor = UserFactory()
    Subscription.objects.filter(pk=paused.pk).update(qsr_state="paused", qsr_paused_until=Q1_END)
    nightly_run(run_date=Q1_END, actor=actor)
    nightly_run(run_date=INVOICE_DAY, actor=actor)

    def trail(obj) -> list[tuple]:
        return [
            (h.history_type, h.history_user, h.history_change_reason)
            for h in obj.history.order_by("history_id")
        ]

    created, notified = f"nightly {Q1_END}", f"nightly {INVOICE_DAY}"
    recons = {r.subscription_id: r for r in Reconciliation.objects.all()}
    assert trail(recons[invoiced.pk]) == [
        ("+", actor, created), ("~", actor, created), ("~", actor, notified),
    ]  # fmt: skip
    assert trail(recons[no_overage.pk]) == [("+", actor, created), ("~", actor, created)]
    assert trail(recons[paused.pk]) == [("+", actor, created)]  # skipped when created
    # The latest history row is the record as it stands.
    fields = ["status", "skip_reason", "seats_paid", "max_seats_used", "overage_seats",
              "annual_unit_price", "amount", "notified_at", "invoiced_at", "attempts"]  # fmt: skip
    for recon in recons.values():
        latest = recon.history.order_by("history_id").last()
        assert [getattr(latest, f) for f in fields] == [getattr(recon, f) for f in fields]
    invoice = Invoice.objects.get()
    assert trail(invoice) == [("+", actor, notified)]
    assert trail(invoice.lines.get()) == [("+", actor, notified)]
    invoiced.refresh_from_db()
    assert trail(invoiced)[-1] == ("~", actor, f"QSR overage invoiced ({notified})")
    assert invoiced.history.order_by("history_id").last().seats == invoiced.seats == 110
    assert no_overage.history.count() == 1  # its creation: no seats added


@pytest.mark.django_db
@pytest.mark.parametrize("nightly", [True, False], ids=["each night", "caught up"])
def test_an_invoice_deferred_by_a_suspension_is_dated_the_day_service_resumes(nightly):
    (sub,) = book(1)
    nightly_run(run_date=Q1_END)
    # Two suspensions back to back over the invoice day: service resumes on 4 May.
    resumes = date(2026, 5, 4)
    for start, end in ((date(2026, 4, 3), date(2026, 4, 20)), (date(2026, 4, 20), resumes)):
        sub.suspensions.create(
            suspend_date=start, resume_date=end, status="scheduled", mode="freeze",
            extend_term=True, ticket_url="https://tickets.example.com/9",
        )  # fmt: skip
    if nightly:
        result = nightly_run(run_date=INVOICE_DAY)
        assert result.counts["reconciliation_invoice"] == {"deferred:suspended": 1}
        nightly_run(run_date=date(2026, 5, 3))
        assert not Invoice.objects.exists()
    nightly_run(run_date=resumes if nightly else date(2026, 5, 10))

    invoice = Invoice.objects.get()
    assert invoice.issue_date == resumes
    assert Reconciliation.objects.get().status == "processed"


@pytest.mark.django_db
def test_running_twice_for_the_same_date_creates_nothing_the_second_time():
    book(5)
    for day in (Q1_END, INVOICE_DAY):
        nightly_run(run_date=day)
    before = ledger()
    again = [nightly_run(run_date=day) for day in (Q1_END, INVOICE_DAY)]
    assert ledger() == before
    for result in again:
        assert all(not counts for step, counts in result.counts.items() if step != "seat_refresh")


@pytest.mark.django_db
def test_dry_run_writes_nothing_and_says_what_would_happen():
    book(3)
    result = nightly_run(run_date=Q1_END, dry_run=True)
    assert result.counts["reconciliation_create"] == {"created": 3}
    assert result.counts["reconciliation_notify"] == {"notified": 3}
    assert not Reconciliation.objects.exists()
    assert not JobRun.objects.exists()


@pytest.mark.django_db
def test_catching_up_missed_nights_gives_the_ledger_of_running_each_night():
    subs = book(4)
    Subscription.objects.filter(pk=subs[0].pk).update(channel="reseller")
    day = date(2026, 3, 25)
    while day <= date(2026, 4, 20):
        nightly_run(run_date=day)
        day = date.fromordinal(day.toordinal() + 1)
    every_night = ledger_by_subscription()

    InvoiceLine.objects.all().delete()
    Invoice.objects.all().delete()
    Reconciliation.objects.all().delete()
    Subscription.objects.update(seats=100)
    nightly_run(run_date=date(2026, 4, 20))  # the job was down for four weeks
    assert ledger_by_subscription() == every_night
    assert len(every_night["lines"]) == 3


def ledger_by_subscription() -> dict:
    return {
        "reconciliations": sorted(
            Reconciliation.objects.values_list(
                "subscription_id", "quarter", "status", "skip_reason", "amount", "invoice_date"
            )
        ),
        "lines": sorted(
            InvoiceLine.objects.values_list(
                "invoice__subscription_id", "invoice__issue_date", "kind", "quantity", "amount"
            )
        ),
        "seats": sorted(Subscription.objects.values_list("pk", "seats")),
    }


@pytest.mark.django_db
def test_a_step_whose_function_no_app_registered_stops_the_run_before_it_starts(monkeypatch):
    monkeypatch.setattr(nightly, "_step_functions", {})

    with pytest.raises(NightlyStepMissing, match="'expiry' has no function"):
        nightly_run(run_date=Q1_END)
    with pytest.raises(NightlyStepMissing):
        nightly_run(run_date=Q1_END, only=[])
    assert not JobRun.objects.exists()


@pytest.mark.django_db
def test_the_job_run_records_counts_dates_and_errors(monkeypatch):
    book(2)
    nightly_run(run_date=Q1_END)

    def broken(*args, **kwargs):
        raise RuntimeError("ledger unavailable")

    monkeypatch.setattr(invoice_step, "invoices_write", broken)
    result = nightly_run(run_date=INVOICE_DAY)
    job = JobRun.objects.get(pk=result.job_run_id)
    assert (job.run_date, job.status) == (INVOICE_DAY, "failed")
    assert job.finished_at and job.started_at <= job.finished_at
    assert job.counts["reconciliation_invoice"] == {"failed": 2}
    assert {e["subscription"] for e in job.errors} == set(
        Subscription.objects.values_list("pk", flat=True)
    )
    assert "ledger unavailable" in job.errors[0]["error"]
    failed = Reconciliation.objects.filter(status="failed")
    assert failed.count() == 2 and all(r.attempts == 1 for r in failed)

    # The next night retries them, now that the ledger is back.
    monkeypatch.undo()
    nightly_run(run_date=date(2026, 4, 9))
    assert set(Reconciliation.objects.values_list("status", flat=True)) == {"processed"}
    assert InvoiceLine.objects.filter(kind="qsr_overage").count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_run_killed_mid_batch_then_rerun_ends_with_the_uninterrupted_totals(monkeypatch):
    subs = book(7)
    monkeypatch.setattr(batches, "BATCH_SIZE", 3)
    nightly_run(run_date=Q1_END)
    expected = sum(
        billing.qsr_reconcile(
            quarter=1, max_seats_used=110, paid_seats=100,
            annual_unit_price=Decimal("100.00"), currency="USD",
        ).amount
        for _ in subs
    )  # fmt: skip

    real_write = invoice_step.invoices_write
    calls = {"n": 0}

    def dies_in_second_batch(**kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise SystemExit("worker killed")  # not an Exception: nothing catches it
        return real_write(**kwargs)

    monkeypatch.setattr(invoice_step, "invoices_write", dies_in_second_batch)
    with pytest.raises(SystemExit):
        nightly_run(run_date=INVOICE_DAY)
    # The first batch committed, the second rolled back whole.
    assert InvoiceLine.objects.filter(kind="qsr_overage").count() == 3
    monkeypatch.setattr(invoice_step, "invoices_write", real_write)

    nightly_run(run_date=INVOICE_DAY)
    lines = InvoiceLine.objects.filter(kind="qsr_overage")
    assert lines.count() == 7
    assert sum(lines.values_list("amount", flat=True)) == expected
    assert set(Subscription.objects.values_list("seats", flat=True)) == {110}


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_produce_one_reconciliation_and_one_invoice_each():
    subs = book(30)
    barrier = threading.Barrier(2)
    failures = []

    def worker(step):
        try:
            barrier.wait()
            step(run_date=Q1_END if step is not recon_services.reconciliations_invoice_due
                 else INVOICE_DAY, actor=SYSTEM)  # fmt: skip
        except Exception as exc:  # pragma: no cover - reported below
            failures.append(exc)
        finally:
            connection.close()

    for step in (
        recon_services.reconciliations_create_due,
        recon_services.reconciliations_notify_due,
        recon_services.reconciliations_invoice_due,
    ):
        threads = [threading.Thread(target=worker, args=(step,)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failures == []
    assert Reconciliation.objects.count() == len(subs)
    assert set(Reconciliation.objects.values_list("status", flat=True)) == {"processed"}
    assert InvoiceLine.objects.filter(kind="qsr_overage").count() == len(subs)
    assert Invoice.objects.filter(idempotency_key__startswith="qsr:").count() == len(subs)
    assert set(Subscription.objects.values_list("seats", flat=True)) == {110}


@pytest.mark.django_db(transaction=True)
def test_a_second_nightly_run_while_one_is_going_does_nothing():
    book(2)
    # Another process (a second beat, a manual run) holds the nightly lock.
    other = psycopg.connect(**_conninfo(), autocommit=True)
    other.execute("SELECT pg_advisory_lock(%s)", [NIGHTLY_LOCK_KEY])
    try:
        with pytest.raises(NightlyAlreadyRunning):
            nightly_run(run_date=Q1_END)
        assert not Reconciliation.objects.exists()
    finally:
        # Unlock explicitly: a closed connection's backend lets go a moment later.
        other.execute("SELECT pg_advisory_unlock(%s)", [NIGHTLY_LOCK_KEY])
        other.close()
    nightly_run(run_date=Q1_END)
    assert Reconciliation.objects.count() == 2


def _conninfo() -> dict:
    s = connection.settings_dict
    info = {"dbname": s["NAME"], "user": s["USER"], "host": s["HOST"]}
    if s.get("PORT"):
        info["port"] = s["PORT"]
    if s.get("PASSWORD"):
        info["password"] = s["PASSWORD"]
    return info


@pytest.mark.django_db(transaction=True)
def test_a_run_requested_in_a_transaction_that_rolls_back_never_runs():
    book(1)

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        nightly_run_request(run_date=Q1_END, actor=UserFactory())
        raise Abort
    assert not JobRun.objects.exists()

    with transaction.atomic():
        nightly_run_request(run_date=Q1_END, actor=UserFactory())
    # Eager in unit tests: the committed request ran.
    assert JobRun.objects.get().run_date == Q1_END
    assert Reconciliation.objects.get().status == "pending"
