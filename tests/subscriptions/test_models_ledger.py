"""Invariants of invoice lines (subscriptions/models/ledger.py; DOMAIN.md "Money"): the
sign follows the kind, amounts fit the currency, the period is not empty.

Each rule is checked twice where the database can hold it: `full_clean()` (what a form or
the admin shows: the field at fault and why) and a write that skips validation (what a
job or a bug would do: the database refuses and nothing is stored)."""

from datetime import date
from decimal import Decimal

import pytest

from subscriptions.models import InvoiceLine
from tests.assertions import assert_db_rejects, assert_invalid
from tests.factories import InvoiceFactory, InvoiceLineFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db


# --- Invoice lines --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "amount"),
    [
        ("proration_credit", Decimal("0.01")),
        ("refund_credit", Decimal("250.00")),
        ("recurring", Decimal("-0.01")),
        ("qsr_overage", Decimal("-750.00")),
        ("annual_true_up", Decimal("-1.00")),
        ("proration_charge", Decimal("-7035.62")),
    ],
)
def test_invoice_line_whose_sign_contradicts_its_kind_is_rejected(kind, amount):
    invoice = InvoiceFactory()

    line = InvoiceLineFactory.build(invoice=invoice, kind=kind, amount=amount)
    assert_invalid(line, "amount", "Credit lines are negative and charge lines positive.")
    assert_db_rejects(
        InvoiceLine,
        lambda: InvoiceLineFactory(invoice=invoice, kind=kind, amount=amount),
        "invoice_line_sign_matches_kind",
    )


@pytest.mark.parametrize(
    ("kind", "amount"),
    [
        ("proration_credit", Decimal("-7035.62")),
        ("refund_credit", Decimal("0.00")),
        ("proration_charge", Decimal("7035.62")),
        ("recurring", Decimal("0.00")),
    ],
)
def test_invoice_line_with_the_sign_of_its_kind_is_valid(kind, amount):
    line = InvoiceLineFactory(kind=kind, amount=amount)

    line.full_clean()
    assert line.invoice.lines.get().amount == amount


def test_jpy_invoice_line_with_decimals_is_rejected():
    invoice = InvoiceFactory(subscription=SubscriptionFactory(customer__currency="JPY"))

    line = InvoiceLineFactory.build(
        invoice=invoice, unit_price=Decimal("750"), amount=Decimal("7500.50")
    )

    assert_invalid(line, "amount", "JPY amounts have 0 decimal places")


@pytest.mark.parametrize(
    ("field", "value", "constraint"),
    [
        ("unit_price", Decimal("-1.00"), "invoice_line_price_non_negative"),
        ("quantity", -1, "quantity_check"),
    ],
)
def test_invoice_line_with_a_negative_unit_price_or_quantity_is_rejected(field, value, constraint):
    invoice = InvoiceFactory()

    line = InvoiceLineFactory.build(invoice=invoice, **{field: value})
    assert_invalid(line, field, "greater than or equal to 0")
    assert_db_rejects(
        InvoiceLine, lambda: InvoiceLineFactory(invoice=invoice, **{field: value}), constraint
    )


def test_invoice_line_period_ending_on_its_start_is_rejected():
    invoice = InvoiceFactory()

    line = InvoiceLineFactory.build(invoice=invoice, period_end=date(2026, 4, 1))
    assert_invalid(line, "period_end", "The service period must end after it starts.")
    assert_db_rejects(
        InvoiceLine,
        lambda: InvoiceLineFactory(invoice=invoice, period_end=date(2026, 4, 1)),
        "invoice_line_period",
    )
