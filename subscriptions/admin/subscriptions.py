"""Admin for subscriptions, changed only through their actions, and the list of
subscriptions whose QSR is disabled for a bug."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from portal import policy
from portal.admin_base import PortalAdmin, ViewOnly
from portal.admin_lists import ListsAtScale, known_values
from portal.admin_safety import UrlGuardMixin
from subscriptions.admin.account import (
    SUBSCRIPTION_PANELS,
    account_summary,
    usage_chart,
    usage_list_url,
)
from subscriptions.admin.common import money
from subscriptions.admin.panels import PanelsMixin
from subscriptions.admin_actions import SUBSCRIPTION_ACTIONS
from subscriptions.models import QsrDisabledForBug, Subscription, qsr_ineligibility
from subscriptions.services.lifecycle import qsr_label

# The term lengths sold; 12 months is the one QSR applies to.
TERM_LENGTHS = [(months, f"{months} months") for months in (1, 3, 6, 12, 24, 36)]


@admin.register(Subscription)
class SubscriptionAdmin(PanelsMixin, PortalAdmin):
    """The account page: a summary, the seat-usage chart of the term, and the related
    records as panels (`subscriptions.admin.account`), above the record's own fields."""

    list_display = (
        "id",
        "customer",
        "namespace",
        "plan",
        "seats",
        "unit_price",
        "term_start",
        "term_end",
        "status",
        "qsr_status",
    )
    list_display_links = ("id", "customer")
    list_select_related = ("customer", "namespace")
    list_filter = (
        "status",
        "qsr_state",
        "plan",
        "currency",
        "channel",
        "payment_method",
        "program",
        "offline_license",
        ("term_months", known_values(*TERM_LENGTHS)),
    )
    search_fields = (
        "customer__name",
        "customer__billing_email",
        "namespace__name",
        "namespace__license_key",
        "id__exact",
    )
    date_hierarchy = "term_end"
    autocomplete_fields = ("customer", "namespace")
    object_actions = SUBSCRIPTION_ACTIONS
    panels = SUBSCRIPTION_PANELS
    change_form_template = "admin/subscriptions/subscription/change_form.html"
    # On the add form (superusers): QSR starts enabled; its changes go through guarded
    # services (a bug link, an approved pause).
    readonly_fields = (
        "qsr_status",
        "unit_price",
        "qsr_state",
        "qsr_paused_until",
        "qsr_bug_url",
        "qsr_ticket_url",
        "qsr_changed_by",
        "qsr_changed_at",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": (("customer", "namespace"), ("plan", "status"))}),
        ("Seats and price", {"fields": (("seats", "annual_unit_price", "currency"), "unit_price")}),
        ("Term", {"fields": (("term_start", "term_end", "term_months"),)}),
        (
            "QSR eligibility",
            {"fields": (("channel", "payment_method", "program"), "offline_license")},
        ),
        (
            "QSR",
            {
                "fields": (
                    "qsr_status",
                    ("qsr_state", "qsr_paused_until"),
                    ("qsr_bug_url", "qsr_ticket_url"),
                    ("qsr_changed_by", "qsr_changed_at"),
                )
            },
        ),
        ("Record", {"fields": (("created_at", "updated_at"),)}),
    )

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        # Every field of an existing subscription moves money or QSR: it changes through
        # the actions (policy, reason, ticket, the money effect shown first), never here.
        # A POST to its change form is refused (403) like any change without permission.
        if obj is not None:
            return False
        return super().has_change_permission(request)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["account"] = {
                "summary": account_summary(obj),
                "chart": usage_chart(obj),
                "usage_url": usage_list_url(obj),
            }
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.display(description="Price per seat a year", ordering="annual_unit_price")
    def unit_price(self, obj: Subscription) -> str:
        return money(obj.annual_unit_price, obj.currency)

    @admin.display(description="QSR")
    def qsr_status(self, obj: Subscription) -> str:
        """QSR as billing sees it (`qsr_label`), with the bug linked when disabled for one."""
        label = qsr_label(obj)
        disabled = obj.qsr_state == Subscription.QsrState.DISABLED_FOR_BUG
        if disabled and not qsr_ineligibility(obj):
            return format_html('<a href="{}" rel="noopener">{}</a>', obj.qsr_bug_url, label)
        return label


@admin.register(QsrDisabledForBug)
class QsrDisabledForBugAdmin(ListsAtScale, UrlGuardMixin, ViewOnly, admin.ModelAdmin):
    """Every subscription whose QSR support disabled for a bug, with the links, who and
    when; it leaves the list when someone re-enables QSR on the subscription's page."""

    list_display = ("subscription", "customer", "bug", "ticket", "qsr_changed_by", "qsr_changed_at")
    formfield_overrides = PortalAdmin.formfield_overrides
    list_select_related = ("customer", "namespace", "qsr_changed_by")
    search_fields = ("customer__name", "namespace__name", "qsr_bug_url", "qsr_ticket_url")
    ordering = ("-qsr_changed_at",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = super().get_queryset(request)
        return policy.visible(qs, request.user, customer_path="customer")

    @admin.display(description="Subscription")
    def subscription(self, obj: Subscription) -> str:
        url = reverse("admin:subscriptions_subscription_change", args=[obj.pk])
        return format_html('<a href="{}">#{} {}</a>', url, obj.pk, obj.namespace)

    @admin.display(description="Bug")
    def bug(self, obj: Subscription) -> str:
        return format_html('<a href="{}" rel="noopener">{}</a>', obj.qsr_bug_url, obj.qsr_bug_url)

    @admin.display(description="Ticket")
    def ticket(self, obj: Subscription) -> str:
        return format_html(
            '<a href="{}" rel="noopener">{}</a>', obj.qsr_ticket_url, obj.qsr_ticket_url
        )
