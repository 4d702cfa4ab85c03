"""Two people acting on one request at the same moment (DOMAIN.md: nobody fills two
slots, a change happens once): each person is a thread with its own database
connection, lined up on a barrier so both reach the service together. Whatever the
interleaving, the outcome is one of the outcomes a single person could have produced."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.db import connection
from django.utils import timezone

from approvals.models import ApprovalDecision, ApprovalRequest
from approvals.services import (
    approval_approve,
    approval_cancel,
    approval_process_refund,
    approval_request_pause,
    approval_request_refund,
)
from portal.errors import DomainError
from portal.roles import ROLES
from subscriptions.models import Invoice, InvoiceLine, Reconciliation, Subscription
from tests.approvals.helpers import TICKET, WHY, account, processed_q1
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

Status = ApprovalRequest.Status


@pytest.fixture
def people():
    # An earlier transactional test may have flushed the groups the migrations made.
    for role in ROLES:
        Group.objects.get_or_create(name=role)

    def make(name, role):
        return UserFactory(username=name, roles=[role])

    return make


def race(*calls) -> list:
    """Run `calls` at once, one thread and connection each; each one's result or error."""
    barrier = threading.Barrier(len(calls))
    outcomes: list = [None] * len(calls)

    def run(i, call):
        try:
            barrier.wait(timeout=10)
            outcomes[i] = call()
        except Exception as exc:
            outcomes[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread hung (deadlock?)"
    return outcomes


def refused(outcome) -> bool:
    return isinstance(outcome, DomainError)


def paused_history(sub) -> int:
    return sub.history.filter(history_change_reason__startswith="QSR paused until").count()


def executed_history(request) -> int:
    return request.history.filter(status=Status.EXECUTED).count()


@pytest.fixture
def pause(people):
    owner = people("owner", "sales")
    _, sub = account(owner)
    today = timezone.localdate()
    request = approval_request_pause(
        subscription=sub, until=today + timedelta(days=40), justification=WHY,
        ticket_url=TICKET, actor=owner, today=today,
    )  # fmt: skip
    mail.outbox.clear()
    return request


@pytest.mark.parametrize("attempt", range(3))
def test_two_approvers_of_the_last_slot_apply_the_pause_once(people, pause, attempt):
    ops, ops2 = people("ops", "sales_ops"), people("ops2", "sales_ops")

    outcomes = race(
        lambda: approval_approve(request=pause, actor=ops),
        lambda: approval_approve(request=pause, actor=ops2),
    )

    done = [o for o in outcomes if isinstance(o, ApprovalRequest)]
    assert len(done) == 1, outcomes
    (other,) = [o for o in outcomes if o not in done]
    assert refused(other) and other.message == "This request is executed already."
    request = ApprovalRequest.objects.get(pk=pause.pk)
    assert request.status == Status.EXECUTED
    assert ApprovalDecision.objects.filter(request=request).count() == 1
    assert request.decisions.get().approver == request.executed_by
    sub = Subscription.objects.get(pk=pause.subscription_id)
    assert sub.qsr_state == Subscription.QsrState.PAUSED
    assert paused_history(sub) == 1
    assert executed_history(request) == 1
    assert [m.to for m in mail.outbox] == [[request.requester.email]]


@pytest.mark.parametrize("attempt", range(3))
def test_approve_and_cancel_at_once_end_one_way(people, pause, attempt):
    ops = people("ops", "sales_ops")

    approved, cancelled = race(
        lambda: approval_approve(request=pause, actor=ops),
        lambda: approval_cancel(request=pause, actor=pause.requester),
    )

    request = ApprovalRequest.objects.get(pk=pause.pk)
    sub = Subscription.objects.get(pk=pause.subscription_id)
    decisions = ApprovalDecision.objects.filter(request=request).count()
    if request.status == Status.EXECUTED:
        assert isinstance(approved, ApprovalRequest) and refused(cancelled), (approved, cancelled)
        assert sub.qsr_state == Subscription.QsrState.PAUSED
        assert (decisions, paused_history(sub), executed_history(request)) == (1, 1, 1)
    else:
        assert request.status == Status.CANCELLED
        assert isinstance(cancelled, ApprovalRequest) and refused(approved), (approved, cancelled)
        assert sub.qsr_state == Subscription.QsrState.ENABLED
        assert (decisions, paused_history(sub), executed_history(request)) == (0, 0, 0)
    assert request.history.filter(status=Status.CANCELLED).count() == (
        request.status == Status.CANCELLED
    )


@pytest.fixture
def approved_refund(people):
    """The worked example's Q1 (10 seats, 750.00): a refund of 4 seats and its reset,
    both approved."""
    owner = people("owner", "sales")
    ops, manager = people("ops", "sales_ops"), people("manager", "support_manager")
    _, sub = account(owner, seats=110, in_use=100, max_used=110)
    recon = processed_q1(sub)
    refund = approval_request_refund(
        reconciliation=recon, seats=4, justification=WHY, ticket_url=TICKET, actor=owner,
        today=timezone.localdate(),
    )  # fmt: skip
    approval_approve(request=refund.linked_reset, actor=manager)
    return approval_approve(request=refund, actor=ops)


@pytest.mark.parametrize("attempt", range(3))
def test_two_deal_desk_users_processing_one_refund_write_one_credit_memo(
    people, approved_refund, attempt
):
    desk, desk2 = people("desk", "deal_desk"), people("desk2", "deal_desk")

    outcomes = race(
        lambda: approval_process_refund(request=approved_refund, actor=desk),
        lambda: approval_process_refund(request=approved_refund, actor=desk2),
    )

    # The second finds it processed: a no-op or a refusal, never a second memo.
    assert all(isinstance(o, ApprovalRequest) or refused(o) for o in outcomes), outcomes
    assert Invoice.objects.count() == 1
    assert InvoiceLine.objects.get().amount.compare(-300) == 0
    request = ApprovalRequest.objects.get(pk=approved_refund.pk)
    assert request.status == Status.EXECUTED and executed_history(request) == 1
    assert Subscription.objects.get(pk=request.subscription_id).seats == 106
    assert Reconciliation.objects.get(pk=request.reconciliation_id).refunded_seats == 4


@pytest.mark.parametrize("attempt", range(3))
def test_processing_a_refund_while_its_reset_is_cancelled_ends_one_way(
    people, approved_refund, attempt
):
    """Either the refund is processed and its reset stays for support to execute, or the
    reset is cancelled and the refund with it: never a processed refund whose reset is
    gone (the refunded seats would be charged again)."""
    desk = people("desk", "deal_desk")
    reset = approved_refund.linked_reset

    processed, cancelled = race(
        lambda: approval_process_refund(request=approved_refund, actor=desk),
        lambda: approval_cancel(request=reset, actor=reset.requester),
    )

    refund = ApprovalRequest.objects.get(pk=approved_refund.pk)
    reset = ApprovalRequest.objects.get(pk=reset.pk)
    outcome = (refund.status, reset.status)
    assert outcome in {
        (Status.EXECUTED, Status.APPROVED),
        (Status.CANCELLED, Status.CANCELLED),
    }, (outcome, processed, cancelled)
    assert Invoice.objects.count() == (refund.status == Status.EXECUTED)
    if refund.status == Status.EXECUTED:
        assert isinstance(processed, ApprovalRequest) and refused(cancelled)
    else:
        assert isinstance(cancelled, ApprovalRequest) and refused(processed)
