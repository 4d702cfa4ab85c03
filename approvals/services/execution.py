"""Executing approved requests: support executes a max seats reset, deal desk processes a
QSR refund. Each locks the request first, so it is executed at most once; a repeat of
the same execution is a no-op, and whoever requested it cannot execute it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import cast

from django.db import transaction
from django.utils import timezone

from approvals.models import ApprovalRequest
from approvals.preconditions import REFUND_RESET_READY, execution_refusal
from approvals.services.decisions import lock, move
from approvals.services.notifications import notify_on_commit
from portal import policy
from portal.errors import DomainError
from portal.logs import money_moved
from subscriptions import billing
from subscriptions.models import InvoiceLine, Namespace, Reconciliation, Subscription
from subscriptions.services.history import save_with_reason
from subscriptions.services.ledger import InvoiceSpec, LineSpec, invoices_write

logger = logging.getLogger(__name__)
Status = ApprovalRequest.Status
Kind = ApprovalRequest.Kind


def _executable(
    req: ApprovalRequest, kind: str, actor: policy.Actor, action: policy.Action
) -> None:
    if req.kind != kind:
        raise DomainError(f"This is a {req.get_kind_display().lower()} request.")
    policy.check(actor, action, req)
    refusal = execution_refusal(req)
    if refusal is not None:
        raise DomainError(refusal)


def reset_value_check(ns: Namespace, new_max_seats: int, *, approved_seats: int) -> None:
    """The value support enters: seats in use <= new <= max seats used, lowered by no more
    than the approval waived. The confirmation page checks the same before it shows it."""
    if not ns.seats_in_use <= new_max_seats <= ns.max_seats_used:
        raise DomainError(
            f"Enter a value between the seats in use ({ns.seats_in_use}) and the max "
            f"seats used ({ns.max_seats_used}).",
            field="new_max_seats",
        )
    if ns.max_seats_used - new_max_seats > approved_seats:
        raise DomainError(
            f"The approval waives {approved_seats} seats: the value cannot go below "
            f"{ns.max_seats_used - approved_seats}.",
            field="new_max_seats",
        )


def approval_execute_reset(
    *, request: ApprovalRequest, new_max_seats: int, actor: policy.Actor
) -> ApprovalRequest:
    """Lower the namespace's max seats used to `new_max_seats`, which support enters:
    seats in use <= new <= max seats used, and no more below it than was approved."""
    with transaction.atomic():
        req = lock(request)
        policy.check(actor, policy.Action.EXECUTE_RESET, req)
        if req.status == Status.EXECUTED and req.reset_to == new_max_seats:
            return req
        _executable(req, Kind.MAX_SEATS_RESET, actor, policy.Action.EXECUTE_RESET)
        ns = Namespace.objects.select_for_update().get(pk=req.subscription.namespace_id)
        reset_value_check(ns, new_max_seats, approved_seats=req.seats_at_stake)
        was = ns.max_seats_used
        ns.max_seats_used = new_max_seats
        ns.max_seats_used_changed_at = timezone.now()
        # Reports before today cannot raise it again (seat refresh honours this).
        ns.usage_counted_from = timezone.localdate()
        save_with_reason(
            ns,
            ["max_seats_used", "max_seats_used_changed_at", "usage_counted_from"],
            reason=f"max seats reset {was} -> {new_max_seats} (request #{req.pk})",
            actor=actor,
        )
        move(
            req,
            Status.EXECUTED,
            actor=actor,
            reason=f"executed: max seats used {was} -> {new_max_seats}",
            reset_to=new_max_seats,
            executed_at=timezone.now(),
            executed_by=actor,
        )
        money_moved(
            logger,
            "max seats reset executed",
            entity=f"approval_request:{req.pk}",
            amount=req.amount_at_stake,
            currency=req.subscription.currency,
            actor=actor,
            subscription=req.subscription_id,
            seats=was - new_max_seats,
        )
        notify_on_commit("executed", req.pk)
        return req


@dataclass(frozen=True)
class RefundEffect:
    """What processing a QSR refund writes: the credit memo and the seats it takes off."""

    amount: Decimal  # given back, positive; the credit memo line is its negative
    seats: int
    unit_price: Decimal
    currency: str
    paid_seats_after: int  # the subscription's
    refunded_seats_after: int  # the reconciliation's
    fully_refunded: bool  # all the reconciliation's overage is refunded then


def refund_effect(
    request: ApprovalRequest, *, reconciliation: Reconciliation, subscription: Subscription
) -> RefundEffect:
    """What processing the refund `request` does to `reconciliation` and `subscription`
    (its own, locked by the service, as loaded by the confirmation page); writes nothing.
    Raises DomainError if the reconciliation cannot be refunded so."""
    recon, seats = reconciliation, request.seats_at_stake
    if recon.status != Reconciliation.Status.PROCESSED:
        raise DomainError(f"The reconciliation is {recon.get_status_display().lower()}.")
    try:
        amount = billing.qsr_refund_amount(
            quarter=recon.quarter,
            refunded_seats=seats,
            overage=recon.overage_seats or 0,
            already_refunded=recon.refunded_seats,
            annual_unit_price=cast(Decimal, recon.annual_unit_price),
            currency=recon.currency,
        )
    except billing.BillingError as exc:
        raise DomainError(str(exc)) from exc
    return RefundEffect(
        amount=amount,
        seats=seats,
        unit_price=billing.round_money(amount / seats, recon.currency),
        currency=recon.currency,
        paid_seats_after=subscription.seats - seats,
        refunded_seats_after=recon.refunded_seats + seats,
        fully_refunded=recon.refunded_seats + seats == recon.overage_seats,
    )


def approval_process_refund(*, request: ApprovalRequest, actor: policy.Actor) -> ApprovalRequest:
    """Write the refund's credit memo, take the refunded seats off the subscription and
    mark the reconciliation refunded once all its overage is. Needs the refund and its
    linked max seats reset approved."""
    with transaction.atomic():
        # The reset first, then the refund: the order cancelling or rejecting the reset
        # locks them in, so the reset cannot be dropped while the refund is processed.
        # The approval_refund_links_reset constraint: a refund always has its reset.
        reset = cast(
            ApprovalRequest,
            ApprovalRequest.objects.select_for_update()
            .filter(pk__in=ApprovalRequest.objects.filter(pk=request.pk).values("linked_reset"))
            .first(),
        )
        req = lock(request)
        policy.check(actor, policy.Action.PROCESS_REFUND, req)
        if req.status == Status.EXECUTED and req.kind == Kind.QSR_REFUND:
            return req
        _executable(req, Kind.QSR_REFUND, actor, policy.Action.PROCESS_REFUND)
        if reset.status not in REFUND_RESET_READY:
            raise DomainError(
                f"The linked max seats reset #{reset.pk} is {reset.get_status_display().lower()};"
                " a refund is processed once both are approved."
            )
        # A refund is of a reconciliation, and a processed one has its price.
        recon = Reconciliation.objects.select_for_update().get(pk=cast(int, req.reconciliation_id))
        sub = Subscription.objects.select_for_update().get(pk=req.subscription_id)
        effect = refund_effect(req, reconciliation=recon, subscription=sub)
        reason = f"QSR refund, request #{req.pk}"
        line = LineSpec(
            kind=InvoiceLine.Kind.REFUND_CREDIT,
            description=f"Refund of {effect.seats} seats of {recon}",
            quantity=effect.seats,
            unit_price=effect.unit_price,
            period_start=recon.reconciliation_date,
            period_end=sub.term_end,
            amount=-effect.amount,
            reconciliation_id=recon.pk,
        )
        spec = InvoiceSpec.for_subscription(
            sub, key=f"refund:{req.pk}", issue_date=timezone.localdate(), lines=[line]
        )
        invoices_write(specs=[spec], actor=actor, reason=reason)
        sub.seats = effect.paid_seats_after
        save_with_reason(sub, ["seats"], reason=reason, actor=actor)
        recon.refunded_seats = effect.refunded_seats_after
        fields = ["refunded_seats"]
        if effect.fully_refunded:
            recon.status = Reconciliation.Status.REFUNDED
            fields.append("status")
        save_with_reason(recon, fields, reason=reason, actor=actor)
        move(
            req,
            Status.EXECUTED,
            actor=actor,
            reason=f"refund processed: -{billing.format_money(effect.amount, recon.currency)}",
            executed_at=timezone.now(),
            executed_by=actor,
        )
        money_moved(
            logger,
            "refund processed",
            entity=f"approval_request:{req.pk}",
            amount=-effect.amount,
            currency=recon.currency,
            actor=actor,
            subscription=sub.pk,
            reconciliation=recon.pk,
            seats=effect.seats,
        )
        notify_on_commit("executed", req.pk)
        return req
