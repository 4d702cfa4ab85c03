"""Disputes of reconciliations (DOMAIN.md "Disabling, pausing and disputing QSR").

Support records a dispute on a pending or processed reconciliation; it is routed to the
account's sales manager, who is emailed, and support's ticket is closed as routed.
Support changes nothing on the reconciliation from here; sales decides what follows
(a pause request, a reset, nothing) and records the outcome.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from django.db import IntegrityError, transaction
from django.utils import timezone

from approvals.models import Dispute
from approvals.services.notifications import notify_on_commit
from portal import policy
from portal.errors import DomainError

if TYPE_CHECKING:
    from django.contrib.auth.models import User
from subscriptions.models import Reconciliation
from subscriptions.services.history import save_with_reason
from subscriptions.services.subscriptions import check_url

DISPUTABLE = (Reconciliation.Status.PENDING, Reconciliation.Status.PROCESSED)


def dispute_refusal(reconciliation: Reconciliation) -> str | None:
    """Why `reconciliation` cannot be disputed as it stands, or None if it can: it must be
    pending or processed, not disputed already, and have a sales manager to route to."""
    recon = reconciliation
    if recon.status not in DISPUTABLE:
        return (
            "Only a pending or processed reconciliation can be disputed; this one is "
            f"{recon.get_status_display().lower()}."
        )
    open_one = recon.disputes.filter(status=Dispute.Status.ROUTED).first()
    if open_one is not None:
        return (
            f"This reconciliation is disputed already (dispute #{open_one.pk}, routed to "
            f"{open_one.assigned_to})."
        )
    customer = recon.subscription.customer
    if customer.owner is None or not customer.owner.is_active:
        return (
            f"{customer} has no active sales manager to route the dispute to; ask sales ops "
            "to assign one."
        )
    return None


def dispute_record(
    *, reconciliation: Reconciliation, reason: str, ticket_url: str, actor: policy.Actor
) -> Dispute:
    policy.check(actor, policy.Action.RECORD_DISPUTE, reconciliation)
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("Say what the customer disputes.", field="reason")
    check_url(ticket_url, field="ticket_url", what="the ticket")
    with transaction.atomic():
        recon = (
            Reconciliation.objects.select_for_update(of=("self",))
            .select_related("subscription__customer__owner")
            .get(pk=reconciliation.pk)
        )
        open_one = recon.disputes.filter(status=Dispute.Status.ROUTED).first()
        if open_one is not None and open_one.ticket_url == ticket_url:
            return open_one  # the same ticket submitted twice
        refusal = dispute_refusal(recon)
        if refusal is not None:
            raise DomainError(refusal)
        owner = cast("User", recon.subscription.customer.owner)  # dispute_refusal checked
        dispute = Dispute(
            reconciliation=recon,
            reason=reason,
            ticket_url=ticket_url,
            recorded_by=cast("User", actor),  # people record disputes; the portal none
            assigned_to=owner,
            ticket_closed_at=timezone.now(),
        )
        # simple-history reads who and why off the instance on save.
        dispute._change_reason = f"recorded and routed to {owner}"  # type: ignore[attr-defined]
        dispute._history_user = actor  # type: ignore[attr-defined]
        try:
            with transaction.atomic():
                dispute.save()
        except IntegrityError as exc:
            raise DomainError("This reconciliation is disputed already.") from exc
    notify_on_commit("dispute_routed", dispute.pk)
    return dispute


def dispute_resolve(*, dispute: Dispute, resolution: str, actor: policy.Actor) -> Dispute:
    """The sales manager records how the dispute ended."""
    policy.check(actor, policy.Action.RESOLVE_DISPUTE, dispute)
    resolution = (resolution or "").strip()
    if not resolution:
        raise DomainError("Say how it was resolved.", field="resolution")
    with transaction.atomic():
        d = Dispute.objects.select_for_update().get(pk=dispute.pk)
        if d.status == Dispute.Status.RESOLVED:
            if d.resolution == resolution:
                return d
            raise DomainError("This dispute is resolved already.")
        d.status = Dispute.Status.RESOLVED
        d.resolution = resolution
        d.resolved_at = timezone.now()
        save_with_reason(d, ["status", "resolution", "resolved_at"], reason="resolved", actor=actor)
        return d
