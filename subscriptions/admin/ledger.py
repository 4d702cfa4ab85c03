"""Admin for the invoice ledger: invoices (credit memos are invoices with a negative
total), their lines, and the columns that show a line's amounts in its invoice's currency.
Read-only: only the services write the ledger."""

from __future__ import annotations

import re
from decimal import Decimal

from django.contrib import admin
from django.db.models import DecimalField, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest

from portal.admin_base import LedgerAdmin, ViewOnly
from subscriptions.admin.common import money
from subscriptions.exports import INVOICE_LINE_COLUMNS
from subscriptions.models import Customer, Invoice, InvoiceLine


class InvoiceLineColumns:
    @admin.display(description="Unit price", ordering="unit_price")
    def unit_price_display(self, line: InvoiceLine) -> str:
        return money(line.unit_price, line.invoice.currency)

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, line: InvoiceLine) -> str:
        return money(line.amount, line.invoice.currency)


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
        # `total` is the annotation InvoiceAdmin.get_queryset adds. Only an invoice with
        # a credit line can sum below zero: the few with one (an index of their own) are
        # totalled, not every invoice.
        with_credit = InvoiceLine.objects.filter(amount__lt=0).values("invoice")
        if self.value() == "credit_memo":
            return queryset.filter(pk__in=with_credit, total__lt=0)
        if self.value() == "invoice":
            return queryset.filter(~Q(pk__in=with_credit) | Q(total__gte=0))
        return queryset


def invoice_total() -> Coalesce:
    """An invoice's total (the sum of its rounded lines; zero without lines) as a
    subquery per row: the page sums the lines of its own rows only, where grouping the
    whole ledger by invoice would sum every line before the first page could show."""
    lines = (
        InvoiceLine.objects.filter(invoice=OuterRef("pk"))
        .order_by()
        .values("invoice")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    return Coalesce(Subquery(lines), Decimal("0"), output_field=DecimalField())


INVOICE_NUMBER = re.compile(r"^INV-0*(\d+)$", re.IGNORECASE)


@admin.register(Invoice)
class InvoiceAdmin(LedgerAdmin):
    list_display = ("number", "customer", "issue_date", "currency", "total_display", "credit_memo")
    list_select_related = ("customer",)
    list_filter = (CreditMemoFilter, "currency")
    search_fields = (
        "customer__name",
        "customer__billing_email",
        "idempotency_key__exact",
        "id__exact",
    )
    search_help_text = "Customer, billing email, invoice number (INV-0000012) or key."
    date_hierarchy = "issue_date"
    # One row per line, the invoice's columns repeated (subscriptions/exports.py).
    export_columns = INVOICE_LINE_COLUMNS
    export_order = ("lines__id",)
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
        return super().get_queryset(request).annotate(total=invoice_total())

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
    # Newest invoice first, as the invoices list; by id, which an index serves, rather
    # than through the invoice's own ordering, which would sort the whole ledger.
    ordering = ("-invoice_id", "id")
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
