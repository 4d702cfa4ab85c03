"""Writing invoices: the portal's append-only ledger.

Every invoice carries an idempotency key naming what it is for, so a retried or raced
job finds the invoice it (or another worker) wrote instead of writing a second one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from subscriptions import billing
from subscriptions.models import Invoice, InvoiceLine, Subscription
from subscriptions.services.history import history_snapshot


@dataclass
class InvoiceSpec:
    subscription: Subscription
    issue_date: date
    key: str
    lines: list[dict] = field(default_factory=list)


def recurring_invoice_spec(sub: Subscription, *, description: str) -> InvoiceSpec:
    """The prepaid charge of the subscription's current term: seats x annual price."""
    return InvoiceSpec(
        subscription=sub,
        issue_date=sub.term_start,
        key=f"recurring:{sub.pk}:{sub.term_start}",
        lines=[
            {
                "kind": InvoiceLine.Kind.RECURRING,
                "description": description,
                "quantity": sub.seats,
                "unit_price": sub.annual_unit_price,
                "period_start": sub.term_start,
                "period_end": sub.term_end,
                "amount": billing.round_money(sub.seats * sub.annual_unit_price, sub.currency),
            }
        ],
    )


def invoices_write(*, specs: list[InvoiceSpec], actor=None, reason: str = "") -> dict[str, Invoice]:
    """Write the invoices whose keys are new, with their lines, in a constant number of
    queries. Returns every key's invoice, new or found. Call inside a transaction."""
    if not specs:
        return {}
    keys = [spec.key for spec in specs]
    found = {inv.idempotency_key: inv for inv in Invoice.objects.filter(idempotency_key__in=keys)}
    new_specs = [spec for spec in specs if spec.key not in found]
    invoices = [
        Invoice(
            customer_id=spec.subscription.customer_id,
            subscription=spec.subscription,
            issue_date=spec.issue_date,
            currency=spec.subscription.currency,
            idempotency_key=spec.key,
        )
        for spec in new_specs
    ]
    invoices = Invoice.objects.bulk_create(invoices)
    lines = [
        InvoiceLine(invoice=invoice, **line)
        for invoice, spec in zip(invoices, new_specs, strict=True)
        for line in spec.lines
    ]
    lines = InvoiceLine.objects.bulk_create(lines)
    # History in one INSERT ... SELECT each, rather than an object per row in Python.
    history_snapshot(
        Invoice, ids=[i.pk for i in invoices], reason=reason, user=actor, history_type="+"
    )
    history_snapshot(
        InvoiceLine, ids=[x.pk for x in lines], reason=reason, user=actor, history_type="+"
    )
    found.update({inv.idempotency_key: inv for inv in invoices})
    return found
