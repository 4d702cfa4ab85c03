"""Admin for approval requests and their decisions, and the approvals buttons on the
subscriptions admin's pages.

What a request puts at stake, who must approve it and where it stands are computed and
moved by the approvals services; the admin shows them and never edits them. Decisions
are a record of who approved what, so they are view-only.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from approvals.admin_actions.decisions import DISPUTE_ACTIONS, REQUEST_ACTIONS
from approvals.admin_actions.requests import RECONCILIATION_ACTIONS, SUBSCRIPTION_REQUESTS
from approvals.exports import APPROVAL_REQUEST_COLUMNS
from approvals.models import ApprovalDecision, ApprovalRequest, Dispute
from approvals.selectors import approval_requests_awaiting, approval_requests_to_execute
from portal import policy
from portal.admin_actions import add_object_actions
from portal.admin_base import LedgerAdmin, PortalAdmin, ViewOnly
from subscriptions.admin import ReconciliationAdmin, SubscriptionAdmin, SubscriptionColumns, money

# Requests and disputes are filed from the subscriptions app's pages. On a subscription's,
# the request buttons sit between the QSR buttons and "Amend subscription".
add_object_actions(SubscriptionAdmin, SUBSCRIPTION_REQUESTS, after="enable-qsr")
add_object_actions(ReconciliationAdmin, RECONCILIATION_ACTIONS)


class QueueFilter(admin.SimpleListFilter):
    title = "queue"
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        return (
            ("awaiting_me", "Waiting for my approval"),
            ("to_execute", "Approved, for me to execute"),
            ("mine", "My requests"),
        )

    def queryset(self, request, queryset):
        if self.value() == "awaiting_me":
            return approval_requests_awaiting(user=request.user, queryset=queryset)
        if self.value() == "to_execute":
            return approval_requests_to_execute(user=request.user, queryset=queryset)
        if self.value() == "mine":
            return queryset.filter(requester=request.user)
        return queryset


class ApprovalDecisionInline(ViewOnly, admin.TabularInline):
    model = ApprovalDecision
    fields = ("slot", "approver", "decision", "reason", "decided_at")
    readonly_fields = fields
    extra = 0

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApprovalDecision]:
        return super().get_queryset(request).select_related("approver")


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(SubscriptionColumns, PortalAdmin):
    list_display = (
        "id",
        "kind",
        "status",
        "customer",
        "requester",
        "seats_at_stake",
        "amount_display",
        "slots",
        "created_at",
    )
    list_display_links = ("id", "kind")
    list_select_related = ("requester", "subscription__customer", "subscription__namespace")
    list_filter = (QueueFilter, "status", "kind", "currency")
    customer_path = "subscription__customer"
    object_actions = REQUEST_ACTIONS
    search_fields = (
        "subscription__customer__name",
        "subscription__namespace__name",
        "subscription__namespace__license_key",
        "requester__username",
        "ticket_url",
        "id__exact",
    )
    date_hierarchy = "created_at"
    # Refunds are the requests of the kind "QSR refund" (approvals/exports.py).
    export_columns = APPROVAL_REQUEST_COLUMNS
    inlines = (ApprovalDecisionInline,)
    # Computed or moved by the approvals services only.
    service_fields = (
        "status",
        "seats_at_stake",
        "amount_display",
        "currency",
        "slots",
        "decided_at",
        "executed_at",
        "executed_by",
    )
    # What was asked for is what gets approved: it cannot change under the approvers.
    request_fields = (
        "kind",
        "requester",
        "subscription",
        "reconciliation",
        "linked_reset",
        "pause_until",
        "free_from",
        "free_days",
        "reset_to",
        "justification",
        "ticket_url",
    )
    readonly_fields = (*service_fields, *request_fields, "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": (("kind", "requester"), ("subscription", "reconciliation"))}),
        (
            "Asked for",
            {"fields": ("linked_reset", "pause_until", ("free_from", "free_days"), "reset_to")},
        ),
        ("Why", {"fields": ("justification", "ticket_url")}),
        ("At stake", {"fields": (("seats_at_stake", "amount_display", "currency"),)}),
        (
            "Decision",
            {"fields": (("status", "slots"), "decided_at", ("executed_at", "executed_by"))},
        ),
        ("Record", {"fields": (("created_at", "updated_at"),)}),
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A request is filed through the approvals services, which compute what is at
        # stake and whose approval it needs; filed here it would carry neither.
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        # What was asked for is what gets approved; decisions are the action buttons.
        return False

    @admin.display(description="Amount at stake", ordering="amount_at_stake")
    def amount_display(self, obj: ApprovalRequest) -> str:
        return money(obj.amount_at_stake, obj.currency)

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApprovalRequest]:
        return (
            super()
            .get_queryset(request)
            # The changelist skips list_select_related once a queryset has its own.
            .select_related(*self.list_select_related, "linked_reset")
            .prefetch_related("decisions")
        )

    @admin.display(description="Required approvals")
    def slots(self, obj: ApprovalRequest) -> str:
        filled = {d.slot: d for d in obj.decisions.all()}
        parts = []
        for slot in obj.required_slots:
            label = policy.SLOT_LABELS.get(slot, slot)
            d = filled.get(slot)
            parts.append(f"{label}: {d.get_decision_display().lower()}d" if d else f"{label}: open")
        return "; ".join(parts) or "—"


@admin.register(ApprovalDecision)
class ApprovalDecisionAdmin(LedgerAdmin):
    list_display = ("request", "customer", "slot", "approver", "decision", "decided_at")
    list_select_related = ("request__subscription__customer", "approver")
    list_filter = ("decision", "slot", "request__kind")
    customer_path = "request__subscription__customer"
    search_fields = (
        "approver__username",
        "request__subscription__customer__name",
        "slot",
        "request__id__exact",
    )
    date_hierarchy = "decided_at"
    fields = ("request", "slot", "approver", "decision", "reason", "decided_at")

    @admin.display(description="Customer", ordering="request__subscription__customer__name")
    def customer(self, obj: ApprovalDecision):
        return obj.request.subscription.customer


@admin.register(Dispute)
class DisputeAdmin(LedgerAdmin):
    """Disputes support routed to sales. Written by the disputes services only."""

    list_display = ("id", "reconciliation", "customer", "status", "assigned_to", "recorded_by",
                    "created_at")  # fmt: skip
    list_select_related = (
        "reconciliation__subscription__customer",
        "reconciliation__subscription__namespace",
        "assigned_to",
        "recorded_by",
    )
    list_filter = ("status",)
    search_fields = ("reconciliation__subscription__customer__name", "ticket_url", "id__exact")
    customer_path = "reconciliation__subscription__customer"
    object_actions = DISPUTE_ACTIONS
    fields = (
        ("reconciliation", "status"),
        "reason",
        ("ticket_url", "ticket_closed_at"),
        ("recorded_by", "assigned_to"),
        ("resolution", "resolved_at"),
    )

    @admin.display(description="Customer")
    def customer(self, obj: Dispute):
        return obj.reconciliation.subscription.customer
