"""Admin for customers, namespaces, usage, subscriptions, reconciliations, suspensions and
the invoice ledger.

The roles see records here (view permission only, narrowed to the accounts they may
see) and change them through the action buttons of a record's page: each is a service
that checks the policy and shows the effect before anything changes. Superusers may also
add customers, namespaces, usage reports, subscriptions and suspensions, and edit the
plain fields of all but subscriptions. What a service or a nightly job owns is read-only
for everyone, superusers included: seat counts, suspension status, reconciliations, the
ledger, and every field of an existing subscription (its terms, eligibility, seats,
price and status change through "Amend subscription" and "Cancel subscription", its QSR
state through the QSR actions).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import cast

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from portal import policy
from portal.admin_base import LedgerAdmin, PortalAdmin, ViewOnly
from portal.admin_safety import UrlGuardMixin
from subscriptions import admin_jobs  # noqa: F401  (registers the job run admin)
from subscriptions.admin_actions import CUSTOMER_ACTIONS, SUBSCRIPTION_ACTIONS
from subscriptions.billing import format_money
from subscriptions.models import (
    Customer,
    Invoice,
    InvoiceLine,
    Namespace,
    QsrDisabledForBug,
    Reconciliation,
    SeatUsageReport,
    Subscription,
    Suspension,
    qsr_ineligibility,
)
from subscriptions.models.ledger import InvoiceQuerySet
from subscriptions.services.lifecycle import qsr_label


def money(amount: Decimal | None, currency: str) -> str:
    """An amount with its currency; "—" while a record has no amount yet."""
    return "—" if amount is None else format_money(amount, currency)


class SubscriptionColumns:
    """Customer and namespace columns for records that hang off a subscription."""

    @admin.display(description="Customer", ordering="subscription__customer__name")
    def customer(self, obj) -> Customer:
        return obj.subscription.customer

    @admin.display(description="Namespace", ordering="subscription__namespace__name")
    def namespace(self, obj) -> Namespace:
        return obj.subscription.namespace


@admin.register(Customer)
class CustomerAdmin(PortalAdmin):
    list_display = ("name", "billing_email", "currency", "owner", "updated_at")
    list_select_related = ("owner",)
    list_filter = ("currency", ("owner", admin.RelatedOnlyFieldListFilter))
    search_fields = ("name", "billing_email", "id__exact")
    customer_path = "pk"
    # Ownership also grants an object permission: the "Assign sales manager" action
    # changes both together.
    readonly_fields = ("owner", "created_at", "updated_at")
    readonly_once_created = ("currency",)
    object_actions = CUSTOMER_ACTIONS


@admin.register(Namespace)
class NamespaceAdmin(PortalAdmin):
    list_display = (
        "name",
        "kind",
        "customer",
        "license_key",
        "seats_in_use",
        "max_seats_used",
        "max_seats_used_changed_at",
    )
    list_select_related = ("customer",)
    list_filter = ("kind",)
    search_fields = ("name", "license_key", "instance_id", "customer__name", "id__exact")
    autocomplete_fields = ("customer",)
    # Seat refresh and max-seats resets own these; a typo here would bill a customer.
    readonly_fields = (
        "seats_in_use",
        "max_seats_used",
        "max_seats_used_changed_at",
        "created_at",
        "updated_at",
    )


@admin.register(SeatUsageReport)
class SeatUsageReportAdmin(PortalAdmin):
    list_display = (
        "namespace",
        "customer",
        "date",
        "billable_users",
        "max_historical_user_count",
        "instance_id",
        "received_at",
    )
    list_select_related = ("namespace__customer",)
    customer_path = "namespace__customer"
    list_filter = ("namespace__kind",)
    search_fields = ("namespace__name", "namespace__license_key", "instance_id", "id__exact")
    date_hierarchy = "date"
    ordering = ("-date",)
    raw_id_fields = ("namespace",)
    readonly_fields = ("received_at",)
    # One count over ~100k rows per page is enough; the unfiltered total adds a second.
    show_full_result_count = False

    @admin.display(description="Customer", ordering="namespace__customer__name")
    def customer(self, obj: SeatUsageReport) -> Customer:
        return obj.namespace.customer


@admin.register(Subscription)
class SubscriptionAdmin(PortalAdmin):
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
        "term_months",
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


class InvoiceLineColumns:
    @admin.display(description="Unit price", ordering="unit_price")
    def unit_price_display(self, line: InvoiceLine) -> str:
        return money(line.unit_price, line.invoice.currency)

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, line: InvoiceLine) -> str:
        return money(line.amount, line.invoice.currency)


@admin.register(Reconciliation)
class ReconciliationAdmin(SubscriptionColumns, LedgerAdmin):
    list_display = (
        "id",
        "customer",
        "namespace",
        "quarter",
        "reconciliation_date",
        "status",
        "skip_reason",
        "overage_seats",
        "amount_display",
        "invoice_date",
    )
    list_select_related = ("subscription__customer", "subscription__namespace")
    list_filter = ("status", "skip_reason", "quarter", "currency")
    customer_path = "subscription__customer"
    search_fields = (
        "subscription__customer__name",
        "subscription__namespace__name",
        "subscription__namespace__license_key",
        "id__exact",
        "subscription__id__exact",
    )
    date_hierarchy = "reconciliation_date"
    readonly_fields = ("unit_price_display", "amount_display")
    fields = (
        "subscription",
        ("term_start", "quarter"),
        ("status", "skip_reason", "attempts"),
        "failure_reason",
        ("reconciliation_date", "notify_date", "invoice_date"),
        ("notified_at", "invoiced_at"),
        ("seats_paid", "max_seats_used", "overage_seats", "refunded_seats"),
        ("unit_price_display", "remaining_quarters", "amount_display"),
    )

    @admin.display(description="Price per seat a year", ordering="annual_unit_price")
    def unit_price_display(self, obj: Reconciliation) -> str:
        return money(obj.annual_unit_price, obj.currency)

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, obj: Reconciliation) -> str:
        return money(obj.amount, obj.currency)


@admin.register(Suspension)
class SuspensionAdmin(SubscriptionColumns, PortalAdmin):
    list_display = (
        "id",
        "customer",
        "namespace",
        "mode",
        "suspend_date",
        "resume_date",
        "days",
        "extend_term",
        "status",
    )
    list_select_related = ("subscription__customer", "subscription__namespace")
    list_filter = ("status", "mode", "extend_term")
    customer_path = "subscription__customer"
    search_fields = (
        "subscription__customer__name",
        "subscription__namespace__name",
        "ticket_url",
        "id__exact",
    )
    date_hierarchy = "suspend_date"
    autocomplete_fields = ("subscription",)
    # The suspension job starts and resumes suspensions and writes their proration lines.
    readonly_fields = ("status", "created_at", "updated_at")

    @admin.display(description="Days")
    def days(self, obj: Suspension) -> int:
        return obj.days


class InvoiceLineInline(ViewOnly, InvoiceLineColumns, admin.TabularInline):
    model = InvoiceLine
    fields = ("kind", "description", "quantity", "unit_price_display", "amount_display")
    readonly_fields = fields
    extra = 0

    def get_queryset(self, request: HttpRequest) -> QuerySet[InvoiceLine]:
        return super().get_queryset(request).select_related("invoice")


class CreditMemoFilter(admin.SimpleListFilter):
    title = "type"
    parameter_name = "type"

    def lookups(self, request, model_admin):
        return (("invoice", "Invoice"), ("credit_memo", "Credit memo"))

    def queryset(self, request, queryset):
        # `total` is the annotation InvoiceAdmin.get_queryset adds.
        if self.value() == "credit_memo":
            return queryset.filter(total__lt=0)
        if self.value() == "invoice":
            return queryset.filter(total__gte=0)
        return queryset


INVOICE_NUMBER = re.compile(r"^INV-0*(\d+)$", re.IGNORECASE)


@admin.register(Invoice)
class InvoiceAdmin(LedgerAdmin):
    list_display = ("number", "customer", "issue_date", "currency", "total_display", "credit_memo")
    list_select_related = ("customer",)
    list_filter = (CreditMemoFilter, "currency")
    search_fields = ("customer__name", "customer__billing_email", "idempotency_key", "id__exact")
    search_help_text = "Customer, billing email, invoice number (INV-0000012) or key."
    date_hierarchy = "issue_date"
    inlines = (InvoiceLineInline,)
    fields = (
        ("number", "issue_date"),
        ("customer", "subscription"),
        ("total_display", "credit_memo"),
        ("idempotency_key", "created_at"),
    )
    readonly_fields = ("number", "total_display", "credit_memo")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Invoice]:
        # The totals come with the page in one query instead of one sum per row.
        return cast(InvoiceQuerySet, super().get_queryset(request)).with_totals()

    def get_search_results(self, request, queryset, search_term):
        match = INVOICE_NUMBER.match(search_term.strip())
        if match:
            return queryset.filter(pk=int(match.group(1))), False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description="Number", ordering="id")
    def number(self, obj: Invoice) -> str:
        return obj.number

    @admin.display(description="Total", ordering="total")
    def total_display(self, obj: Invoice) -> str:
        # A historical version (history page) carries no annotation.
        return money(getattr(obj, "total", None), obj.currency)

    @admin.display(description="Credit memo", boolean=True)
    def credit_memo(self, obj: Invoice) -> bool | None:
        total = getattr(obj, "total", None)
        return None if total is None else total < 0


@admin.register(InvoiceLine)
class InvoiceLineAdmin(InvoiceLineColumns, LedgerAdmin):
    list_display = (
        "id",
        "invoice",
        "customer",
        "kind",
        "description",
        "quantity",
        "unit_price_display",
        "period_start",
        "period_end",
        "amount_display",
    )
    # The currency of every amount is the invoice's, fetched with the row.
    list_select_related = ("invoice__customer",)
    list_filter = ("kind", "invoice__currency")
    customer_path = "invoice__customer"
    search_fields = ("invoice__customer__name", "description", "invoice__id__exact", "id__exact")
    date_hierarchy = "period_start"
    fields = (
        ("invoice", "kind"),
        "description",
        ("quantity", "unit_price_display", "amount_display"),
        ("period_start", "period_end"),
        ("reconciliation", "suspension"),
    )
    readonly_fields = ("unit_price_display", "amount_display")

    @admin.display(description="Customer", ordering="invoice__customer__name")
    def customer(self, obj: InvoiceLine) -> Customer:
        return obj.invoice.customer


@admin.register(QsrDisabledForBug)
class QsrDisabledForBugAdmin(UrlGuardMixin, ViewOnly, admin.ModelAdmin):
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
