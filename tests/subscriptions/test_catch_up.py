"""Missed nights: one run after an outage writes the ledger that running every night
would have written (README "Nightly jobs"), and a night is never run before its date."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from subscriptions.models import (
    InvoiceLine,
    JobRun,
    Namespace,
    Reconciliation,
    SeatUsageReport,
    Subscription,
)
from subscriptions.services.nightly import (
    NightlyDateInFuture,
    last_completed_night,
    nightly_run,
    nights_due,
)
from tests.factories import NamespaceFactory, SelfManagedNamespaceFactory, SubscriptionFactory


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def report_usage(namespace: Namespace, timeline: dict[date, int], until: date) -> None:
    """A report every day from the first day of `timeline` to `until`: each day the
    count of the latest change on or before it."""
    count, rows = None, []
    for day in days(min(timeline), until):
        count = timeline.get(day, count)
        rows.append(SeatUsageReport(namespace=namespace, date=day, billable_users=count))
    SeatUsageReport.objects.bulk_create(rows)


def run_nights(first: date, last: date, *, down: tuple[date, date] | None = None) -> None:
    """Run the job every night from `first` to `last`, except the nights in `down`."""
    for day in days(first, last):
        if down is None or not down[0] <= day <= down[1]:
            nightly_run(run_date=day, trigger="beat")


def ledger() -> dict:
    """The ledger by customer name, so that two books built alike compare equal."""
    return {
        "reconciliations": sorted(
            Reconciliation.objects.values_list(
                "subscription__customer__name",
                "term_start",
                "quarter",
                "status",
                "skip_reason",
                "seats_paid",
                "max_seats_used",
                "overage_seats",
                "amount",
                "notify_date",
                "invoice_date",
            )
        ),
        "lines": sorted(
            InvoiceLine.objects.values_list(
                "invoice__customer__name",
                "invoice__issue_date",
                "kind",
                "quantity",
                "unit_price",
                "amount",
                "period_start",
                "period_end",
            )
        ),
        "subscriptions": sorted(
            Subscription.objects.values_list(
                "customer__name", "seats", "term_start", "term_end", "status", "qsr_state"
            )
        ),
        "namespaces": sorted(
            Namespace.objects.values_list("customer__name", "seats_in_use", "max_seats_used")
        ),
        "suspensions": sorted(
            Subscription.objects.filter(suspensions__isnull=False).values_list(
                "customer__name", "suspensions__status"
            )
        ),
    }


def in_a_rolled_back_world(build, run) -> dict:
    """Build a book, run it, read its ledger, and roll it all back."""
    with transaction.atomic():
        build()
        run()
        result = ledger()
        transaction.set_rollback(True)
    return result


def qsr_book(timeline: dict[date, int], *, until: date) -> Subscription:
    """The README's book: 100 seats at 100.00 USD, term 2026-01-01 to 2027-01-01, a
    usage report every day."""
    sub = SubscriptionFactory(customer__name="Acme", namespace__name="acme")
    report_usage(sub.namespace, timeline, until)
    return sub


def recons(sub: Subscription) -> dict[int, tuple[str, Decimal | None]]:
    return {r.quarter: (r.status, r.amount) for r in sub.reconciliations.all()}


@pytest.mark.django_db
def test_a_two_quarter_outage_charges_each_overage_once():
    # Usage 110 from February; the job is down from 26 March to 19 July.
    sub = qsr_book({date(2026, 1, 1): 100, date(2026, 2, 1): 110}, until=date(2026, 7, 20))
    run_nights(date(2026, 3, 20), date(2026, 3, 25))
    result = nightly_run(run_date=date(2026, 7, 20), trigger="beat")

    assert [n.run_date for n in result.caught_up] == days(date(2026, 3, 26), date(2026, 7, 19))
    assert recons(sub) == {1: ("processed", Decimal("750.00")), 2: ("processed", Decimal("0.00"))}
    sub.refresh_from_db()
    assert sub.seats == 110
    line = InvoiceLine.objects.get()
    assert (line.amount, line.invoice.issue_date) == (Decimal("750.00"), date(2026, 4, 8))


@pytest.mark.django_db
def test_a_peak_while_the_job_is_down_counts():
    timeline = {date(2026, 1, 1): 105, date(2026, 3, 10): 130, date(2026, 3, 16): 105}
    sub = qsr_book(timeline, until=date(2026, 4, 20))
    run_nights(date(2026, 2, 20), date(2026, 2, 28))
    nightly_run(run_date=date(2026, 4, 20), trigger="beat")  # down 1 March to 19 April

    assert recons(sub)[1] == ("processed", Decimal("2250.00"))  # 30 x 25.00 x 3
    sub.refresh_from_db()
    assert sub.seats == 130


@pytest.mark.django_db
def test_a_peak_after_the_notice_day_belongs_to_the_next_quarter():
    # 100 through Q1, 150 on 3-5 April (after Q1's notice day, 1 April), then 100.
    timeline = {date(2026, 1, 1): 100, date(2026, 4, 3): 150, date(2026, 4, 6): 100}
    sub = qsr_book(timeline, until=date(2026, 7, 5))
    run_nights(date(2026, 3, 15), date(2026, 3, 19))
    nightly_run(run_date=date(2026, 7, 5), trigger="beat")  # down 20 March to 4 July

    assert recons(sub) == {
        1: ("processed", Decimal("0.00")),  # priced on what stood on 1 April
        2: ("pending", Decimal("2500.00")),  # 50 x 25.00 x 2: the peak is not missed
    }


@pytest.mark.django_db
def test_late_self_managed_reports_count_as_on_a_night_by_night_run():
    """Self-managed notices go out six days after the quarter end because usage arrives
    late: a report dated in the quarter counts, one dated after its end does not."""

    def build():
        namespace = SelfManagedNamespaceFactory(name="onprem", customer__name="Onprem")
        SubscriptionFactory(customer=namespace.customer, namespace=namespace)
        timeline = {date(2026, 1, 1): 100, date(2026, 3, 30): 140, date(2026, 4, 2): 170}
        report_usage(namespace, timeline, date(2026, 4, 30))

    every_night = in_a_rolled_back_world(
        build, lambda: run_nights(date(2026, 3, 20), date(2026, 4, 30))
    )
    down = (date(2026, 3, 28), date(2026, 4, 29))
    caught_up = in_a_rolled_back_world(
        build, lambda: run_nights(date(2026, 3, 20), date(2026, 4, 30), down=down)
    )
    assert caught_up == every_night
    (q1,) = every_night["reconciliations"]
    assert q1[3:9] == ("processed", "", 100, 140, 40, Decimal("3000.00"))  # not 170
    assert q1[9:] == (date(2026, 4, 7), date(2026, 4, 14))


@pytest.mark.django_db
def test_the_run_catches_up_from_the_last_completed_night():
    qsr_book({date(2026, 1, 1): 100}, until=date(2026, 3, 10))
    assert nights_due(date(2026, 3, 5)) == [date(2026, 3, 5)]  # a first run: that night
    run_nights(date(2026, 3, 1), date(2026, 3, 2))
    # A run that died before finishing is not a completed night: it is run again.
    dead = JobRun.objects.create(run_date=date(2026, 3, 3), trigger="beat")
    assert last_completed_night() == date(2026, 3, 2)
    assert nights_due(date(2026, 3, 5)) == days(date(2026, 3, 3), date(2026, 3, 5))
    # A rerun of a past night is that night alone.
    assert nights_due(date(2026, 3, 1)) == [date(2026, 3, 1)]

    result = nightly_run(run_date=date(2026, 3, 5), trigger="beat")
    assert [n.run_date for n in result.nights] == days(date(2026, 3, 3), date(2026, 3, 5))
    dead.refresh_from_db()
    assert dead.status == "abandoned"
    assert "its process stopped" in dead.abandoned_reason
    runs = JobRun.objects.filter(status="succeeded", run_date__gte=date(2026, 3, 3))
    assert sorted(runs.values_list("run_date", "trigger")) == [
        (date(2026, 3, 3), "beat catch-up"),
        (date(2026, 3, 4), "beat catch-up"),
        (date(2026, 3, 5), "beat"),
    ]


@pytest.mark.django_db
def test_a_dry_run_of_a_catch_up_writes_nothing():
    sub = qsr_book({date(2026, 1, 1): 110}, until=date(2026, 4, 10))
    run_nights(date(2026, 3, 30), date(2026, 3, 30))
    result = nightly_run(run_date=date(2026, 4, 10), dry_run=True)
    assert len(result.caught_up) == 10
    assert result.caught_up[1].counts["reconciliation_notify"] == {"notified": 1}  # 1 April
    assert not sub.reconciliations.exists()
    assert last_completed_night() == date(2026, 3, 30)


@pytest.mark.django_db
def test_no_night_after_today(monkeypatch):
    SubscriptionFactory()
    today = date(2026, 5, 1)
    monkeypatch.setattr("django.utils.timezone.localdate", lambda *a, **k: today)
    with pytest.raises(NightlyDateInFuture, match="2026-05-02 is after today"):
        nightly_run(run_date=date(2026, 5, 2))
    assert not JobRun.objects.exists()
    assert not Reconciliation.objects.exists()


# --- The property: any pattern of missed nights -----------------------------------------

FIRST_NIGHT, LAST_NIGHT = date(2026, 1, 10), date(2026, 4, 20)
HORIZON = (LAST_NIGHT - FIRST_NIGHT).days
REPORTS_FROM = date(2025, 12, 1)

# Each book crosses, inside the horizon: a SaaS Q3 and its renewal (15 Jan, 15 April), a
# self-managed Q1 with late notice (1 March), an annual true-up and renewal (15 March),
# and two quarters around a suspension (1 January, 1 April).
BOOK = {
    "Saas": {"term_start": date(2025, 4, 15)},
    "Onprem": {"term_start": date(2025, 12, 1), "self_managed": True},
    "Reseller": {"term_start": date(2025, 3, 15), "channel": "reseller"},
    "Suspended": {"term_start": date(2025, 10, 1)},
}

usage_timeline = st.lists(
    st.tuples(st.integers(0, (LAST_NIGHT - REPORTS_FROM).days), st.integers(80, 160)),
    max_size=5,
)
outage = st.tuples(st.integers(1, HORIZON - 1), st.integers(1, 60))


def build_book(timelines: dict[str, list], suspension: tuple[int, int, bool]) -> None:
    for name, terms in BOOK.items():
        start = terms["term_start"]
        if terms.get("self_managed"):
            namespace = SelfManagedNamespaceFactory(name=name.lower(), customer__name=name)
        else:
            namespace = NamespaceFactory(name=name.lower(), customer__name=name)
        Namespace.objects.filter(pk=namespace.pk).update(seats_in_use=100, max_seats_used=100)
        sub = SubscriptionFactory(
            customer=namespace.customer,
            namespace=namespace,
            term_start=start,
            term_end=start.replace(year=start.year + 1),
            channel=terms.get("channel", "direct"),
        )
        changes = {REPORTS_FROM: 100}
        for offset, count in timelines[name]:
            changes[REPORTS_FROM + timedelta(days=offset)] = count
        report_usage(namespace, changes, LAST_NIGHT)
        if name == "Suspended":
            begin, length, extend = suspension
            suspend = FIRST_NIGHT + timedelta(days=begin)
            sub.suspensions.create(
                suspend_date=suspend, resume_date=suspend + timedelta(days=length),
                status="scheduled", mode="credit", extend_term=extend,
                ticket_url="https://tickets.example.com/1",
            )  # fmt: skip


@pytest.mark.django_db
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    timelines=st.fixed_dictionaries({name: usage_timeline for name in BOOK}),
    outages=st.lists(outage, min_size=1, max_size=3),
    suspension=st.tuples(st.integers(5, 70), st.integers(3, 40), st.booleans()),
)
def test_catching_up_any_missed_nights_writes_the_ledger_of_every_night(
    timelines, outages, suspension
):
    down = set()
    for begin, length in outages:
        down.update(FIRST_NIGHT + timedelta(days=n) for n in range(begin, begin + length))
    down.discard(LAST_NIGHT)  # the outage ends: the job runs again on the last night

    def every_night():
        run_nights(FIRST_NIGHT, LAST_NIGHT)

    def with_outages():
        for day in days(FIRST_NIGHT, LAST_NIGHT):
            if day not in down:
                nightly_run(run_date=day, trigger="beat")

    def build():
        build_book(timelines, suspension)

    expected = in_a_rolled_back_world(build, every_night)
    assert in_a_rolled_back_world(build, with_outages) == expected
    # The book did cross what it is meant to: a renewal and several quarters.
    assert any(
        term_start == date(2026, 4, 15) for _, _, term_start, *_ in expected["subscriptions"]
    )
    assert len(expected["reconciliations"]) >= 4


@pytest.mark.django_db
def test_the_scheduled_task_catches_up_on_its_own():
    from subscriptions.tasks import nightly_run_task

    sub = qsr_book({date(2026, 1, 1): 110}, until=date(2026, 4, 10))
    run_nights(date(2026, 3, 29), date(2026, 3, 30))
    nightly_run_task.delay("2026-04-09")  # beat's task, after nine missed nights

    done = JobRun.objects.filter(finished_at__isnull=False).values_list("run_date", flat=True)
    assert sorted(done) == days(date(2026, 3, 29), date(2026, 4, 9))
    assert recons(sub)[1] == ("processed", Decimal("750.00"))
