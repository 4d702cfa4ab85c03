"""Deciding on approval requests (approvals/services/decisions.py and execution.py):
separation of duties, rejection, cancellation, and repeated approvals and executions
that change nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from approvals.models import ApprovalDecision, ApprovalRequest
from approvals.services import (
    approval_approve,
    approval_cancel,
    approval_execute_reset,
    approval_process_refund,
    approval_reject,
    approval_requests_expire,
    refund_effect,
)
from portal import policy
from portal.policy import SYSTEM, Action, NotAllowed
from subscriptions.models import InvoiceLine, Reconciliation, Subscription
from tests.approvals.helpers import (
    account,
    approve_both,
    database_state,
    fresh,
    not_allowed,
    own,
    pause,
    refund,
    refused,
    sent_to,
)
from tests.assertions import assert_db_rejects
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

Status = ApprovalRequest.Status


# --- Separation of duties ----------------------------------------------------------------


def test_nobody_approves_their_own_request(p, today):
    both = UserFactory(roles=["sales", "sales_ops"])
    customer, sub = account(p.owner)
    own(customer, both)
    request = pause(sub, both, today)

    assert not policy.may(both, Action.DECIDE, request)
    with not_allowed("Nobody approves their own request."):
        approval_approve(request=request, actor=both)
    with not_allowed("Nobody approves their own request."):
        approval_reject(request=request, actor=both, reason="Changed my mind.")


def test_the_database_refuses_a_forged_self_approval(p, today):
    _, sub = account(p.owner)
    request = pause(sub, p.owner, today)

    assert_db_rejects(
        ApprovalDecision,
        lambda: ApprovalDecision.objects.create(
            request=request,
            slot="sales_ops",
            approver=p.owner,
            requester=p.owner,
            decision="approve",
        ),
        "approval_not_own_request",
    )


def test_one_person_fills_one_slot_of_a_request(p, eleven):
    both = UserFactory(roles=["sales_ops", "executive"])
    approval_approve(request=eleven, actor=both)

    assert policy.why_not(both, Action.DECIDE, eleven) == (
        "You have decided on this request already; one person fills one slot."
    )
    # A second click fills no second slot: the executive slot waits for someone else.
    approval_approve(request=eleven, actor=both)
    with not_allowed("You have decided on this request already"):
        approval_reject(request=eleven, actor=both, reason="Second thoughts.")
    assert fresh(eleven).status == Status.PENDING
    assert list(eleven.decisions.values_list("slot", "approver")) == [("sales_ops", both.pk)]
    assert_db_rejects(
        ApprovalDecision,
        lambda: ApprovalDecision.objects.create(
            request=eleven,
            slot="executive",
            approver=both,
            requester=eleven.requester,
            decision="approve",
        ),
        "approval_one_slot_per_person",
    )
    approval_approve(request=eleven, actor=p.executive)
    assert fresh(eleven).status == Status.APPROVED


def test_whoever_requested_a_refund_does_not_process_it(p, today, recon):
    both = UserFactory(roles=["support", "deal_desk"])
    request = approve_both(refund(recon, both, today, seats=4), p)

    with not_allowed("Whoever requested a change does not execute it."):
        approval_process_refund(request=request, actor=both)

    approval_process_refund(request=request, actor=p.desk)
    assert fresh(request).executed_by == p.desk


def test_a_refund_writes_the_effect_its_confirmation_page_shows(p, today, recon):
    request = approve_both(refund(recon, p.owner, today, seats=4), p)
    sub = request.subscription
    effect = refund_effect(request, reconciliation=recon, subscription=sub)

    approval_process_refund(request=request, actor=p.desk)

    line = InvoiceLine.objects.get(reconciliation=recon)
    assert (line.quantity, line.unit_price, line.amount) == (
        effect.seats,
        effect.unit_price,
        -effect.amount,
    )
    recon = fresh(recon)
    assert fresh(sub).seats == effect.paid_seats_after == 106
    assert recon.refunded_seats == effect.refunded_seats_after == 4
    assert (recon.status == Reconciliation.Status.REFUNDED) == effect.fully_refunded


# --- Rejection, cancellation, expiry -----------------------------------------------------


def test_a_rejection_ends_the_request(p, today, eleven, committed):
    with committed():
        approval_reject(request=eleven, actor=p.ops, reason="Usage was real.")

    request = fresh(eleven)
    assert request.status == Status.REJECTED and request.decided_at is not None
    assert request.decisions.get().reason == "Usage was real."
    assert f"Your request was rejected: {request}" in sent_to(p.owner)
    with refused(None, "This request is rejected already."):
        approval_approve(request=eleven, actor=p.executive)
    with refused(None, "Only an approved request can be executed"):
        approval_execute_reset(request=eleven, new_max_seats=100, actor=p.support)


def test_a_rejection_says_why(p, eleven):
    with refused("reason", "Say why it is rejected"):
        approval_reject(request=eleven, actor=p.ops, reason="  ")


def test_a_rejected_pause_leaves_qsr_on(p, today):
    _, sub = account(p.owner)
    request = pause(sub, p.owner, today)

    approval_reject(request=request, actor=p.ops, reason="Charge stands.")

    assert fresh(sub).qsr_state == Subscription.QsrState.ENABLED


@pytest.mark.parametrize("end", ["reject", "cancel"])
def test_a_reset_that_ends_takes_its_open_refund_with_it(p, today, recon, end):
    request = refund(recon, p.owner, today, seats=4)
    approval_approve(request=request, actor=p.ops)

    if end == "reject":
        approval_reject(request=request.linked_reset, actor=p.manager, reason="No.")
    else:
        approval_cancel(request=request.linked_reset, actor=p.owner)

    request = fresh(request)
    assert request.status == Status.CANCELLED
    assert request.history.latest().history_change_reason.startswith("cancelled: its max seats")
    with refused(None, "Only an approved request can be executed"):
        approval_process_refund(request=request, actor=p.desk)


def test_a_reset_whose_refund_was_processed_cannot_be_cancelled(p, today, recon):
    """The seats were refunded: without the reset the next reconciliation would charge
    them again, and the refund would never be complete."""
    request = approve_both(refund(recon, p.owner, today, seats=4), p)
    approval_process_refund(request=request, actor=p.desk)

    with refused(None, "refund"):
        approval_cancel(request=request.linked_reset, actor=p.owner)

    approval_execute_reset(request=request.linked_reset, new_max_seats=106, actor=p.support)
    assert fresh(request).refund_complete is True


def test_a_reset_whose_refund_was_processed_does_not_expire(p, today, recon):
    request = approve_both(refund(recon, p.owner, today, seats=4), p)
    approval_process_refund(request=request, actor=p.desk)

    approval_requests_expire(run_date=today + timedelta(days=60), actor=SYSTEM)

    assert fresh(request.linked_reset).status == Status.APPROVED
    approval_execute_reset(request=request.linked_reset, new_max_seats=106, actor=p.support)
    assert fresh(request).refund_complete is True


def test_the_requester_cancels_a_pending_or_approved_request(p, today, eleven):
    _, sub = account(p.owner)
    pending = pause(sub, p.owner, today)

    approval_cancel(request=pending, actor=p.owner, reason="Customer paid.")
    approval_approve(request=eleven, actor=p.ops)
    approval_approve(request=eleven, actor=p.executive)
    approval_cancel(request=eleven, actor=p.owner)

    assert fresh(pending).status == fresh(eleven).status == Status.CANCELLED
    assert fresh(pending).history.latest().history_change_reason == "cancelled: Customer paid."
    assert fresh(sub).qsr_state == Subscription.QsrState.ENABLED
    # Cancelled is final.
    with refused(None, "This request is cancelled already."):
        approval_approve(request=pending, actor=p.ops)


@pytest.mark.parametrize("who", ["ops", "support", "other_owner"])
def test_only_the_requester_cancels(p, today, who):
    customer, sub = account(p.owner)
    request = pause(sub, p.owner, today)
    if who == "other_owner":
        actor = UserFactory(roles=["sales"])
        own(customer, actor)  # even another manager of the same account
    else:
        actor = getattr(p, who)

    with pytest.raises(NotAllowed):
        approval_cancel(request=request, actor=actor)

    assert fresh(request).status == Status.PENDING


def test_an_executed_request_cannot_be_cancelled(p, today):
    _, sub = account(p.owner)
    request = pause(sub, p.owner, today)
    approval_approve(request=request, actor=p.ops)

    with refused(None, "This request is executed; it cannot be cancelled now."):
        approval_cancel(request=request, actor=p.owner)


# --- Repeats -----------------------------------------------------------------------------


def test_a_repeated_approval_of_the_last_slot_changes_nothing(p, today):
    _, sub = account(p.owner)
    request = pause(sub, p.owner, today)
    approval_approve(request=request, actor=p.ops)
    before = database_state()

    again = approval_approve(request=request, actor=p.ops)

    assert again.status == Status.EXECUTED
    assert database_state() == before


def test_a_repeated_approval_while_other_slots_wait_changes_nothing(p, eleven):
    approval_approve(request=eleven, actor=p.ops)
    before = database_state()

    again = approval_approve(request=eleven, actor=p.ops)

    assert again.status == Status.PENDING
    assert database_state() == before


def test_a_repeated_execution_changes_nothing(p, eleven):
    approval_approve(request=eleven, actor=p.ops)
    approval_approve(request=eleven, actor=p.executive)
    approval_execute_reset(request=eleven, new_max_seats=100, actor=p.support)
    before = database_state()

    approval_execute_reset(request=eleven, new_max_seats=100, actor=p.support)

    assert database_state() == before
