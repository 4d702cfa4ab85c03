"""What a daily user reads and does on the pages: words instead of codes (QSR
eligibility, choices, approval slots, the history), each thing said once, the right
plural, a date picker, the approved value already filled in, and actions with nothing to
fill in opening on their confirmation page."""

from __future__ import annotations

import html
import re
from datetime import date
from decimal import Decimal

import pytest
from django.test import Client

from approvals.models import ApprovalDecision, ApprovalRequest
from approvals.services import pause_stake
from portal.errors import DomainError
from portal.policy import SYSTEM
from subscriptions.models import Reconciliation, Subscription
from subscriptions.services.notices import reconciliation_notice_texts
from subscriptions.services.subscriptions import (
    subscription_qsr_disable_for_bug,
    subscription_qsr_enable,
)
from tests.admin_buttons import (
    BUG,
    TICKET,
    change_url,
    do_url,
    fresh,
    large_reset_request,
    live_subscription,
    refund_request,
    reset_request,
    snapshot,
)
from tests.assertions import admin_url
from tests.factories import ReconciliationFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db
Status = ApprovalRequest.Status


def words(response) -> str:
    """The page's text as a reader sees it: tags dropped, entities decoded, spaces folded."""
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", response.content.decode(), flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


# --- Words, not codes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("eligibility", "shown"),
    [
        ({"term_months": 24}, "Ineligible: 24-month term (QSR needs 12 months)"),
        ({"channel": "reseller"}, "Ineligible: bought through a reseller"),
        ({"payment_method": "purchase_order"}, "Ineligible: paid by purchase order"),
        ({"program": "open_source"}, "Ineligible: Open source program"),
        ({"offline_license": True}, "Ineligible: offline license"),
        (
            {"payment_method": "purchase_order", "offline_license": True},
            "Ineligible: paid by purchase order, offline license",
        ),
    ],
)
def test_the_subscription_list_says_why_qsr_does_not_apply(admin_client, eligibility, shown):
    SubscriptionFactory(**eligibility)

    page = words(admin_client.get(admin_url(Subscription)))

    assert shown in page
    for code in ("term_length", "purchase_order", "offline_license", "open_source"):
        assert code not in page


def test_a_pause_refused_for_an_ineligible_subscription_says_why_in_words():
    sub = SubscriptionFactory(payment_method="purchase_order", term_start=date(2026, 1, 1))

    with pytest.raises(DomainError) as refused:
        pause_stake(subscription=sub, until=None, today=date(2026, 2, 1))

    assert "(paid by purchase order)" in refused.value.message


def test_the_subscription_page_names_its_fields_and_states_in_words(admin_client):
    sub = SubscriptionFactory(qsr_state="disabled_for_bug", qsr_bug_url=BUG)

    page = words(admin_client.get(admin_url(Subscription, "change", sub.pk)))

    assert "QSR state: Disabled for a bug" in page
    assert "Bug link:" in page and "QSR changed by:" in page
    assert "Qsr" not in page and "disabled_for_bug" not in page


def test_history_shows_what_changed_in_words(admin_client, user_with_role):
    support = user_with_role("support", username="sam")
    sub = SubscriptionFactory()
    subscription_qsr_disable_for_bug(
        subscription=sub, bug_url=BUG, ticket_url=TICKET, actor=support
    )
    subscription_qsr_enable(subscription=fresh(sub), actor=SYSTEM)

    page = words(admin_client.get(admin_url(Subscription, "history", sub.pk)))

    assert "QSR state: Enabled → Disabled for a bug" in page
    assert "QSR state: Disabled for a bug → Enabled" in page
    assert f"Bug link: — → {BUG}" in page
    assert "QSR changed by: — → sam" in page
    # The portal's own change (no user) is the portal's, not "None".
    assert "The portal" in page
    for raw in ("disabled_for_bug", "pk=None", "Deleted user", "None"):
        assert raw not in page


def test_approval_slots_are_named_for_people(admin_client, portal):
    request = reset_request(portal, status=Status.APPROVED)

    decisions = words(admin_client.get(admin_url(ApprovalDecision)))
    page = words(admin_client.get(change_url(request)))

    assert "Sales ops or support manager" in decisions
    assert "Sales ops or support manager" in page
    assert "sales_ops_or_support_manager" not in decisions + page
    assert (
        str(request.decisions.get())
        == f"Approve (Sales ops or support manager) by {portal.users['sales_ops']}"
    )


# --- Said once, with the right plural ----------------------------------------------------


def _confirm(client, obj, name: str, data: dict):
    """Post the form for review, then confirm what the confirmation page carries."""
    url = do_url(obj, name)
    review = client.post(url, data)
    assert "Please confirm" in review.text
    carried = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', review.text))
    return client.post(url, {k: html.unescape(v) for k, v in carried.items()}, follow=True)


