"""What each role does in a day, in a real browser: logged in through the login page,
clicking what a person clicks, checking what they see at each step."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from approvals.models import ApprovalRequest
from subscriptions.dashboard import last_quarters, quarter_label
from subscriptions.models import Reconciliation, Subscription
from tests.approvals.helpers import account, approve_both, pause, processed_q1, refund
from tests.factories import ReconciliationFactory, UserFactory

pytestmark = [
    pytest.mark.browser,
    # The live server reads what the test wrote: committed data.
    pytest.mark.django_db(transaction=True),
]

BUG = "https://bugs.example.com/issues/4242"
TICKET = "https://tickets.example.com/5150"
REQUESTS = re.compile(r"/admin/approvals/approvalrequest/")


def person(role: str, username: str):
    return UserFactory(username=username, roles=[role], password="journey-pw")


def log_in(page: Page, user) -> None:
    page.goto("/admin/login/")
    expect(page.get_by_role("banner")).to_contain_text("Billing operations portal")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill("journey-pw")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.locator("#user-tools")).to_contain_text(user.username)


def queue_row(page: Page, key: str):
    return page.locator(f'#portal-queues tr[data-queue="{key}"]')


def open_subscription(page: Page, customer: str) -> None:
    """From the home page: the subscription list, searched by customer, then the account."""
    page.locator("#content-main").get_by_role("link", name="Subscriptions", exact=True).click()
    expect(page).to_have_url(re.compile(r"/admin/subscriptions/subscription/(\?|$)"))
    page.locator("#searchbar").fill(customer)
    page.locator("#searchbar").press("Enter")
    results = page.locator("#result_list tbody tr")
    expect(results).to_have_count(1)
    results.get_by_role("link", name=customer).click()
    expect(page).to_have_url(re.compile(r"/admin/subscriptions/subscription/\d+/change/"))
    expect(page.locator("#content")).to_contain_text(customer)


def review_and_confirm(page: Page, label: str) -> None:
    """The form's Review (when the action asks for input), then the confirmation page."""
    review = page.get_by_role("button", name="Review")
    if review.count():
        review.click()
    expect(page.get_by_role("heading", name="Please confirm")).to_be_visible()
    expect(page.locator("#content-main")).to_contain_text("Nothing has changed yet.")


def success(page: Page):
    return page.locator(".messagelist .success")


def test_support_disables_qsr_for_a_bug(page: Page, shot):
    support = person("support", "sam.support")
    owner = person("sales", "olive.sales")
    _, sub = account(owner, name="Globex Analytics")

    log_in(page, support)
    expect(queue_row(page, "qsr_bugs")).to_contain_text("0 nothing waiting")
    shot("home")
    open_subscription(page, "Globex Analytics")
    expect(page.locator(".field-qsr_status")).to_contain_text("Enabled")
    shot("account")
    page.get_by_role("link", name="Disable QSR for a bug").click()
    page.get_by_label("Bug link").fill(BUG)
    page.get_by_label("Ticket link").fill(TICKET)
    shot("form")
    review_and_confirm(page, "Disable QSR for a bug")
    expect(page.locator(".portal-effect")).to_contain_text(f"disabled for the bug {BUG}")
    shot("confirmation")
    page.get_by_role("button", name="Confirm: Disable QSR for a bug").click()

    expect(page).to_have_url(re.compile(rf"/admin/subscriptions/subscription/{sub.pk}/change/"))
    expect(success(page)).to_have_text(f"QSR disabled for the bug {BUG}.")
    expect(page.locator(".field-qsr_status a")).to_have_attribute("href", BUG)
    # Done: the button no longer leads anywhere.
    expect(page.get_by_role("link", name="Disable QSR for a bug")).to_have_count(0)
    shot("disabled")
    page.get_by_role("link", name="Home").first.click()
    expect(queue_row(page, "qsr_bugs")).to_contain_text("1 oldest today")
    expect(page.locator("#portal-bugs")).to_contain_text("Globex Analytics")
    shot("home-after")
    assert Subscription.objects.get(pk=sub.pk).qsr_bug_url == BUG


def test_sales_requests_a_qsr_pause_on_their_account(page: Page, shot):
    owner = person("sales", "olive.sales")
    other = person("sales", "oscar.sales")
    # 8 seats over the 110 paid: USD 400.00 at the Q2 reconciliation (8 x 25.00 x 2).
    account(owner, name="Initech Ltd", in_use=112, max_used=118)
    account(other, name="Umbrella plc")

    log_in(page, owner)
    expect(queue_row(page, "mine")).to_contain_text("0 nothing waiting")
    shot("home")
    page.locator("#content-main").get_by_role("link", name="Subscriptions", exact=True).click()
    # Only their own accounts are listed.
    expect(page.locator("#result_list")).to_contain_text("Initech Ltd")
    expect(page.locator("#result_list")).not_to_contain_text("Umbrella plc")
    page.get_by_role("link", name="Home").first.click()
    open_subscription(page, "Initech Ltd")
    shot("account")
    page.get_by_role("link", name="Request a QSR pause").click()
    page.get_by_label("Justification").fill("The customer disputes the Q1 seat count.")
    page.get_by_label("Ticket link").fill(TICKET)
    shot("form")
    review_and_confirm(page, "Request a QSR pause")
    expect(page.locator(".portal-effect")).to_contain_text(
        "At stake: 8 seats, USD 400.00. Needs approval by: Sales ops."
    )
    shot("confirmation")
    page.get_by_role("button", name="Confirm: Request a QSR pause").click()

    request = ApprovalRequest.objects.get(requester=owner)
    expect(success(page)).to_have_text(
        f"Request #{request.pk} filed; the approvers have been emailed."
    )
    shot("filed")
    page.get_by_role("link", name="Home").first.click()
    expect(queue_row(page, "mine")).to_contain_text("1 oldest today")
    shot("home-after")
    assert (request.kind, request.status) == ("qsr_pause", "pending")


