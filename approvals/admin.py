"""Admin for approval requests and their decisions, and the approvals buttons on the
subscriptions admin's pages.

What a request puts at stake, who must approve it and where it stands are computed and
moved by the approvals services; the admin shows them and never edits them. Decisions
are a record of who approved what, so they are view-only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.urls import reverse

from approvals.admin_actions.decisions import DISPUTE_ACTIONS, REQUEST_ACTIONS
from approvals.admin_actions.requests import RECONCILIATION_ACTIONS, SUBSCRIPTION_REQUESTS
from approvals.admin_panels import (
    ACCOUNT_DISPUTES,
    ACCOUNT_REQUESTS,
    OPEN_DISPUTE,
    RECONCILIATION_DISPUTES,
    request_columns,
)
from approvals.exports import APPROVAL_REQUEST_COLUMNS
from approvals.models import ApprovalDecision, ApprovalRequest, Dispute
from approvals.selectors import (
    QUEUES,
    approval_queue,
    decision_context,
    earlier_requests,
    requested_reset_to,
)
from portal import policy
from portal.admin_actions import ObjectAction, add_object_actions
from portal.admin_base import LedgerAdmin, PortalAdmin, ViewOnly
from subscriptions.admin import ReconciliationAdmin, SubscriptionAdmin, SubscriptionColumns, money
from subscriptions.admin.account import usage_chart
from subscriptions.admin.panels import (
    Panel,
    PanelsMixin,
    add_panel_column,
    add_panels,
    changelist_url,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# Requests and disputes are filed from the subscriptions app's pages. On a subscription's,
# the request buttons sit between the QSR buttons and "Amend subscription".
add_object_actions(SubscriptionAdmin, SUBSCRIPTION_REQUESTS, after="enable-qsr")
add_object_actions(ReconciliationAdmin, RECONCILIATION_ACTIONS)
# The account page lists its requests and disputes, and each reconciliation's open one.
add_panels(SubscriptionAdmin, [ACCOUNT_REQUESTS, ACCOUNT_DISPUTES], after="account-suspensions")
add_panel_column(SubscriptionAdmin, "account-reconciliations", OPEN_DISPUTE)
add_panels(ReconciliationAdmin, [RECONCILIATION_DISPUTES])


QUEUE_LABELS = {
    "awaiting_me": "Waiting for my approval",
    "to_execute": "Approved, for me to execute",
    "mine": "My requests",
}
DECISIONS = ("approve", "reject")


class QueueFilter(admin.SimpleListFilter):
    title = "queue"
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        return tuple((name, QUEUE_LABELS[name]) for name in QUEUES)

    def queryset(self, request, queryset):
        queue = self.value()
        if queue in QUEUES:
            return approval_queue(queue, user=request.user, queryset=queryset)
        return queryset


def queue_of(request: HttpRequest) -> str | None:
    """The work queue the user came from: `?queue=` on an action's page, or the list's
    filters the admin carries to a record's page (`_changelist_filters`)."""
    queue = request.GET.get("queue") or QueryDict(request.GET.get("_changelist_filters", "")).get(
        "queue"
    )
    return queue if queue in QUEUES else None


def _earlier(request: HttpRequest, req: ApprovalRequest) -> QuerySet:
    visible = policy.visible(
        ApprovalRequest.objects.all(), request.user, customer_path="subscription__customer"
    )
    return earlier_requests(req, queryset=visible)


EARLIER_REQUESTS = Panel(
    id="earlier-requests",
    title="The account's other requests",
    records=_earlier,
    columns=request_columns(),
    all_url=lambda req: changelist_url(
        ApprovalRequest, subscription__customer__id__exact=req.subscription.customer_id
    ),
    empty="None: this is the account's first request.",
)


