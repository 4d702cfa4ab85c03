"""Writing invoices: once per key, with their lines and history rows."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import transaction

from subscriptions.models import Invoice, InvoiceLine
from subscriptions.services.ledger import InvoiceSpec, LineSpec, invoices_write
from tests.factories import SubscriptionFactory, UserFactory

pytestmark = pytest.mark.django_db


def spec(sub, key: str, *amounts: str) -> InvoiceSpec:
    return InvoiceSpec.for_subscription(
        sub,
        key=key,
        issue_date=date(2026, 4, 8),
        lines=[
            LineSpec(
                kind=InvoiceLine.Kind.QSR_OVERAGE,
                description=f'Line {n}: "quoted", {{braced}}',
                quantity=n + 1,
                unit_price=Decimal(amount),
                period_start=date(2026, 4, 1),
                period_end=date(2027, 1, 1),
                amount=Decimal(amount) * (n + 1),
            )
            for n, amount in enumerate(amounts)
        ],
    )


def test_writes_invoices_with_their_lines_in_order():
    sub, other = SubscriptionFactory(), SubscriptionFactory()
    with transaction.atomic():
        written = invoices_write(
            specs=[spec(sub, "a", "10.00", "20.50"), spec(other, "b", "3.00")], reason="test"
        )
    assert set(written) == {"a", "b"}
    a = Invoice.objects.get(idempotency_key="a")
    assert written["a"] == a.pk
    assert (a.customer_id, a.subscription_id, a.currency, a.issue_date) == (
        sub.customer_id, sub.pk, sub.currency, date(2026, 4, 8),
    )  # fmt: skip
    assert list(a.lines.values_list("description", "quantity", "amount")) == [
        ('Line 0: "quoted", {braced}', 1, Decimal("10.00")),
        ('Line 1: "quoted", {braced}', 2, Decimal("41.00")),
    ]
    assert Invoice.objects.get(idempotency_key="b").lines.count() == 1


def test_a_key_written_before_gets_nothing_more():
    sub = SubscriptionFactory()
    with transaction.atomic():
        invoices_write(specs=[spec(sub, "a", "10.00")], reason="first")
    with transaction.atomic():
        written = invoices_write(
            specs=[spec(sub, "a", "99.00"), spec(sub, "b", "5.00")], reason="again"
        )
    assert set(written) == {"b"}
    assert list(
        InvoiceLine.objects.filter(invoice__idempotency_key="a").values_list("amount", flat=True)
    ) == [Decimal("10.00")]
    assert Invoice.history.filter(idempotency_key="a").count() == 1


def test_the_same_key_twice_in_one_call_is_refused():
    sub = SubscriptionFactory()
    with pytest.raises(ValueError, match="idempotency key"):
        invoices_write(specs=[spec(sub, "a", "1.00"), spec(sub, "a", "2.00")])


def test_every_invoice_and_line_has_a_history_row_with_who_and_why():
    sub, actor = SubscriptionFactory(), UserFactory()
    with transaction.atomic():
        invoices_write(specs=[spec(sub, "a", "1.00", "2.00")], actor=actor, reason="why " * 40)
    for model, count in ((Invoice, 1), (InvoiceLine, 2)):
        rows = model.history.all()
        assert rows.count() == count
        for row in rows:
            assert (row.history_type, row.history_user) == ("+", actor)
            assert row.history_change_reason == ("why " * 40)[:100]
    line = InvoiceLine.objects.first()
    assert InvoiceLine.history.get(id=line.pk).amount == line.amount
