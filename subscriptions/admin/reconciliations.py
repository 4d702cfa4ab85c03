"""Admin for the quarterly seat reconciliations: read-only, the nightly job and the
reconciliation services own them."""

from __future__ import annotations

from django.contrib import admin

from portal.admin_base import LedgerAdmin
from portal.admin_lists import known_values
from subscriptions.admin.account import RECONCILIATION_PANELS
from subscriptions.admin.common import SubscriptionColumns, money
from subscriptions.admin.panels import PanelsMixin
from subscriptions.exports import RECONCILIATION_COLUMNS
from subscriptions.models import Reconciliation


@admin.register(Reconciliation)
class ReconciliationAdmin(SubscriptionColumns, PanelsMixin, LedgerAdmin):
    """A reconciliation's page shows its invoice (and, from approvals, its disputes)."""

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
    list_filter = (
        "status",
        "skip_reason",
        ("quarter", known_values((1, "Q1"), (2, "Q2"), (3, "Q3"))),
        "currency",
    )
    customer_path = "subscription__customer"
    search_fields = (
        "subscription__customer__name",
        "subscription__namespace__name",
        "subscription__namespace__license_key",
        "id__exact",
        "subscription__id__exact",
    )
    date_hierarchy = "reconciliation_date"
    export_columns = RECONCILIATION_COLUMNS
    panels = RECONCILIATION_PANELS
    change_form_template = "admin/subscriptions/panels_change_form.html"
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
