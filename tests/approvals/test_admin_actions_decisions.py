"""The approvals app's buttons that decide, cancel and execute requests and resolve
disputes (approvals/admin_actions/decisions.py), one walk through each; separation of
duties through the buttons."""

from __future__ import annotations

from decimal import Decimal

import pytest

from approvals.models import Dispute
from subscriptions.models import InvoiceLine
from tests.admin_buttons import (
    SMALL,
    Status,
    change_url,
    do_url,
    fresh,
    large_reset_request,
    refund_request,
    reset_request,
    routed_dispute,
    snapshot,
    walk,
)

pytestmark = pytest.mark.django_db


# --- One walk through each action: form -> confirmation with the effect -> done ----------


def test_sales_ops_gives_the_last_approval_of_a_small_reset(client, portal):
    request = reset_request(portal)
    sales_ops = portal.users["sales_ops"]
    client.force_login(sales_ops)

    review = walk(client, request, "approve", {"reason": "Fair."})

    assert (
        f"You approve {request} in the slot “Sales ops or support manager”: 8 seats, "
        "USD 400.00 at stake."
    ) in review
    assert "This is the last approval: the request goes to support to execute." in review
    request = fresh(request)
    assert request.status == Status.APPROVED
    decision = request.decisions.get()
    assert (decision.slot, decision.approver, decision.decision, decision.reason) == (
        SMALL,
        sales_ops,
        "approve",
        "Fair.",
    )


def test_executive_approval_of_a_large_reset_leaves_the_other_slots_waiting(client, portal):
    request = large_reset_request(portal)
    client.force_login(portal.users["executive"])

    review = walk(client, request, "approve", {"reason": ""})

    assert "in the slot “Executive”: 20 seats, USD 20,000.00 at stake." in review
    assert "Still waiting for: Sales ops, Finance." in review
    request = fresh(request)
    assert request.status == Status.PENDING
    assert list(request.decisions.values_list("slot", flat=True)) == ["executive"]


def test_sales_ops_rejects_a_request(client, portal):
    request = reset_request(portal)
    client.force_login(portal.users["sales_ops"])

    review = walk(client, request, "reject", {"reason": "The usage was real."})

    assert f"{request} is rejected and ends here; the requester is emailed your reason." in review
    request = fresh(request)
    assert request.status == Status.REJECTED
    assert request.decisions.get().reason == "The usage was real."


def test_the_requester_cancels_a_request(client, portal):
    request = reset_request(portal)
    client.force_login(portal.owner)

    review = walk(client, request, "cancel", {"reason": "Sorted out."})

    assert f"{request} is withdrawn; approvers need not act on it any more." in review
    assert fresh(request).status == Status.CANCELLED


def test_support_executes_an_approved_reset(client, portal):
    request = reset_request(portal, status=Status.APPROVED)
    namespace = request.subscription.namespace
    support = portal.users["support"]
    client.force_login(support)

    form = client.get(do_url(request, "execute-reset"))
    assert form.context["form"].initial == {"new_max_seats": 112}
    review = walk(client, request, "execute-reset", {"new_max_seats": 112})

    assert (
        f"Max seats used of {namespace} goes from 120 to 112 (100 in use; approval waives up "
        "to 8 seats)."
    ) in review
    assert f"Documented with the ticket {request.ticket_url}." in review
    assert fresh(namespace).max_seats_used == 112
    request = fresh(request)
    assert (request.status, request.reset_to, request.executed_by) == (
        Status.EXECUTED,
        112,
        support,
    )


def test_deal_desk_processes_an_approved_refund(client, portal):
    refund = refund_request(portal)
    recon, sub = refund.reconciliation, refund.subscription
    client.force_login(portal.users["deal_desk"])

    review = walk(client, refund, "process-refund", {})

    assert f"A credit memo of USD -300.00 to Acme Corp for 4 seats of {recon}." in review
    assert "Paid seats go from 110 to 106." in review
    assert f"The linked max seats reset #{refund.linked_reset_id} is approved" in review
    line = InvoiceLine.objects.get(invoice__customer=portal.customer)
    assert (line.kind, line.quantity, line.amount, line.reconciliation) == (
        InvoiceLine.Kind.REFUND_CREDIT,
        4,
        Decimal("-300.00"),
        recon,
    )
    assert fresh(sub).seats == 106
    assert fresh(recon).refunded_seats == 4
    assert fresh(refund).status == Status.EXECUTED


def test_the_sales_manager_records_how_a_dispute_ended(client, portal):
    dispute = routed_dispute(portal)
    client.force_login(portal.owner)

    review = walk(client, dispute, "resolve", {"resolution": "Credited 2 seats."})

    assert f"{dispute} is marked resolved: Credited 2 seats." in review
    dispute = fresh(dispute)
    assert (dispute.status, dispute.resolution) == (Dispute.Status.RESOLVED, "Credited 2 seats.")
    assert dispute.resolved_at is not None


# --- Separation of duties, through the buttons ---------------------------------------------


def test_nobody_approves_their_own_request(client, portal):
    manager = portal.users["support_manager"]
    request = reset_request(portal, requester=manager)  # a small reset: their slot
    client.force_login(manager)
    before = snapshot()

    page = client.get(change_url(request))
    response = client.post(do_url(request, "approve"), {"reason": "", "confirmed": "yes"})

    assert do_url(request, "approve") not in page.text
    assert response.status_code == 403
    assert snapshot() == before


def test_nobody_fills_two_slots_of_one_request(client, portal, user_with_role):
    both = user_with_role("sales_ops", "executive", username="vp.and.ops")
    request = large_reset_request(portal)
    client.force_login(both)

    first = client.post(do_url(request, "approve"), {"reason": "", "confirmed": "yes"})
    before = snapshot()
    page = client.get(change_url(request))
    second = client.post(do_url(request, "approve"), {"reason": "", "confirmed": "yes"})

    assert first.status_code == 302
    assert do_url(request, "approve") not in page.text
    assert second.status_code == 403
    assert snapshot() == before
    assert request.decisions.filter(approver=both).count() == 1


def test_whoever_requested_a_reset_does_not_execute_it(client, portal):
    support = portal.users["support"]
    request = reset_request(portal, status=Status.APPROVED, requester=support)
    client.force_login(support)
    before = snapshot()

    page = client.get(change_url(request))
    response = client.post(
        do_url(request, "execute-reset"), {"new_max_seats": 112, "confirmed": "yes"}
    )

    assert do_url(request, "execute-reset") not in page.text
    assert response.status_code == 403
    assert snapshot() == before
