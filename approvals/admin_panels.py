"""The approvals app's panels on the subscriptions app's pages: an account's approval
requests and disputes, the open dispute of each of its reconciliations, and a
reconciliation's disputes. `approvals/admin.py` adds them (`add_panels`), as it adds its
buttons; the subscriptions app does not know of them."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from approvals.models import ApprovalRequest, Dispute
from portal import policy
from subscriptions.admin.common import money
from subscriptions.admin.panels import Column, Panel, changelist_url, link
from subscriptions.models import Reconciliation, Subscription

# --- An account's requests ---------------------------------------------------------------


def _requests(request: HttpRequest, sub: Subscription) -> QuerySet:
    qs = (
        ApprovalRequest.objects.filter(subscription=sub)
        .select_related("requester")
        .order_by("-created_at", "-id")
    )
    return policy.visible(qs, request.user, customer_path="subscription__customer")


def request_columns() -> tuple[Column, ...]:
    return (
        Column("Request", lambda r: link(r, f"#{r.pk} {r.get_kind_display()}")),
        Column("Status", lambda r: r.get_status_display()),
        Column("Seats", lambda r: r.seats_at_stake),
        Column("At stake", lambda r: money(r.amount_at_stake, r.currency)),
        Column("Requested by", lambda r: r.requester),
        Column("Filed", lambda r: r.created_at.strftime("%Y-%m-%d")),
    )


ACCOUNT_REQUESTS = Panel(
    id="account-requests",
    title="Approval requests",
    records=_requests,
    columns=request_columns(),
    all_url=lambda sub: changelist_url(ApprovalRequest, subscription__id__exact=sub.pk),
    empty="No request filed.",
)


# --- Disputes ----------------------------------------------------------------------------


def _dispute_columns(*, with_reconciliation: bool) -> tuple[Column, ...]:
    first = (
        Column("Dispute", lambda d: link(d, f"#{d.pk}")),
        *(
            (Column("Reconciliation", lambda d: link(d.reconciliation, _quarter(d))),)
            if with_reconciliation
            else ()
        ),
    )
    return (
        *first,
        Column("Status", lambda d: d.get_status_display()),
        Column("Routed to", lambda d: d.assigned_to),
        Column("Recorded by", lambda d: d.recorded_by),
        Column("Recorded", lambda d: d.created_at.strftime("%Y-%m-%d")),
        Column("Ticket", _ticket),
    )


def _ticket(dispute: Dispute) -> str:
    return format_html('<a href="{}" rel="noopener">ticket</a>', dispute.ticket_url)


def _quarter(dispute: Dispute) -> str:
    recon = dispute.reconciliation
    return f"Q{recon.quarter} {recon.reconciliation_date}"


def _account_disputes(request: HttpRequest, sub: Subscription) -> QuerySet:
    qs = (
        Dispute.objects.filter(reconciliation__subscription=sub)
        .select_related("reconciliation", "assigned_to", "recorded_by")
        .order_by("-created_at", "-id")
    )
    return policy.visible(qs, request.user, customer_path="reconciliation__subscription__customer")


def _reconciliation_disputes(request: HttpRequest, recon: Reconciliation) -> QuerySet:
    qs = (
        Dispute.objects.filter(reconciliation=recon)
        .select_related("assigned_to", "recorded_by")
        .order_by("-created_at", "-id")
    )
    return policy.visible(qs, request.user, customer_path="reconciliation__subscription__customer")


ACCOUNT_DISPUTES = Panel(
    id="account-disputes",
    title="Disputes",
    records=_account_disputes,
    columns=_dispute_columns(with_reconciliation=True),
    all_url=lambda sub: changelist_url(Dispute, reconciliation__subscription__id__exact=sub.pk),
    empty="No dispute recorded.",
)

RECONCILIATION_DISPUTES = Panel(
    id="reconciliation-disputes",
    title="Disputes",
    records=_reconciliation_disputes,
    columns=_dispute_columns(with_reconciliation=False),
    all_url=lambda recon: changelist_url(Dispute, reconciliation__id__exact=recon.pk),
    empty="Not disputed.",
)


# --- The open dispute of each reconciliation of a page -----------------------------------


def _load_open_disputes(reconciliations: list[Any]) -> None:
    open_ones = {
        d.reconciliation_id: d
        for d in Dispute.objects.filter(
            reconciliation__in=[r.pk for r in reconciliations], status=Dispute.Status.ROUTED
        ).select_related("assigned_to")
    }
    for recon in reconciliations:
        recon.open_dispute = open_ones.get(recon.pk)


def _open_dispute(recon: Any) -> str:
    dispute = recon.open_dispute
    if dispute is None:
        return "—"
    return link(dispute, f"#{dispute.pk}, routed to {dispute.assigned_to}")


OPEN_DISPUTE = Column("Open dispute", _open_dispute, prepare=_load_open_disputes)
