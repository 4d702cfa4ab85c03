"""The subscriptions app's CSV exports (`portal.export`): reconciliations, and invoices
with their lines.

Invoices with their lines are one row per line, the invoice's columns repeated on each
(an invoice without lines is one row with the line columns empty), in the list's order
and each invoice's lines in the order they were written: a spreadsheet filters and sums
them without a lookup between two files.
"""

from __future__ import annotations

from portal.export import Column, label, money
from subscriptions.billing import CURRENCY_DECIMALS
from subscriptions.models import (
    InvoiceLineKind,
    ReconciliationSkipReason,
    ReconciliationStatus,
)


def amount(header: str, path: str, currency: str = "currency") -> Column:
    return Column(header, path, money(currency, CURRENCY_DECIMALS), numeric=True)


def number(header: str, path: str) -> Column:
    return Column(header, path, numeric=True)


def skip_reason(value, row) -> str:
    return dict(ReconciliationSkipReason.choices)[value] if value else ""


RECONCILIATION_COLUMNS = (
    number("Reconciliation", "id"),
    Column("Customer", "subscription__customer__name"),
    Column("Namespace", "subscription__namespace__name"),
    number("Subscription", "subscription_id"),
    number("Term start", "term_start"),
    number("Quarter", "quarter"),
    number("Reconciliation date", "reconciliation_date"),
    number("Notify date", "notify_date"),
    number("Invoice date", "invoice_date"),
    Column("Status", "status", label(ReconciliationStatus.choices)),
    Column("Skip reason", "skip_reason", skip_reason),
    number("Seats paid", "seats_paid"),
    number("Max seats used", "max_seats_used"),
    number("Overage seats", "overage_seats"),
    number("Refunded seats", "refunded_seats"),
    amount("Price per seat a year", "annual_unit_price"),
    amount("Amount", "amount"),
    Column("Currency", "currency"),
    Column("Failure reason", "failure_reason"),
)


def invoice_number(value, row) -> str:
    return f"INV-{value:07d}"


INVOICE_LINE_COLUMNS = (
    Column("Invoice", "id", invoice_number),
    number("Issue date", "issue_date"),
    Column("Customer", "customer__name"),
    number("Subscription", "subscription_id"),
    Column("Currency", "currency"),
    amount("Invoice total", "total"),
    Column("Credit memo", "total", lambda value, row: "yes" if value < 0 else "no"),
    number("Line", "lines__id"),
    Column("Kind", "lines__kind", label(InvoiceLineKind.choices)),
    Column("Description", "lines__description"),
    number("Quantity", "lines__quantity"),
    amount("Unit price", "lines__unit_price"),
    number("Period start", "lines__period_start"),
    number("Period end", "lines__period_end"),
    amount("Amount", "lines__amount"),
    number("Reconciliation", "lines__reconciliation_id"),
)
