"""The account page (a subscription's page): one screen with the summary, the seat-usage
chart of the term and every related record linked, in the same few queries whatever the
number of records, and only for the users who may see the account."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals.models import ApprovalRequest, Dispute
from subscriptions import billing
from subscriptions.models import InvoiceLine, Reconciliation, SeatUsageReport, Suspension
from subscriptions.selectors import max_seats_series
from tests.admin_buttons import change_url, live_subscription, processed_reconciliation, text
from tests.factories import (
    ApprovalRequestFactory,
    InvoiceFactory,
    InvoiceLineFactory,
    ReconciliationFactory,
    SeatUsageReportFactory,
    SuspensionFactory,
)

pytestmark = pytest.mark.django_db

Kind = ApprovalRequest.Kind


def section(page: str, element_id: str) -> str:
    """The HTML of the panel (or block) with `element_id`, up to the next module."""
    after = page.split(f'id="{element_id}"', 1)
    assert len(after) == 2, f"no #{element_id} on the page"
    return after[1].split('class="module', 1)[0]


def dispute(recon, portal, *, open_=True) -> Dispute:
    now = timezone.now()
    return Dispute.objects.create(
        reconciliation=recon,
        reason="Bots were counted.",
        ticket_url="https://tickets.example.com/9",
        recorded_by=portal.users["support"],
        assigned_to=portal.owner,
        ticket_closed_at=now,
        status=Dispute.Status.ROUTED if open_ else Dispute.Status.RESOLVED,
        resolved_at=None if open_ else now,
    )


def invoiced(recon) -> InvoiceLine:
    invoice = InvoiceFactory(subscription=recon.subscription, issue_date=recon.invoice_date)
    return InvoiceLineFactory(invoice=invoice, reconciliation=recon, amount=recon.amount)


@pytest.fixture
def account(portal):
    """A subscription with one of each related record: Q1 processed (750.00) and
    invoiced, disputed; a suspension; a pending reset request; a month of usage."""
    sub = live_subscription(portal)
    recon = processed_reconciliation(portal, sub)
    line = invoiced(recon)
    suspension = SuspensionFactory(
        subscription=sub,
        suspend_date=sub.term_start + timedelta(days=40),
        resume_date=sub.term_start + timedelta(days=50),
    )
    request = ApprovalRequestFactory(
        subscription=sub, kind=Kind.MAX_SEATS_RESET, requester=portal.owner, seats_at_stake=8
    )
    open_dispute = dispute(recon, portal)
    for day in range(30):
        SeatUsageReportFactory(
            namespace=sub.namespace,
            date=sub.term_start + timedelta(days=day),
            billable_users=100 + day,
        )
    return {
        "sub": sub,
        "recon": recon,
        "invoice": line.invoice,
        "suspension": suspension,
        "request": request,
        "dispute": open_dispute,
    }


def test_the_page_links_each_related_record_in_its_panel(client, portal, account):
    client.force_login(portal.users["support"])

    page = text(client.get(change_url(account["sub"])))

    sub = account["sub"]
    summary = section(page, "account-summary")
    assert f'href="{change_url(sub.customer)}"' in summary
    assert f'href="{change_url(sub.namespace)}"' in summary
    for words in ("110", "USD 100.00 a seat a year", "Enabled", "sales.owner"):
        assert words in summary
    reconciliations = section(page, "account-reconciliations")
    assert f'href="{change_url(account["recon"])}"' in reconciliations
    assert f'href="{change_url(account["invoice"])}"' in reconciliations  # its invoice
    assert "USD 750.00" in reconciliations
    assert f'href="{change_url(account["dispute"])}"' in reconciliations  # its open dispute
    invoices = section(page, "account-invoices")
    assert f'href="{change_url(account["invoice"])}"' in invoices
    assert account["invoice"].number in invoices
    assert f'href="{change_url(account["suspension"])}"' in section(page, "account-suspensions")
    assert f'href="{change_url(account["request"])}"' in section(page, "account-requests")
    disputes = section(page, "account-disputes")
    assert f'href="{change_url(account["dispute"])}"' in disputes
    assert "Routed to sales" in disputes
    history = section(page, "account-history")
    assert "Created" in history
    assert f"/subscription/{sub.pk}/history/" in history


def test_empty_panels_say_so(client, portal):
    sub = live_subscription(portal)
    client.force_login(portal.users["support"])

    page = text(client.get(change_url(sub)))

    assert "No reconciliation yet." in section(page, "account-reconciliations")
    assert "No invoice yet." in section(page, "account-invoices")
    assert "Never suspended." in section(page, "account-suspensions")
    assert "No request filed." in section(page, "account-requests")
    assert "No dispute recorded." in section(page, "account-disputes")


def test_the_history_panel_says_what_changed_in_words(client, portal):
    sub = live_subscription(portal)
    sub.seats, sub.qsr_state, sub.qsr_paused_until = 120, "paused", sub.term_end
    sub._change_reason = "Q1 invoiced"
    sub.save()
    client.force_login(portal.users["support"])

    history = section(text(client.get(change_url(sub))), "account-history")

    assert "Q1 invoiced" in history
    assert "Seats: 110 → 120" in history
    assert "Qsr state: Enabled → Paused" in history
    assert "paused" not in re.findall(r"→ (\w+)", history)  # labels, not stored codes


# --- The chart ---------------------------------------------------------------------------


def test_the_chart_draws_the_series_the_reconciliations_and_a_shaded_suspension(
    client, portal, account
):
    client.force_login(portal.users["support"])

    chart = section(text(client.get(change_url(account["sub"]))), "usage-chart")

    assert "<svg" in chart
    assert "<script" not in chart  # no JavaScript, from a CDN or inline
    for name in ("Billable users", "Max seats used", "Paid seats", "Reconciliations"):
        assert name in chart
    q1 = account["recon"].reconciliation_date
    assert f"Q1 {q1.day} {q1:%b}: processed, USD 750.00" in chart
    assert "Suspended" in chart  # the shaded stretch's series
    assert re.search(r'class="series serie-0 color-0">\s*<path[^>]*class="line reactive"', chart)
    assert "<title>" in chart  # an accessible name, and the marks' words on hover


def test_max_seats_used_restarts_at_a_reset():
    """The line the chart draws is the running high-water mark, restarted by a reset."""
    start = timezone.localdate()
    usage = [(start + timedelta(days=i), users) for i, users in enumerate([5, 9, 7, 8, 6])]

    series = max_seats_series(usage, {start + timedelta(days=3): 6})

    assert [value for _, value in series] == [5, 9, 9, 8, 8]


def test_a_term_without_usage_still_shows_the_chart(client, portal):
    sub = live_subscription(portal)
    client.force_login(portal.users["support"])

    chart = section(text(client.get(change_url(sub))), "usage-chart")

    assert "<svg" in chart
    assert "Paid seats" in chart


# --- Queries constant in the number of records --------------------------------------------


def grow(portal, sub, count: int) -> None:
    """`count` more of every related record of `sub`."""
    done = Reconciliation.objects.filter(subscription=sub).count()
    for i in range(done, done + count):
        recon = ReconciliationFactory(
            subscription=sub,
            term_start=sub.term_start - timedelta(days=400 + i),  # earlier terms
            status=Reconciliation.Status.PROCESSED,
            overage_seats=1,
            amount=Decimal("25.00"),
        )
        invoiced(recon)
        dispute(recon, portal, open_=i % 2 == 0)
        SuspensionFactory(
            subscription=sub,
            suspend_date=sub.term_start + timedelta(days=3 * i),
            resume_date=sub.term_start + timedelta(days=3 * i + 2),
            status=Suspension.Status.RESUMED,
        )
        ApprovalRequestFactory(
            subscription=sub, requester=portal.owner, status=ApprovalRequest.Status.REJECTED
        )
        SeatUsageReportFactory(
            namespace=sub.namespace, date=sub.term_start + timedelta(days=i), billable_users=100
        )
        sub.seats += 1
        sub.save()


# The account page: session, user, roles, the subscription (twice: its buttons, its
# page), its customer, namespace and sales manager, the buttons' checks (open requests;
# a sales manager's ownership, per button), the chart's four reads, and a page of rows and
# a count for each of the six panels, plus the open disputes of the reconciliations shown.
PINNED = {"support": 29, "sales_owner": 38}


@pytest.mark.parametrize("role", ["support", "sales_owner"])
def test_queries_do_not_grow_with_the_records(client, portal, role, django_assert_max_num_queries):
    sub = live_subscription(portal)
    client.force_login(portal.users[role])
    grow(portal, sub, 2)
    client.get(change_url(sub))  # warm per-process caches (content types)
    with CaptureQueriesContext(connection) as few:
        assert client.get(change_url(sub)).status_code == 200

    grow(portal, sub, 38)
    with django_assert_max_num_queries(PINNED[role]) as many:
        page = text(client.get(change_url(sub)))

    assert len(many) == len(few)
    assert SeatUsageReport.objects.filter(namespace=sub.namespace).count() == 40
    assert "All 40 →" in section(page, "account-reconciliations")
    assert "All 40 →" in section(page, "account-requests")
    assert section(page, "account-requests").count("<tr>") == 11  # header + the last 10


# --- Who sees the account -----------------------------------------------------------------


def test_another_sales_manager_cannot_open_the_account_page(client, portal, account):
    client.force_login(portal.users["sales_other"])

    response = client.get(change_url(account["sub"]))

    assert response.status_code in (302, 404)
    assert "account-requests" not in response.content.decode()


def test_the_owner_sees_the_account_and_its_requests(client, portal, account):
    client.force_login(portal.owner)

    page = text(client.get(change_url(account["sub"])))

    assert f'href="{change_url(account["request"])}"' in section(page, "account-requests")


# --- A reconciliation's page --------------------------------------------------------------


def test_the_reconciliation_page_shows_its_open_dispute_and_its_invoice(client, portal, account):
    client.force_login(portal.users["sales_ops"])

    page = text(client.get(change_url(account["recon"])))

    disputes = section(page, "reconciliation-disputes")
    assert f'href="{change_url(account["dispute"])}"' in disputes
    assert "Routed to sales" in disputes
    assert "sales.owner" in disputes and "support" in disputes  # to whom, by whom
    assert timezone.localdate().isoformat() in disputes  # when
    assert f'href="{change_url(account["invoice"])}"' in section(page, "reconciliation-invoices")


def test_an_uninvoiced_undisputed_reconciliation_says_so(client, portal):
    sub = live_subscription(portal)
    q1 = billing.reconciliation_dates(sub.term_start)[0]
    recon = ReconciliationFactory(subscription=sub, reconciliation_date=q1)
    client.force_login(portal.users["support"])

    page = text(client.get(change_url(recon)))

    assert "Not invoiced yet." in section(page, "reconciliation-invoices")
    assert "Not disputed." in section(page, "reconciliation-disputes")
