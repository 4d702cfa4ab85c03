"""The approvals app's buttons that file requests and record disputes
(approvals/admin_actions/requests.py), one walk through each: form -> confirmation page
with its money or seat effect (nothing changed yet) -> service. (DOMAIN.md "Max seats
reset", "QSR refund", "Disabling, pausing and disputing QSR".)"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from approvals.models import ApprovalRequest, Dispute
from subscriptions import billing
from tests.admin_buttons import (
    SMALL,
    TICKET,
    Kind,
    QsrState,
    Status,
    fresh,
    live_subscription,
    processed_reconciliation,
    q2_date,
    walk,
    why,
)

pytestmark = pytest.mark.django_db


# --- One walk through each action: form -> confirmation with the effect -> done ----------


def test_sales_owner_requests_a_pause_to_the_end_of_the_term(client, portal):
    sub = live_subscription(portal)
    client.force_login(portal.owner)

    review = walk(client, sub, "request-pause", why(until="")(portal, sub))

    last_day = sub.term_end - timedelta(days=1)
    assert f"QSR paused from approval until {last_day}" in review
    assert (
        "10 seats over the paid 110 would be charged USD 500.00 at the Q2 reconciliation on "
        f"{q2_date()}; the pause defers that charge."
    ) in review
    assert "At stake: 10 seats, USD 500.00. Needs approval by: Sales ops." in review
    request = ApprovalRequest.objects.get(subscription=sub)
    assert (request.kind, request.status, request.requester) == (
        Kind.QSR_PAUSE,
        Status.PENDING,
        portal.owner,
    )
    assert (request.pause_until, request.seats_at_stake, request.amount_at_stake) == (
        last_day,
        10,
        Decimal("500.00"),
    )
    assert request.ticket_url == TICKET
    assert fresh(sub).qsr_state == QsrState.ENABLED  # only once sales ops approve


def test_support_requests_a_max_seats_reset(client, portal):
    sub = live_subscription(portal)
    client.force_login(portal.users["support"])

    review = walk(client, sub, "request-reset", why(new_max_seats=112)(portal, sub))

    assert f"Max seats used of {sub.namespace} goes from 120 to 112" in review
    assert "(8 seats waived; 100 in use today)" in review
    assert (
        f"8 of them are above the 110 paid seats: USD 400.00 not charged at the Q2 "
        f"reconciliation on {q2_date()}."
    ) in review
    assert "At stake: 8 seats, USD 400.00. Needs approval by: Sales ops or support manager." in (
        review
    )
    request = ApprovalRequest.objects.get(subscription=sub)
    assert (request.kind, request.status, request.seats_at_stake, request.amount_at_stake) == (
        Kind.MAX_SEATS_RESET,
        Status.PENDING,
        8,
        Decimal("400.00"),
    )
    assert request.required_slots == [SMALL]
    assert fresh(sub.namespace).max_seats_used == 120  # support executes it once approved


def test_sales_owner_requests_a_free_period(client, portal):
    sub = live_subscription(portal)
    today = timezone.localdate()
    client.force_login(portal.owner)

    review = walk(
        client, sub, "request-free-period", why(start=today.isoformat(), days=10)(portal, sub)
    )

    # 110 seats x 100.00 prepaid, 10 days of the term.
    worth = billing.round_money(Decimal("11000.00") * 10 / sub.term_days, "USD")
    assert (
        f"10 free days from {today} for 110 seats, worth {billing.format_money(worth, 'USD')}: "
        f"the term end moves from {sub.term_end} to {sub.term_end + timedelta(days=10)} "
        "once approved."
    ) in review
    assert "Needs approval by: Sales ops." in review
    request = ApprovalRequest.objects.get(subscription=sub)
    assert (request.kind, request.free_from, request.free_days, request.amount_at_stake) == (
        Kind.FREE_PERIOD,
        today,
        10,
        worth,
    )
    assert fresh(sub).term_end == sub.term_end


def test_support_records_a_dispute_routed_to_the_sales_manager(client, portal):
    recon = processed_reconciliation(portal)
    support = portal.users["support"]
    client.force_login(support)

    review = walk(
        client,
        recon,
        "record-dispute",
        {"reason": "The customer says 10 seats were bots.", "ticket_url": TICKET},
    )

    assert f"A dispute of {recon} (USD 750.00) is routed to the account's sales manager, " in (
        review
    )
    assert "sales.owner, by email" in review
    assert f"Your ticket {TICKET} is recorded as closed (routed)" in review
    dispute = Dispute.objects.get(reconciliation=recon)
    assert (dispute.status, dispute.assigned_to, dispute.recorded_by) == (
        Dispute.Status.ROUTED,
        portal.owner,
        support,
    )
    assert dispute.ticket_closed_at is not None
    recon_after = fresh(recon)
    assert (recon_after.status, recon_after.amount) == (recon.status, recon.amount)


def test_sales_owner_requests_a_refund_with_its_reset(client, portal):
    recon = processed_reconciliation(portal)
    client.force_login(portal.owner)

    review = walk(client, recon, "request-refund", why(seats=4)(portal, recon))

    assert (
        "A credit memo of USD -300.00 for 4 of the 10 seats reconciled in Q1 (USD 750.00 charged)."
    ) in review
    assert "Paid seats go from 110 to 106 when deal desk processes it." in review
    assert "At stake: 4 seats, USD 300.00. Needs approval by: Sales ops." in review
    refund = ApprovalRequest.objects.get(kind=Kind.QSR_REFUND)
    assert (refund.reconciliation, refund.seats_at_stake, refund.amount_at_stake) == (
        recon,
        4,
        Decimal("300.00"),
    )
    assert refund.linked_reset.kind == Kind.MAX_SEATS_RESET
    assert refund.linked_reset.status == Status.PENDING
    assert fresh(recon.subscription).seats == 110  # only once deal desk processes it
