"""Admin for approval requests and their decisions.

What a request puts at stake, who must approve it and where it stands are computed and
moved by the approvals services; the admin shows them and never edits them. Decisions
are a record of who approved what, so they are view-only.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from approvals.models import ApprovalDecision, ApprovalRequest
from subscriptions.admin import LedgerAdmin, PortalAdmin, SubscriptionColumns, ViewOnly, money


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
        "namespace",
        "requester",
        "seats_at_stake",
        "amount_display",
        "slots",
        "created_at",
    )
    list_display_links = ("id", "kind")
    list_select_related = ("requester", "subscription__customer", "subscription__namespace")
    list_filter = ("status", "kind", "currency")
    search_fields = (
        "subscription__customer__name",
        "subscription__namespace__name",
        "subscription__namespace__license_key",
        "requester__username",
        "ticket_url",
        "id__exact",
    )
    date_hierarchy = "created_at"
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
        "free_days",
    )
    readonly_fields = (*service_fields, *request_fields, "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": (("kind", "requester"), ("subscription", "reconciliation"))}),
        ("Asked for", {"fields": ("linked_reset", ("pause_until", "free_days"))}),
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

    @admin.display(description="Amount at stake", ordering="amount_at_stake")
    def amount_display(self, obj: ApprovalRequest) -> str:
        return money(obj.amount_at_stake, obj.currency)

    @admin.display(description="Required approvals")
    def slots(self, obj: ApprovalRequest) -> str:
        return ", ".join(obj.required_slots) or "—"


@admin.register(ApprovalDecision)
class ApprovalDecisionAdmin(LedgerAdmin):
    list_display = ("request", "customer", "slot", "approver", "decision", "decided_at")
    list_select_related = ("request__subscription__customer", "approver")
    list_filter = ("decision", "slot", "request__kind")
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
