"""Demo approval workflows, filed through the real services so every queue of the admin
has something in it: a pause waiting for sales ops, a large waiver waiting for sales ops
and an executive, a refund with its reset approved and waiting for deal desk, a reset
waiting for support to execute, and a dispute routed to a sales manager."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import date
from typing import Any

from django.db.models import F, QuerySet

from approvals import services
from approvals.models import ApprovalRequest
from portal.errors import DomainError
from subscriptions.models import Reconciliation, Subscription

TICKET = "https://tickets.example.com/demo/{}"


def _owned_subscriptions(owner: Any) -> QuerySet[Subscription]:
    return (
        Subscription.objects.filter(status=Subscription.Status.ACTIVE, customer__owner=owner)
        .exclude(approval_requests__status__in=["pending", "approved"])
        .select_related("namespace", "customer")
        .order_by("pk")
    )


def seed_workflows(*, users: dict[str, Any], today: date) -> Counter[str]:
    counts: Counter[str] = Counter()
    sales, support, ops, executive = (
        users["sales"],
        users["support"],
        users["sales_ops"],
        users["executive"],
    )

    # `call` is a lambda binding its loop variables as defaults, which mypy cannot infer.
    def attempt(what: str, call: Callable[..., Any]) -> Any:
        try:
            result = call()
        except DomainError:
            return None  # this book has no record that fits; the queue stays empty
        counts[what] += 1
        return result

    # A processed QSR charge refunded in part: refund and reset both approved.
    recon = (
        Reconciliation.objects.filter(
            status=Reconciliation.Status.PROCESSED,
            overage_seats__gte=2,
            subscription__status=Subscription.Status.ACTIVE,
            subscription__customer__owner=sales,
            subscription__namespace__max_seats_used__gt=F("subscription__namespace__seats_in_use"),
        )
        .select_related("subscription__namespace")
        .order_by("pk")
        .first()
    )
    if recon is not None:
        refund = attempt(
            "refund requests",
            lambda: services.approval_request_refund(
                reconciliation=recon,
                seats=1,
                justification="Seats were counted twice during the migration week.",
                ticket_url=TICKET.format(101),
                actor=sales,
                today=today,
            ),
        )
        if refund is not None:
            for request in (refund.linked_reset, refund):
                for approver in (ops, executive, users["finance"]):
                    if request.status == ApprovalRequest.Status.PENDING:
                        attempt("approvals", lambda r=request, a=approver: _approve(r, a))

    # Pending requests of each kind on the first sales manager's accounts.
    subs = list(_owned_subscriptions(sales)[:40])
    for sub in subs:
        if sub.qsr_state == Subscription.QsrState.ENABLED and attempt(
            "pause requests",
            lambda s=sub: services.approval_request_pause(
                subscription=s,
                until=None,
                justification="Customer is renegotiating the contract; hold QSR until then.",
                ticket_url=TICKET.format(102),
                actor=sales,
                today=today,
            ),
        ):
            break
    for sub in subs:
        if sub.namespace.max_seats_used - sub.namespace.seats_in_use > 10 and attempt(
            "reset requests",
            lambda s=sub: services.approval_request_reset(
                subscription=s,
                new_max_seats=None,
                justification="A bot account inflated the count for a week.",
                ticket_url=TICKET.format(103),
                actor=sales,
                today=today,
            ),
        ):
            break
    for sub in reversed(subs):
        if attempt(
            "free period requests",
            lambda s=sub: services.approval_request_free_period(
                subscription=s,
                start=max(today, s.term_start),
                days=14,
                justification="Outage credit agreed with the customer.",
                ticket_url=TICKET.format(104),
                actor=sales,
                today=today,
            ),
        ):
            break

    # A disputed pending reconciliation, routed to its sales manager.
    disputed = (
        Reconciliation.objects.filter(
            status=Reconciliation.Status.PENDING, subscription__customer__owner__isnull=False
        )
        .order_by("pk")
        .first()
    )
    if disputed is not None:
        attempt(
            "disputes",
            lambda: services.dispute_record(
                reconciliation=disputed,
                reason="Customer says 12 of the users were deactivated before the quarter end.",
                ticket_url=TICKET.format(105),
                actor=support,
            ),
        )
    return counts


def _approve(request: ApprovalRequest, approver) -> ApprovalRequest:
    request.refresh_from_db()
    from portal import policy

    if not policy.may(approver, policy.Action.DECIDE, request):
        raise DomainError("not this approver's slot")
    return services.approval_approve(request=request, actor=approver, reason="Demo approval.")
