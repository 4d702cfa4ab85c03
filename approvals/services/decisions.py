"""Deciding on requests: approve, reject, cancel.

Every decision locks the request row first, so an approval racing another approval or a
cancel resolves to one outcome: whoever locks second sees the state the first left.
All slots must approve; any rejection ends the request. A pause or a free period is
applied with the final approval, in the same transaction, so it happens exactly once.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, cast

from django.db import transaction
from django.utils import timezone

from approvals.models import ApprovalDecision, ApprovalRequest
from approvals.services.notifications import notify_on_commit
from portal import policy
from portal.errors import DomainError
from portal.logs import money_moved
from subscriptions.models import Suspension
from subscriptions.services.history import save_with_reason
from subscriptions.services.subscriptions import subscription_qsr_pause, suspension_schedule

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from django.contrib.auth.models import User

Status = ApprovalRequest.Status
Kind = ApprovalRequest.Kind

# Allowed (from, to) moves of a request. Execution (approved -> executed) lives in
# execution.py, except for the kinds applied on final approval.
TRANSITIONS: frozenset[tuple[str, str]] = frozenset(
    {
        (Status.PENDING, Status.APPROVED),
        (Status.PENDING, Status.REJECTED),
        (Status.PENDING, Status.CANCELLED),
        (Status.PENDING, Status.EXPIRED),
        (Status.APPROVED, Status.EXECUTED),
        (Status.APPROVED, Status.CANCELLED),
        (Status.APPROVED, Status.EXPIRED),
    }
)
APPLIED_ON_APPROVAL = (Kind.QSR_PAUSE, Kind.FREE_PERIOD)


def lock(request: ApprovalRequest) -> ApprovalRequest:
    return (
        ApprovalRequest.objects.select_for_update(of=("self",))
        .select_related("subscription__customer", "subscription__namespace")
        .get(pk=request.pk)
    )


def move(
    request: ApprovalRequest, to: str, *, actor: policy.Actor, reason: str, **changes: Any
) -> ApprovalRequest:
    """Move the locked `request` to `to`, with who and why on its history."""
    if (request.status, to) not in TRANSITIONS:
        raise DomainError(
            f"This request is {request.get_status_display().lower()}; it cannot be "
            f"{Status(to).label.lower()} now."
        )
    request.status = to
    for name, value in changes.items():
        setattr(request, name, value)
    save_with_reason(request, ["status", *changes], reason=reason, actor=actor)
    return request


def approval_approve(
    *, request: ApprovalRequest, actor: policy.Actor, reason: str = ""
) -> ApprovalRequest:
    """Fill one open slot of `request` with `actor`'s approval; the last slot approves it
    (and applies a pause or free period)."""
    with transaction.atomic():
        req = lock(request)
        # A repeated click, whether other slots still wait or not: already counted.
        if req.decisions.filter(approver=cast("User", actor), decision="approve").exists():
            return req
        if req.status != Status.PENDING:
            raise DomainError(f"This request is {req.get_status_display().lower()} already.")
        policy.check(actor, policy.Action.DECIDE, req)
        slot = policy.slots_for(actor, req)[0]
        _decide(req, actor=actor, slot=slot, decision="approve", reason=reason)
        filled = set(req.decisions.values_list("slot", flat=True))
        if filled < set(req.required_slots):
            notify_on_commit("needs_approval", req.pk)
            return req
        move(req, Status.APPROVED, actor=actor, reason="approved", decided_at=timezone.now())
        if req.kind in APPLIED_ON_APPROVAL:
            _apply(req, actor=actor)
        notify_on_commit("decided", req.pk)
        return req


def approval_reject(
    *, request: ApprovalRequest, actor: policy.Actor, reason: str
) -> ApprovalRequest:
    """Reject `request` in one of `actor`'s open slots: that ends it."""
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("Say why it is rejected: the requester reads this.", field="reason")
    with transaction.atomic():
        req = lock(request)
        if (
            req.status == Status.REJECTED
            and req.decisions.filter(approver=cast("User", actor)).exists()
        ):
            return req
        if req.status != Status.PENDING:
            raise DomainError(f"This request is {req.get_status_display().lower()} already.")
        policy.check(actor, policy.Action.DECIDE, req)
        slot = policy.slots_for(actor, req)[0]
        _decide(req, actor=actor, slot=slot, decision="reject", reason=reason)
        move(req, Status.REJECTED, actor=actor, reason="rejected", decided_at=timezone.now())
        end_linked_refund(req, actor=actor, why="its max seats reset was rejected")
        notify_on_commit("decided", req.pk)
        return req


