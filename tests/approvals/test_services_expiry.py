"""Approval requests that expire (approvals/services/expiry.py): pending ones after 30
days, approved ones not executed within 14, as the last step of the nightly run."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail

from approvals.models import ApprovalRequest
from approvals.services import (
    approval_approve,
    approval_execute_reset,
    approval_process_refund,
    approval_requests_expire,
)
from portal.policy import SYSTEM
from subscriptions.services import nightly
from tests.approvals.helpers import account, fresh, pause, refund, refused, sent_to

pytestmark = pytest.mark.django_db

Status = ApprovalRequest.Status


def test_pending_requests_expire_after_30_days(p, today):
    _, sub = account(p.owner)
    request = pause(sub, p.owner, today)

    assert approval_requests_expire(run_date=today + timedelta(days=29), actor=SYSTEM) == {}
    assert fresh(request).status == Status.PENDING
    counts = approval_requests_expire(run_date=today + timedelta(days=30), actor=SYSTEM)

    assert counts == {"expired:pending": 1}
    assert fresh(request).status == Status.EXPIRED
    with refused(None, "This request is expired already."):
        approval_approve(request=request, actor=p.ops)


def test_expiry_is_the_last_step_of_the_nightly_run():
    assert nightly.STEPS[-1] == "expiry"
    assert nightly.registered_step("expiry") is approval_requests_expire


def test_approved_requests_expire_when_not_executed_within_14_days(p, today, eleven):
    approval_approve(request=eleven, actor=p.ops)
    approval_approve(request=eleven, actor=p.executive)
    _, sub = account(p.owner)
    done = pause(sub, p.owner, today)
    approval_approve(request=done, actor=p.ops)

    assert approval_requests_expire(run_date=today + timedelta(days=13), actor=SYSTEM) == {}
    counts = approval_requests_expire(run_date=today + timedelta(days=14), actor=SYSTEM)

    assert counts == {"expired:approved": 1}
    assert fresh(eleven).status == Status.EXPIRED
    assert fresh(done).status == Status.EXECUTED  # what was done stays done
    with refused(None, "Only an approved request can be executed"):
        approval_execute_reset(request=eleven, new_max_seats=100, actor=p.support)
    # Expiring again changes nothing.
    assert approval_requests_expire(run_date=today + timedelta(days=60), actor=SYSTEM) == {}


def test_an_expiring_reset_ends_its_refund_and_the_requester_hears_of_both(
    p, today, recon, committed
):
    request = refund(recon, p.owner, today, seats=4)
    approval_approve(request=request.linked_reset, actor=p.manager)  # the refund still waits
    mail.outbox.clear()

    with committed():
        counts = approval_requests_expire(run_date=today + timedelta(days=14), actor=SYSTEM)

    assert counts == {"expired:approved": 1}
    reset, ended = fresh(request.linked_reset), fresh(request)
    assert reset.status == Status.EXPIRED
    assert reset.history.latest().history_change_reason == "expired (approved too long)"
    assert reset.history.latest().history_user is None  # the portal's own job
    assert ended.status == Status.CANCELLED
    assert ended.history.latest().history_change_reason == (
        "cancelled: its max seats reset expired"
    )
    subjects = sent_to(p.owner)
    assert any(s.startswith("Your request was expired") for s in subjects), subjects
    assert any(s.startswith("Your request was cancelled") for s in subjects), subjects
    # Deal desk is not left with a refund to process.
    with refused(None, "Only an approved request can be executed; this one is cancelled."):
        approval_process_refund(request=ended, actor=p.desk)
