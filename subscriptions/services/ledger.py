"""Writing invoices: the portal's append-only ledger.

Every invoice carries an idempotency key naming what it is for, so a retried or raced
job finds the invoice it (or another worker) wrote instead of writing a second one.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import cast

from django.db import connection
from django.db.models import Model

from portal.policy import Actor
from subscriptions import billing
from subscriptions.models import Invoice, InvoiceLine, Subscription
from subscriptions.services.history import history_insert_from, history_params
from subscriptions.services.sql import pg_arrays, table


@dataclass(frozen=True, slots=True)
class LineSpec:
    kind: str
    description: str
    quantity: int
    unit_price: Decimal
    period_start: date
    period_end: date
    amount: Decimal  # rounded by billing.py
    reconciliation_id: int | None = None
    suspension_id: int | None = None


@dataclass(frozen=True, slots=True)
class InvoiceSpec:
    key: str
    customer_id: int
    subscription_id: int
    currency: str
    issue_date: date
    lines: Sequence[LineSpec]

    @classmethod
    def for_subscription(
        cls, sub: Subscription, *, key: str, issue_date: date, lines: Sequence[LineSpec]
    ) -> InvoiceSpec:
        return cls(
            key=key,
            customer_id=sub.customer_id,
            subscription_id=sub.pk,
            currency=sub.currency,
            issue_date=issue_date,
            lines=lines,
        )


def recurring_invoice_spec(sub: Subscription, *, description: str) -> InvoiceSpec:
    """The prepaid charge of the subscription's current term: seats x annual price."""
    return InvoiceSpec.for_subscription(
        sub,
        key=f"recurring:{sub.pk}:{sub.term_start}",
        issue_date=sub.term_start,
        lines=[
            LineSpec(
                kind=InvoiceLine.Kind.RECURRING,
                description=description,
                quantity=sub.seats,
                unit_price=sub.annual_unit_price,
                period_start=sub.term_start,
                period_end=sub.term_end,
                amount=billing.round_money(sub.seats * sub.annual_unit_price, sub.currency),
            )
        ],
    )


_INVOICE_COLUMNS = ("idempotency_key", "customer_id", "subscription_id", "issue_date", "currency")
_LINE_COLUMNS = (
    "kind", "description", "quantity", "unit_price", "period_start", "period_end", "amount",
    "reconciliation_id", "suspension_id",
)  # fmt: skip


def _types(model: type[Model], columns: Sequence[str]) -> list[str]:
    fields = {f.column: f for f in model._meta.concrete_fields}
    # Concrete fields have a database type; the stubs allow None for the others.
    return [cast(str, fields[column].db_type(connection)) for column in columns]


def _unnest(prefix: str, types: Sequence[str]) -> str:
    """`unnest(%(<prefix>0)s::<type>[], ...)`: one array parameter per column."""
    return f"unnest({', '.join(f'%({prefix}{i})s::{t}[]' for i, t in enumerate(types))})"


@functools.cache
def _write_sql() -> str:
    """The invoices whose keys are new, their lines and the history rows of both, in
    one statement (set-based: a batch's thousand invoices in one round trip, not four
    statements each). ON CONFLICT leaves a key another run (or a racing worker) wrote
    alone, and that invoice gets no lines from this call: nothing is charged twice."""
    invoice_types = _types(Invoice, _INVOICE_COLUMNS)
    line_types = [invoice_types[0], *_types(InvoiceLine, _LINE_COLUMNS)]
    return f"""
WITH invoices AS (
    INSERT INTO {table(Invoice)} (created_at, updated_at, {", ".join(_INVOICE_COLUMNS)})
    SELECT now(), now(), v.*
    FROM {_unnest("i", invoice_types)} AS v({", ".join(_INVOICE_COLUMNS)})
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING *
),
invoice_history AS (
    {history_insert_from(Invoice, cte="invoices", history_type="+")}
),
lines AS (
    INSERT INTO {table(InvoiceLine)} (invoice_id, {", ".join(_LINE_COLUMNS)})
    SELECT invoices.id, {", ".join(f"l.{c}" for c in _LINE_COLUMNS)}
    FROM {_unnest("l", line_types)}
        WITH ORDINALITY AS l(idempotency_key, {", ".join(_LINE_COLUMNS)}, n)
    JOIN invoices USING (idempotency_key)
    ORDER BY l.n
    RETURNING *
),
line_history AS (
    {history_insert_from(InvoiceLine, cte="lines", history_type="+")}
)
SELECT idempotency_key, id FROM invoices
"""


def invoices_write(
    *, specs: Sequence[InvoiceSpec], actor: Actor | None = None, reason: str = ""
) -> dict[str, int]:
    """Write the invoices whose keys are new, with their lines and history rows, in one
    statement. Returns the new invoices' ids by key; a key that exists already gets
    nothing written. Call inside a transaction."""
    if not specs:
        return {}
    keys = [spec.key for spec in specs]
    if len(set(keys)) != len(keys):
        raise ValueError("invoices_write: the same idempotency key twice in one call")
    invoices = pg_arrays(
        ((s.key, s.customer_id, s.subscription_id, s.issue_date, s.currency) for s in specs),
        len(_INVOICE_COLUMNS),
    )
    lines = pg_arrays(
        (
            (spec.key, x.kind, x.description, x.quantity, x.unit_price, x.period_start,
             x.period_end, x.amount, x.reconciliation_id, x.suspension_id)
            for spec in specs
            for x in spec.lines
        ),
        len(_LINE_COLUMNS) + 1,
    )  # fmt: skip
    params = {
        **{f"i{i}": array for i, array in enumerate(invoices)},
        **{f"l{i}": array for i, array in enumerate(lines)},
        **history_params(reason=reason, user=actor),
    }
    with connection.cursor() as cursor:
        cursor.execute(_write_sql(), params)
        return dict(cursor.fetchall())
