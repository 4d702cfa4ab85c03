"""Who hears about an approval request (approvals/services/notifications.py): the
approvers of open slots when their turn comes, deal desk for an approved refund."""

from __future__ import annotations

import pytest
from django.core import mail

from approvals.services import approval_approve
from portal.policy import NotAllowed
from tests.approvals.helpers import account, fresh, own, pause, refund, reset, sent_to
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


# --- Who hears about it ------------------------------------------------------------------


def test_approvers_of_open_slots_are_emailed_when_their_turn_comes(p, today, committed):
    _, sub = account(p.owner, seats=100, in_use=95, max_used=111)

    with committed():
        request = reset(sub, p.owner, today, new_max_seats=100)

    need_ops = f"Approval needed (Sales ops): {request}"
    need_exec = f"Approval needed (Executive): {request}"
    assert sent_to(p.ops) == sent_to(p.ops2) == [need_ops]
    assert sent_to(p.executive) == [need_exec]
    for bystander in (p.owner, p.finance, p.manager, p.support, p.desk):
        assert sent_to(bystander) == []

    mail.outbox.clear()
    with committed():
        approval_approve(request=request, actor=p.ops)
    assert sent_to(p.executive) == [need_exec]
    assert sent_to(p.ops) == sent_to(p.ops2) == sent_to(p.owner) == []

    mail.outbox.clear()
    with committed():
        approval_approve(request=request, actor=p.executive)
    request = fresh(request)
    assert sent_to(p.owner) == [f"Your request was approved: {request}"]
    # Support executes resets: they hear it is ready.
    assert sent_to(p.support) == sent_to(p.support2) == [f"Ready to execute: {request}"]
    assert sent_to(p.executive) == sent_to(p.desk) == []


def test_a_requester_in_an_approver_role_is_not_asked_to_approve(p, today, committed):
    both = UserFactory(roles=["sales", "sales_ops"])
    customer, sub = account(p.owner)
    own(customer, both)

    with committed():
        pause(sub, both, today)

    assert sent_to(both) == []
    assert len(sent_to(p.ops)) == 1


@pytest.mark.parametrize("last", ["reset", "refund"])
def test_deal_desk_hears_of_the_refund_once_it_and_its_reset_are_approved(
    p, today, recon, committed, last
):
    request = refund(recon, p.owner, today, seats=4)
    first, second = (request, request.linked_reset)[:: 1 if last == "reset" else -1]
    with committed():
        approval_approve(request=first, actor=p.ops if first == request else p.manager)
    assert sent_to(p.desk) == []  # the other one still waits

    with committed():
        approval_approve(request=second, actor=p.ops if second == request else p.manager)

    # Deal desk processes refunds: they are told which refund is ready.
    assert sent_to(p.desk) == sent_to(p.desk2) == [f"Ready to execute: {fresh(request)}"]


def test_a_refused_action_sends_nothing(p, today, committed):
    _, sub = account(p.owner)
    request = pause(sub, p.owner, today)
    mail.outbox.clear()

    with committed(), pytest.raises(NotAllowed):
        approval_approve(request=request, actor=p.finance)

    assert mail.outbox == []