def test_sales_ops_approves_and_lands_on_the_next_item_of_the_queue(page: Page, shot):
    owner = person("sales", "olive.sales")
    ops = person("sales_ops", "opal.ops")
    today = timezone.localdate()
    first = pause(account(owner, name="Hooli Inc")[1], owner, today)
    second = pause(account(owner, name="Pied Piper LLC")[1], owner, today)
    # The queue lists the newest first.
    ApprovalRequest.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(1))

    log_in(page, ops)
    expect(queue_row(page, "awaiting_me")).to_contain_text("2 oldest 1 day")
    shot("home")
    queue_row(page, "awaiting_me").get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"queue=awaiting_me"))
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("Pied Piper LLC")
    shot("queue")
    rows.first.get_by_role("link").first.click()
    expect(page).to_have_url(re.compile(rf"/approvalrequest/{second.pk}/change/"))
    shot("request")
    page.get_by_role("link", name="Approve", exact=True).click()
    review_and_confirm(page, "Approve")
    shot("confirmation")
    page.get_by_role("button", name="Confirm: Approve").click()

    # The next item of the same queue, not the request just approved.
    expect(success(page)).to_contain_text(f"Next in “Waiting for my approval”: #{first.pk}.")
    expect(page).to_have_url(re.compile(rf"/approvalrequest/{first.pk}/change/"))
    expect(page.locator("#content")).to_contain_text("Hooli Inc")
    shot("next-item")
    page.get_by_role("link", name="Approve", exact=True).click()
    review_and_confirm(page, "Approve")
    page.get_by_role("button", name="Confirm: Approve").click()

    # The queue is empty now: back on it.
    expect(success(page)).to_contain_text("Nothing else in “Waiting for my approval”.")
    expect(page).to_have_url(re.compile(r"/admin/approvals/approvalrequest/\?.*queue=awaiting_me"))
    expect(page.locator("#result_list tbody tr")).to_have_count(0)
    shot("queue-empty")
    # A pause applies on its final approval.
    statuses = ApprovalRequest.objects.filter(pk__in=[first.pk, second.pk])
    assert set(statuses.values_list("status", flat=True)) == {"executed"}
    paused = Subscription.objects.filter(pk__in=[first.subscription_id, second.subscription_id])
    assert set(paused.values_list("qsr_state", flat=True)) == {"paused"}


def test_deal_desk_processes_an_approved_refund(page: Page, shot):
    owner = person("sales", "olive.sales")
    desk = person("deal_desk", "dana.desk")
    approvers = type("People", (), {})()
    approvers.manager = person("support_manager", "max.manager")
    approvers.ops = person("sales_ops", "opal.ops")
    recon = processed_q1(account(owner, name="Vandelay Industries")[1])
    request = approve_both(refund(recon, owner, timezone.localdate(), seats=4), approvers)

    log_in(page, desk)
    expect(queue_row(page, "to_execute")).to_contain_text("1 oldest today")
    shot("home")
    queue_row(page, "to_execute").get_by_role("link").click()
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("Vandelay Industries")
    shot("queue")
    rows.get_by_role("link").first.click()
    expect(page).to_have_url(re.compile(rf"/approvalrequest/{request.pk}/change/"))
    shot("request")
    page.get_by_role("link", name="Process refund").click()
    review_and_confirm(page, "Process refund")
    expect(page.locator(".portal-effect")).to_contain_text("A credit memo of USD -300.00")
    shot("confirmation")
    page.get_by_role("button", name="Confirm: Process refund").click()

    expect(success(page)).to_contain_text("Refund processed.")
    expect(page.get_by_role("link", name="Process refund")).to_have_count(0)
    shot("processed")
    page.get_by_role("link", name="Home").first.click()
    expect(queue_row(page, "to_execute")).to_contain_text("0 nothing waiting")
    shot("home-after")
    assert ApprovalRequest.objects.get(pk=request.pk).status == "executed"


def test_finance_reads_the_revenue_chart_on_the_home_page(page: Page, shot):
    finance = person("finance", "fern.finance")
    owner = person("sales", "olive.sales")
    today = timezone.localdate()
    this_quarter, last = last_quarters(today, 2)[::-1]
    recon = processed_q1(account(owner, name="Stark Industries")[1])
    Reconciliation.objects.filter(pk=recon.pk).update(invoiced_at=timezone.now())
    ReconciliationFactory(
        subscription=account(owner, name="Wayne Enterprises")[1],
        status="processed",
        amount="1250.00",
        invoiced_at=timezone.make_aware(datetime.combine(last, time(12))) + timedelta(days=5),
    )

    log_in(page, finance)
    money = page.locator("#portal-money")
    expect(money.get_by_role("heading")).to_have_text("Revenue, waivers and refunds per quarter")
    chart = page.locator("#revenue-USD svg.pygal-chart")
    expect(chart).to_be_visible()
    expect(chart).to_contain_text("USD per quarter")
    expect(chart).to_contain_text("QSR revenue")
    table = page.locator("#revenue-table-USD")
    cells = {
        q: table.locator(f'tr[data-quarter="{quarter_label(q)}"] td') for q in (this_quarter, last)
    }
    expect(cells[this_quarter]).to_have_text(["USD 750.00", "USD 0.00", "USD 0.00"])
    expect(cells[last]).to_have_text(["USD 1,250.00", "USD 0.00", "USD 0.00"])
    money.scroll_into_view_if_needed()
    shot("revenue")
    assert page.locator("#portal-money script").count() == 0
