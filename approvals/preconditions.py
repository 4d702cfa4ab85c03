"""What the state of a record must be for a request to be filed, decided or executed on
it: each `*_refusal` says why not, in words, or None when it applies.

They are the one answer to "can this apply now?": the stakes and services refuse with
them on a POST, and the admin shows a button disabled with the same words before anyone
presses it. Who may act is the policy's question (`portal.policy`), not theirs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils import timezone

from approvals.models import ApprovalRequest
from subscriptions.models import Reconciliation, Subscription, qsr_ineligibility

if TYPE_CHECKING:
    from approvals.models import ApprovalKind

Status = ApprovalRequest.Status
Kind = ApprovalRequest.Kind
LIVE = (Subscription.Status.ACTIVE, Subscription.Status.SUSPENDED)
OPEN = (Status.PENDING, Status.APPROVED)
# The states of its linked max seats reset in which a refund can be processed.
REFUND_RESET_READY = (Status.APPROVED, Status.EXECUTED)


def not_live(subscription: Subscription) -> str | None:
    if subscription.status in LIVE:
        return None
    return (
        f"The subscription is {subscription.get_status_display().lower()}; "
        "requests are for live subscriptions only."
    )


def not_on_qsr(subscription: Subscription) -> str | None:
    reasons = qsr_ineligibility(subscription)
    if not reasons:
        return None
    return (
        "This subscription is not on QSR (" + ", ".join(reasons) + "); there is no "
        "reconciliation to pause."
    )


def nothing_to_waive(subscription: Subscription) -> str | None:
    ns = subscription.namespace
    if ns.max_seats_used > ns.seats_in_use:
        return None
    return (
        f"Max seats used is {ns.max_seats_used}, the seats in use today: there is nothing to waive."
    )


def open_request(subscription: Subscription, kind: ApprovalKind) -> str | None:
    """The database holds one open request of a kind per subscription
    (`approval_one_open_request_per_kind`); this says so before anyone files a second."""
    pk = (
        ApprovalRequest.objects.filter(subscription=subscription, kind=kind, status__in=OPEN)
        .values_list("pk", flat=True)
        .first()
    )
    if pk is None:
        return None
    label = Kind(kind).label
    label = label if label.startswith("QSR") else label[0].lower() + label[1:]
    return (
        f"A {label} request is open for this subscription already (#{pk}); decide or "
        "cancel it first."
    )


# --- Filing ------------------------------------------------------------------------------


def pause_refusal(subscription: Subscription) -> str | None:
    return (
        not_live(subscription)
        or not_on_qsr(subscription)
        or open_request(subscription, Kind.QSR_PAUSE)
    )


def reset_refusal(subscription: Subscription) -> str | None:
    return (
        not_live(subscription)
        or nothing_to_waive(subscription)
        or open_request(subscription, Kind.MAX_SEATS_RESET)
    )


def free_period_refusal(subscription: Subscription) -> str | None:
    if (live := not_live(subscription)) is not None:
        return live
    today = timezone.localdate()
    if today >= subscription.term_end:
        return f"The term ended on {subscription.term_end}; there is no day left to give."
    return open_request(subscription, Kind.FREE_PERIOD)


def refundable_refusal(reconciliation: Reconciliation) -> str | None:
    """The reconciliation's own state: processed, with overage seats not refunded yet."""
    recon = reconciliation
    if recon.status != Reconciliation.Status.PROCESSED:
        return (
            "Only a processed reconciliation can be refunded; this one is "
            f"{recon.get_status_display().lower()}."
        )
    if (recon.overage_seats or 0) <= recon.refunded_seats:
        return "Every overage seat of this reconciliation is refunded already."
    return None


def refund_refusal(reconciliation: Reconciliation) -> str | None:
    recon = reconciliation
    refusal = not_live(recon.subscription) or refundable_refusal(recon)
    if refusal is not None:
        return refusal
    pk = (
        ApprovalRequest.objects.filter(reconciliation=recon, kind=Kind.QSR_REFUND, status__in=OPEN)
        .values_list("pk", flat=True)
        .first()
    )
    if pk is not None:
        return (
            f"A refund of this reconciliation is open already (request #{pk}); decide or "
            "cancel it first."
        )
    return None


# --- Executing --------------------------------------------------------------


def execution_refusal(request: ApprovalRequest) -> str | None:
    """An approved request of a live subscription; a refund's linked reset approved too."""
    if request.status != Status.APPROVED:
        return (
            "Only an approved request can be executed; this one is "
            f"{request.get_status_display().lower()}."
        )
    sub = request.subscription
    if sub.status not in LIVE:
        return f"The subscription is {sub.get_status_display().lower()}."
    reset = request.linked_reset
    if reset is not None and reset.status not in REFUND_RESET_READY:
        return (
            f"The linked max seats reset #{reset.pk} is {reset.get_status_display().lower()};"
            " a refund is processed once both are approved."
        )
    return None