class ApprovalDecisionInline(ViewOnly, admin.TabularInline):
    model = ApprovalDecision
    fields = ("slot", "approver", "decision", "reason", "decided_at")
    readonly_fields = fields
    extra = 0

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApprovalDecision]:
        return super().get_queryset(request).select_related("approver")


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(SubscriptionColumns, PanelsMixin, PortalAdmin):
    """A request's page shows the approver what it changes (the decision context), the
    account's seat usage and its other requests; after a decision the approver lands on
    the next request of the queue they came from."""

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
    panels = (EARLIER_REQUESTS,)
    change_form_template = "admin/approvals/approvalrequest/change_form.html"
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
        "reset_to_display",
        "justification",
        "ticket_url",
    )
    readonly_fields = (*service_fields, *request_fields, "created_at", "updated_at")
    # What each kind asks for; the fields of other kinds are left off its page.
    ASKED_FOR: dict[str, tuple] = {
        ApprovalRequest.Kind.QSR_PAUSE: ("pause_until",),
        ApprovalRequest.Kind.MAX_SEATS_RESET: ("reset_to_display",),
        ApprovalRequest.Kind.QSR_REFUND: ("reconciliation", "linked_reset"),
        ApprovalRequest.Kind.FREE_PERIOD: (("free_from", "free_days"),),
    }
    EXECUTED = (ApprovalRequest.Kind.MAX_SEATS_RESET, ApprovalRequest.Kind.QSR_REFUND)

    def get_fieldsets(self, request: HttpRequest, obj=None):
        kind = getattr(obj, "kind", "")
        decision: tuple = (("status", "slots"), "decided_at")
        if kind in self.EXECUTED:
            decision = (*decision, ("executed_at", "executed_by"))
        return (
            (None, {"fields": (("kind", "requester"), "subscription")}),
            ("Asked for", {"fields": self.ASKED_FOR.get(kind, ())}),
            ("Why", {"fields": ("justification", "ticket_url")}),
            ("At stake", {"fields": (("seats_at_stake", "amount_display", "currency"),)}),
            ("Decision", {"fields": decision}),
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

    @admin.display(description="Reset to")
    def reset_to_display(self, obj: ApprovalRequest) -> str:
        value = requested_reset_to(obj)
        if value is None:
            return "—"
        if obj.status == ApprovalRequest.Status.EXECUTED:
            return f"{value:,} (set by {obj.executed_by})"
        return f"{value:,} max seats used (asked for; support enters the value on execution)"

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["decision"] = {
                "rows": decision_context(obj).rows,
                "chart": usage_chart(obj.subscription),
                "account_url": reverse(
                    "admin:subscriptions_subscription_change", args=[obj.subscription_id]
                ),
            }
        return super().render_change_form(request, context, add, change, form_url, obj)

    # --- After a decision: the next request of the same queue -----------------------------

    # The "other requests of the account" link.
    ACCOUNT_LOOKUP = "subscription__customer__id__exact"

    def lookup_allowed(self, lookup, value, request=None):
        return lookup == self.ACCOUNT_LOOKUP or super().lookup_allowed(lookup, value, request)

    def action_query(self, request: HttpRequest) -> str:
        queue = queue_of(request)
        return urlencode({"queue": queue}) if queue else ""

    def action_done(
        self, request: HttpRequest, obj, action: ObjectAction, message: str
    ) -> HttpResponse:
        if action.name not in DECISIONS:
            return super().action_done(request, obj, action, message)
        queue = queue_of(request) or "awaiting_me"
        what = f"{obj.get_kind_display()} #{obj.pk} for {obj.subscription.customer}"
        user = cast("User", request.user)  # the admin's views need a login
        waiting = approval_queue(queue, user=user, queryset=self.get_queryset(request))
        following = waiting.exclude(pk=obj.pk).order_by("-created_at", "-id").first()
        where = QUEUE_LABELS[queue]
        if following is None:
            messages.success(request, f"{what}: {message} Nothing else in “{where}”.")
            return HttpResponseRedirect(changelist_url(ApprovalRequest, queue=queue))
        messages.success(request, f"{what}: {message} Next in “{where}”: #{following.pk}.")
        url = reverse("admin:approvals_approvalrequest_change", args=[following.pk])
        return HttpResponseRedirect(f"{url}?{urlencode({'_changelist_filters': f'queue={queue}'})}")

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
    # An account page's "all disputes" link.
    ACCOUNT_LOOKUP = "reconciliation__subscription__id__exact"

    def lookup_allowed(self, lookup, value, request=None):
        return lookup == self.ACCOUNT_LOOKUP or super().lookup_allowed(lookup, value, request)

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