def approval_cancel(
    *, request: ApprovalRequest, actor: policy.Actor, reason: str = ""
) -> ApprovalRequest:
    """The requester withdraws a pending or approved (not yet executed) request."""
    with transaction.atomic():
        req = lock(request)
        policy.check(actor, policy.Action.CANCEL_REQUEST, req)
        if req.status == Status.CANCELLED:
            return req
        if _refund_processed(req):
            raise DomainError(
                "The refund linked to this max seats reset was processed; support executes "
                "the reset to complete it (without it the refunded seats are charged again)."
            )
        move(req, Status.CANCELLED, actor=actor, reason=f"cancelled: {reason}".strip(": "))
        end_linked_refund(req, actor=actor, why="its max seats reset was cancelled")
        notify_on_commit("decided", req.pk)
        return req


def _decide(
    req: ApprovalRequest, *, actor: policy.Actor, slot: str, decision: str, reason: str
) -> None:
    d = ApprovalDecision(
        request=req,
        slot=slot,
        approver=cast("User", actor),  # people decide; the portal decides nothing
        requester_id=req.requester_id,
        decision=decision,
        reason=reason,
    )
    # simple-history reads who and why off the instance on save.
    d._change_reason = f"{decision} ({slot})"  # type: ignore[attr-defined]
    d._history_user = actor  # type: ignore[attr-defined]
    d.save()


def _refund_processed(reset: ApprovalRequest) -> bool:
    """A reset whose refund deal desk processed must be executed, not dropped."""
    return (
        reset.kind == Kind.MAX_SEATS_RESET
        and ApprovalRequest.objects.filter(linked_reset=reset, status=Status.EXECUTED).exists()
    )


def end_linked_refund(reset: ApprovalRequest, *, actor: policy.Actor, why: str) -> None:
    """A refund cannot go on without its reset: an open one linked to `reset` ends too."""
    if reset.kind != Kind.MAX_SEATS_RESET:
        return
    refund = (
        ApprovalRequest.objects.select_for_update()
        .filter(linked_reset=reset, status__in=[Status.PENDING, Status.APPROVED])
        .first()
    )
    if refund:
        move(refund, Status.CANCELLED, actor=actor, reason=f"cancelled: {why}")
        notify_on_commit("decided", refund.pk)


def _apply(req: ApprovalRequest, *, actor: policy.Actor) -> None:
    """Apply an approved pause or free period: both need nobody to execute them."""
    sub = req.subscription
    if req.kind == Kind.QSR_PAUSE:
        subscription_qsr_pause(subscription=sub, until=req.pause_until, actor=actor)
    else:
        suspension_schedule(
            subscription=sub,
            # A free period request has its start and days (its form and clean() ask both).
            suspend_date=cast(date, req.free_from),
            resume_date=cast(date, req.free_from) + timedelta(days=cast(int, req.free_days)),
            mode=Suspension.Mode.FREE_PERIOD,
            extend_term=True,
            ticket_url=req.ticket_url,
            actor=actor,
            reason=f"free period approved in request #{req.pk}",
        )
    money_moved(
        logger,
        f"{req.kind} applied on approval",
        entity=f"approval_request:{req.pk}",
        amount=req.amount_at_stake,
        currency=sub.currency,
        actor=actor,
        subscription=sub.pk,
    )
    move(
        req,
        Status.EXECUTED,
        actor=actor,
        reason="applied on approval",
        executed_at=timezone.now(),
        executed_by=actor,
    )
