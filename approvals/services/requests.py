"""Filing approval requests: QSR pause, max seats reset, QSR refund, free period.

What each kind puts at stake (seats, money, approval slots) is read by its `*_stake`
selector (approvals/selectors.py), which the admin shows on the confirmation page;
`approval_request_*` files the request with the same figures. Whoever files it needs the
policy's permission on the account; the figures are never typed in.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any, cast

from django.db import IntegrityError, transaction
from django.utils import timezone

from approvals.models import ApprovalRequest
from approvals.preconditions import open_request, refund_refusal
from approvals.selectors import (
    Stake,
    free_period_stake,
    pause_stake,
    refund_stake,
    reset_stake,
)
from approvals.services.notifications import notify_on_commit
from portal import policy
from portal.errors import DomainError
from subscriptions.models import Reconciliation, Subscription
from subscriptions.services.subscriptions import check_url

if TYPE_CHECKING:
    from django.contrib.auth.models import User

Kind = ApprovalRequest.Kind


# --- Common checks ----------------------------------------------------------------------


def _why(justification: str, ticket_url: str) -> str:
    justification = (justification or "").strip()
    if not justification:
        raise DomainError("Say why: the approvers read this.", field="justification")
    check_url(ticket_url, field="ticket_url", what="the ticket")
    return justification


def _file(
    stake: Stake, *, actor: policy.Actor, justification: str, ticket_url: str, **extra: Any
) -> ApprovalRequest:
    request = ApprovalRequest(
        kind=stake.kind,
        requester=cast("User", actor),  # people file requests; the portal files none
        subscription=stake.subscription,
        justification=justification,
        ticket_url=ticket_url,
        seats_at_stake=stake.seats,
        amount_at_stake=stake.amount,
        currency=stake.currency,
        required_slots=stake.slots,
        **stake.values,
        **extra,
    )
    # simple-history reads who and why off the instance on save.
    request._change_reason = f"requested: {justification[:80]}"  # type: ignore[attr-defined]
    request._history_user = actor  # type: ignore[attr-defined]
    try:
        with transaction.atomic():
            request.save()
    except IntegrityError as exc:
        if "approval_one_open" in str(exc):
            # The one the other filer committed first: said as the disabled button says it.
            refusal = open_request(request.subscription, Kind(request.kind))
            raise DomainError(refusal or "A request of this kind is open already.") from exc
        raise
    notify_on_commit("needs_approval", request.pk)
    return request


# --- QSR pause --------------------------------------------------------------------------


def approval_request_pause(
    *,
    subscription: Subscription,
    until: date | None,
    justification: str,
    ticket_url: str,
    actor: policy.Actor,
    today: date | None = None,
) -> ApprovalRequest:
    """Ask sales ops to pause QSR until `until` (None: the end of the term)."""
    policy.check(actor, policy.Action.REQUEST_PAUSE, subscription)
    justification = _why(justification, ticket_url)
    stake = pause_stake(subscription=subscription, until=until, today=today or timezone.localdate())
    return _file(stake, actor=actor, justification=justification, ticket_url=ticket_url)


# --- Max seats reset --------------------------------------------------------------------


def approval_request_reset(
    *,
    subscription: Subscription,
    new_max_seats: int | None,
    justification: str,
    ticket_url: str,
    actor: policy.Actor,
    today: date | None = None,
) -> ApprovalRequest:
    """Ask to waive a true-up by lowering max seats used (executed by support later)."""
    policy.check(actor, policy.Action.REQUEST_RESET, subscription)
    justification = _why(justification, ticket_url)
    stake = reset_stake(
        subscription=subscription,
        new_max_seats=new_max_seats,
        today=today or timezone.localdate(),
    )
    return _file(stake, actor=actor, justification=justification, ticket_url=ticket_url)


# --- QSR refund -------------------------------------------------------------------------


def approval_request_refund(
    *,
    reconciliation: Reconciliation,
    seats: int,
    justification: str,
    ticket_url: str,
    actor: policy.Actor,
    today: date | None = None,
) -> ApprovalRequest:
    """Ask to refund `seats` of a processed reconciliation, linked to a max seats reset of
    the namespace: the open one there is, or a new one for the same seats."""
    policy.check(actor, policy.Action.REQUEST_REFUND, reconciliation)
    justification = _why(justification, ticket_url)
    today = today or timezone.localdate()
    with transaction.atomic():
        recon = Reconciliation.objects.select_related(
            "subscription__namespace", "subscription__customer"
        ).get(pk=reconciliation.pk)
        stake = refund_stake(reconciliation=recon, seats=seats)
        sub = recon.subscription
        refusal = refund_refusal(recon)
        if refusal is not None:
            raise DomainError(refusal)
        reset = (
            ApprovalRequest.objects.select_for_update(of=("self",))
            .filter(
                subscription=sub,
                kind=Kind.MAX_SEATS_RESET,
                status__in=[ApprovalRequest.Status.PENDING, ApprovalRequest.Status.APPROVED],
                refund__isnull=True,
            )
            .first()
        )
        if reset is None:
            ns = sub.namespace
            reset_stake_ = reset_stake(
                subscription=sub,
                new_max_seats=max(ns.seats_in_use, ns.max_seats_used - seats),
                today=today,
                paid_seats=sub.seats - seats,
            )
            reset = _file(
                reset_stake_,
                actor=actor,
                justification=f"For the refund of {seats} seats of {recon}: {justification}",
                ticket_url=ticket_url,
            )
        return _file(
            stake,
            actor=actor,
            justification=justification,
            ticket_url=ticket_url,
            reconciliation=recon,
            linked_reset=reset,
        )


# --- Free period ------------------------------------------------------------------------


def approval_request_free_period(
    *,
    subscription: Subscription,
    start: date,
    days: int,
    justification: str,
    ticket_url: str,
    actor: policy.Actor,
    today: date | None = None,
) -> ApprovalRequest:
    """Ask to give `days` days of service for free from `start` (the term grows by them)."""
    policy.check(actor, policy.Action.REQUEST_FREE_PERIOD, subscription)
    justification = _why(justification, ticket_url)
    stake = free_period_stake(
        subscription=subscription, start=start, days=days, today=today or timezone.localdate()
    )
    return _file(stake, actor=actor, justification=justification, ticket_url=ticket_url)
