"""The home page's figures: the reconciliations due in the next 14 days and the money at
stake per currency, last night's run, and revenue, waivers and refunds per quarter for
executives and finance."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format

from approvals.services import approval_process_refund
from subscriptions import billing
from subscriptions.dashboard import last_quarters, quarter_label
from subscriptions.models import JobRun, Namespace, Reconciliation, Subscription
from tests.approvals.dashboard_page import home, person, revenue_table, rows, section, text
from tests.approvals.helpers import account, approve_both, own, processed_q1, refund
from tests.factories import (
    CustomerFactory,
    ReconciliationFactory,
    SelfManagedNamespaceFactory,
    SubscriptionFactory,
)

pytestmark = pytest.mark.django_db


# --- Reconciliations due ------------------------------------------------------------------


def due_account(owner, *, days, quarter=1, currency="USD", seats=100, max_used=110,
                price="100.00", **kwargs) -> Subscription:  # fmt: skip
    """An account of `owner` whose quarter `quarter` ends `days` from today (a day or
    two earlier when month ends clamp)."""
    today = timezone.localdate()
    start = billing.add_months(today + timedelta(days=days), -3 * quarter)
    customer = CustomerFactory(currency=currency, **kwargs)
    own(customer, owner)
    sub = SubscriptionFactory(
        customer=customer,
        seats=seats,
        annual_unit_price=Decimal(price),
        term_start=start,
        term_end=billing.add_months(start, 12),
    )
    Namespace.objects.filter(pk=sub.namespace_id).update(
        seats_in_use=seats, max_seats_used=max_used
    )
    return sub


@pytest.fixture
def due(p, today):
    # Quarter ends ahead, priced as the nightly run would price them today.
    due_account(p.owner, days=5)  # 10 over x 25.00 x 3 = 750.00
    due_account(p.owner, days=10, quarter=2, seats=20, max_used=24, price="120.00")  # 240.00
    due_account(p.owner, days=2, quarter=3, currency="EUR", max_used=103)  # 75.00
    for _ in range(2):  # 12,346 / 4 x 3 = 9,259.5 -> 9,260 a line
        due_account(p.owner, days=7, currency="JPY", max_used=101, price="12346")
    # Recorded today, not priced yet: counted once.
    today_sub = due_account(p.owner, days=0, max_used=101)  # 75.00
    ReconciliationFactory(subscription=today_sub, quarter=1,
                          reconciliation_date=billing.reconciliation_dates(today_sub.term_start)[0],
                          notify_date=today, invoice_date=today + timedelta(days=7))  # fmt: skip
    # A self-managed quarter waiting for its usage: 2 over x 25.00 x 3 = 150.00.
    _, waiting = account(p.owner, seats=100, in_use=100, max_used=102)
    Subscription.objects.filter(pk=waiting.pk).update(namespace=SelfManagedNamespaceFactory(
        customer=waiting.customer, max_seats_used=102, seats_in_use=100))  # fmt: skip
    ReconciliationFactory(subscription=waiting, quarter=1, reconciliation_date=today - timedelta(3),
                          notify_date=today + timedelta(days=3),
                          invoice_date=today + timedelta(days=10))  # fmt: skip
    # Notified: invoiced at its amount in three days.
    ReconciliationFactory(
        subscription=account(p.owner)[1],
        status="pending",
        amount=Decimal("500.00"),
        invoice_date=today + timedelta(days=3),
    )
    # Left out: after the window, off QSR for a bug, paused over the day, not on QSR.
    due_account(p.owner, days=20)
    bugged = due_account(p.owner, days=5)
    Subscription.objects.filter(pk=bugged.pk).update(
        qsr_state="disabled_for_bug", qsr_bug_url="https://bugs.example.com/9"
    )
    paused = due_account(p.owner, days=5)
    Subscription.objects.filter(pk=paused.pk).update(
        qsr_state="paused", qsr_paused_until=today + timedelta(days=30)
    )
    reseller = due_account(p.owner, days=5)
    Subscription.objects.filter(pk=reseller.pk).update(channel="reseller")


def test_the_reconciliations_due_in_14_days_and_the_money_at_stake_per_currency(p, due):
    page = home(p.ops)

    assert rows(page, "currency") == {
        "EUR": "EUR 1 EUR 0.00 (0) EUR 75.00 (1) EUR 75.00",
        "JPY": "JPY 2 JPY 0 (0) JPY 18,520 (2) JPY 18,520",
        "USD": "USD 5 USD 500.00 (1) USD 1,215.00 (4) USD 1,715.00",
    }
    note = section(page, "portal-due")
    assert "estimated as the nightly run would price them today" in note
    assert "Notified reconciliations are counted at the amount they will be invoiced" in note


def test_a_sales_manager_sees_the_money_due_on_their_accounts_only(p, due):
    other = person("sales", "other-sales")
    due_account(other, days=4, currency="GBP", price="80.00")

    assert "GBP" not in rows(home(p.owner), "currency")
    assert rows(home(other), "currency") == {"GBP": "GBP 1 GBP 0.00 (0) GBP 600.00 (1) GBP 600.00"}
    assert set(rows(home(p.support), "currency")) == {"EUR", "GBP", "JPY", "USD"}


def test_nothing_due_says_so(p):
    assert "No reconciliation falls due in the next 14 days." in section(home(p.ops), "portal-due")


# --- Last night's run ---------------------------------------------------------------------


def night(run_date, status, *, errors=(), trigger="beat", hours_ago=0) -> JobRun:
    run = JobRun.objects.create(run_date=run_date, status=status, trigger=trigger,
                                errors=list(errors))  # fmt: skip
    started = timezone.now() - timedelta(hours=hours_ago)
    finished = None if status in ("running", "abandoned") else started + timedelta(minutes=5)
    JobRun.objects.filter(pk=run.pk).update(started_at=started, finished_at=finished)
    return run


def warnings(page: str) -> list[str]:
    night_part = page.split('id="portal-night"', 1)[-1].split('id="portal-due"', 1)[0]
    return [text(w) for w in re.findall(r'<li class="warning">(.*?)</li>', night_part)]


def test_last_nights_run_that_succeeded_shows_no_warning(p, today):
    night(today - timedelta(days=1), "succeeded", hours_ago=24)
    run = night(today, "succeeded")

    page = home(p.ops)

    assert f"Run For {date_format(today)} · Succeeded" in section(page, "portal-night")
    assert "Failures none" in section(page, "portal-night")
    assert reverse("admin:subscriptions_jobrun_change", args=[run.pk]) in page
    assert warnings(page) == []


def test_a_failed_run_is_a_warning_with_its_failures_per_step(p, today):
    errors = [
        {"step": "reconciliation_invoice", "subscription": 1, "error": "card declined"},
        {"step": "reconciliation_invoice", "subscription": 2, "error": "card declined"},
        {"step": "renewal", "subscription": 3, "error": "boom"},
    ]
    night(today, "failed", errors=errors)

    page = home(p.finance)

    assert "Failures 3 errors: reconciliation_invoice 2, renewal 1" in section(page, "portal-night")
    assert warnings(page) == [f"The last run (for {date_format(today)}) failed: 3 errors."]


def test_an_abandoned_run_and_a_stale_last_night_are_warnings(p, today):
    completed = today - timedelta(days=3)
    night(completed, "succeeded", hours_ago=72)
    night(today, "abandoned")
    night(today, "succeeded", trigger="simulation")  # a simulation is not a night

    page = home(p.support)

    assert f"Last completed night {date_format(completed)}" in section(page, "portal-night")
    assert warnings(page) == [
        f"The last run (for {date_format(today)}) was abandoned: its process stopped.",
        f"No night has completed since {date_format(completed)}: the nights after it have "
        "not been billed.",
    ]


def test_a_run_in_progress_after_yesterdays_is_no_warning(p, today):
    night(today - timedelta(days=1), "succeeded", hours_ago=24)
    night(today, "running")

    page = home(p.ops)

    assert f"For {date_format(today)} · Running" in section(page, "portal-night")
    assert warnings(page) == []


def test_no_run_at_all_is_a_warning(p):
    assert warnings(home(p.ops)) == ["No nightly run has been recorded."]


def test_sales_do_not_get_the_nightly_run(p, today):
    night(today, "failed", errors=[{"step": "renewal", "error": "x"}])

    assert 'id="portal-night"' not in home(p.owner)


# --- Revenue, waivers and refunds per quarter ---------------------------------------------


def invoiced(recon: Reconciliation, when) -> Reconciliation:
    Reconciliation.objects.filter(pk=recon.pk).update(invoiced_at=when)
    return recon


@pytest.fixture
def money(p, today):
    """This quarter, USD: the worked example's Q1 invoiced (750.00), 4 seats of it refunded
    (300.00) with their reset waiving 200.00. Last quarter, EUR: 1,234.50 invoiced."""
    recon = invoiced(processed_q1(account(p.owner)[1]), timezone.now())
    request = approve_both(refund(recon, p.owner, today, seats=4), p)
    approval_process_refund(request=request, actor=p.desk)
    assert request.linked_reset.amount_at_stake == Decimal("200.00")
    eur = account(p.owner, currency="EUR")[1]
    start = last_quarters(today, 2)[0]
    last_quarter = timezone.make_aware(datetime.combine(start, time(12))) + timedelta(days=10)
    ReconciliationFactory(subscription=eur, status="processed", amount=Decimal("1234.50"),
                          invoiced_at=last_quarter)  # fmt: skip
    return last_quarters(today)


@pytest.mark.parametrize("role", ["finance", "executive"])
def test_finance_and_executives_read_revenue_waivers_and_refunds_per_quarter(p, money, role):
    page = home(getattr(p, role))
    *earlier, last, this = (quarter_label(q) for q in money)

    assert revenue_table(page, "USD")[this] == f"{this} USD 750.00 USD 200.00 USD 300.00"
    assert revenue_table(page, "USD")[last] == f"{last} USD 0.00 USD 0.00 USD 0.00"
    assert revenue_table(page, "EUR")[last] == f"{last} EUR 1,234.50 EUR 0.00 EUR 0.00"
    assert revenue_table(page, "EUR")[this] == f"{this} EUR 0.00 EUR 0.00 EUR 0.00"
    assert list(revenue_table(page, "USD")) == [*earlier, last, this]
    # The chart: inline SVG, per currency, with no script and nothing fetched from elsewhere.
    chart = page.split('<figure id="revenue-USD"', 1)[1].split("</figure>", 1)[0]
    assert "<svg" in chart and "USD per quarter" in chart and "QSR revenue" in chart
    assert "<script" not in page.split('id="portal-money"', 1)[1]
    assert "kozea.github.io" not in page and "svg.jquery" not in page


@pytest.mark.parametrize("role", ["support", "owner", "ops", "desk", "manager"])
def test_other_roles_do_not_see_the_revenue(p, money, role):
    page = home(getattr(p, role))

    assert 'id="portal-money"' not in page
    assert "pygal-chart" not in page
    assert "USD 750.00" not in page