def test_an_approval_that_others_still_wait_on_says_whom(client, portal):
    request = large_reset_request(portal)
    client.force_login(portal.users["sales_ops"])

    done = _confirm(client, request, "approve", {"reason": ""})

    (message,) = messages_of(done)
    assert "Your approval is recorded; still waiting for: Executive, Finance." in message


def test_the_last_approval_says_what_happens_next_once(client, portal):
    request = reset_request(portal)
    client.force_login(portal.users["support_manager"])

    done = _confirm(client, request, "approve", {"reason": ""})

    assert fresh(request).status == Status.APPROVED
    (message,) = messages_of(done)
    assert "Approved: it now waits for support to execute it." in message
    assert message.lower().count("approved") == 1


def test_one_seat_is_a_seat(client, portal):
    request = reset_request(portal, seats_at_stake=1, amount_at_stake=Decimal("50.00"))
    client.force_login(portal.users["sales_ops"])

    review = words(client.post(do_url(request, "approve"), {"reason": ""}))

    assert "1 seat, USD 50.00 at stake" in review
    assert "1 seats" not in review


def test_a_credit_is_written_like_every_other_negative_amount(client, portal):
    refund = refund_request(portal)
    client.force_login(portal.users["deal_desk"])

    review = words(client.get(do_url(refund, "process-refund")))

    assert "A credit memo of USD -300.00 to Acme Corp for 4 seats" in review
    assert "-USD" not in review


def test_the_customers_notice_counts_in_words_and_dates_like_the_portal():
    recon = ReconciliationFactory(
        subscription=SubscriptionFactory(),
        status=Reconciliation.Status.PENDING,
        seats_paid=100,
        max_seats_used=101,
        overage_seats=1,
        remaining_quarters=1,
        quarter=3,
        annual_unit_price=Decimal("100.00"),
        amount=Decimal("25.00"),
    )

    subject, body = reconciliation_notice_texts([recon.pk])[recon.pk]

    assert subject == "Quarterly seat reconciliation: USD 25.00 due on 2026-04-08"
    assert "used up to 101 seats" in body
    assert "(1 seat for the 1 remaining quarter of the term) on 2026-04-08" in body
    assert "quarter(s)" not in body and not re.search(r"\b1 seats", body)


# --- Forms -------------------------------------------------------------------------------


def test_the_pause_until_field_is_a_date_picker_that_still_checks_its_input(client, portal):
    sub = live_subscription(portal)
    client.force_login(portal.owner)
    url = do_url(sub, "request-pause")

    form = client.get(url)
    refused = client.post(url, {"until": "next Friday", "justification": "x", "ticket_url": TICKET})

    assert re.search(r'<input type="text" name="until"[^>]*class="vDateField', form.text)
    assert "admin/js/admin/DateTimeShortcuts.js" in form.text
    assert "/admin/jsi18n/" in form.text
    assert refused.status_code == 200
    assert refused.context["form"].errors["until"] == ["Enter a valid date."]


def test_executing_an_approved_reset_starts_from_the_approved_value(client, portal):
    request = reset_request(portal, status=Status.APPROVED)  # 120 max seats used, 8 waived
    client.force_login(portal.users["support"])

    form = client.get(do_url(request, "execute-reset"))

    assert re.search(r'name="new_max_seats" value="112"', form.text)


def test_an_action_with_nothing_to_fill_in_opens_on_its_confirmation(client, portal):
    sub = live_subscription(portal, qsr_state="disabled_for_bug", qsr_bug_url=BUG)
    client.force_login(portal.users["support"])
    before = snapshot()

    page = client.get(do_url(sub, "enable-qsr"))
    # A GET never changes anything, whatever it carries.
    client.get(do_url(sub, "enable-qsr") + "?confirmed=yes")

    assert snapshot() == before
    assert "Please confirm" in page.text and 'value="Review"' not in page.text
    assert "goes from disabled for a bug back to enabled" in words(page)
    assert 'name="csrfmiddlewaretoken"' in page.text
    assert '<input type="hidden" name="confirmed" value="yes">' in page.text


def test_the_confirmation_still_needs_the_csrf_token(portal):
    sub = live_subscription(portal, qsr_state="disabled_for_bug", qsr_bug_url=BUG)
    client = Client(enforce_csrf_checks=True)
    client.force_login(portal.users["support"])
    before = snapshot()

    forged = client.post(do_url(sub, "enable-qsr"), {"confirmed": "yes"})

    assert forged.status_code == 403
    assert snapshot() == before


def test_processing_a_refund_opens_on_its_confirmation_and_confirming_moves_the_money(
    client, portal
):
    refund = refund_request(portal)
    client.force_login(portal.users["deal_desk"])
    url = do_url(refund, "process-refund")

    page = client.get(url)
    assert "Please confirm" in page.text
    assert fresh(refund).status == Status.APPROVED

    done = client.post(url, {"confirmed": "yes"})

    assert done.status_code == 302
    assert fresh(refund).status == Status.EXECUTED
