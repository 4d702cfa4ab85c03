"""The invoice step: the pending reconciliations whose invoice day has come (and the
failed ones, retried) get their QSR overage invoiced and their subscription's seats grow
by the overage; one of a suspended subscription waits for the day service resumes.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import NamedTuple

from django.db import connection, transaction
from django.db.models import Q

from portal.logs import money_moved
from portal.policy import Actor
from subscriptions import billing
from subscriptions.models import InvoiceLine, Reconciliation, Subscription
from subscriptions.services.batches import BatchedStep, Errors, OnBatch, Only, only_these
from subscriptions.services.history import update_with_history
from subscriptions.services.ledger import InvoiceSpec, LineSpec, invoices_write
from subscriptions.services.reconciliations.common import (
    INVOICING_FAILED,
    LIVE,
    LIVE_SQL,
    MAX_ATTEMPTS,
    QSR_TERMS,
    fail_and_record,
    skip_reason,
    suspensions,
)
from subscriptions.services.sql import pg_array

logger = logging.getLogger(__name__)


def _invoice_due_ids(run_date: date, only: Only) -> list[int]:
    due = Reconciliation.objects.filter(
        Q(status="pending") | (INVOICING_FAILED & Q(attempts__lt=MAX_ATTEMPTS)),
        invoice_date__lte=run_date,
        subscription__status__in=LIVE,
    )
    return list(only_these(due, only).order_by("pk").values_list("pk", flat=True))


def _invoice_failed(errors: Errors, actor: Actor, recon_id: int, exc: Exception) -> None:
    fail_and_record(errors, "reconciliation_invoice", actor, recon_id, exc)


def reconciliations_invoice_due(
    *,
    run_date: date,
    actor: Actor,
    on_batch: OnBatch | None = None,
    errors: Errors = None,
    only: Only = None,
) -> Counter[str]:
    """Invoice the pending reconciliations whose invoice date has come (and retry the
    failed ones): a QSR overage line, and the subscription's seats grow by the overage.
    A pending reconciliation of a paused (or bug-disabled) subscription is skipped."""
    return INVOICE.run(run_date=run_date, actor=actor, on_batch=on_batch, errors=errors, only=only)


def _in_service_from(periods: list[tuple[date, date]], day: date) -> date:
    """`day`, or, when a suspension covers it, the day service resumes (after any
    suspension that follows on directly)."""
    for start, end in periods:
        if start <= day < end:
            day = end
    return day


class _DueRow(NamedTuple):
    pk: int
    subscription_id: int
    quarter: int
    reconciliation_date: date
    invoice_date: date
    seats_paid: int
    overage_seats: int
    amount: Decimal
    currency: str
    attempts: int
    failure_reason: str
    customer_id: int
    seats: int
    term_end: date
    subscription_currency: str
    qsr_state: str
    qsr_paused_until: date | None
    term_months: int
    channel: str
    payment_method: str
    program: str
    offline_license: bool


# The reconciliations of a batch that are due for invoicing, with their subscription;
# both locked.
_LOCK_DUE = f"""
SELECT r.id, r.subscription_id, r.quarter, r.reconciliation_date, r.invoice_date,
       r.seats_paid, r.overage_seats, r.amount, r.currency, r.attempts, r.failure_reason,
       s.customer_id, s.seats, s.term_end, s.currency, {QSR_TERMS}
FROM {Reconciliation._meta.db_table} r
JOIN {Subscription._meta.db_table} s ON s.id = r.subscription_id
WHERE r.id = ANY(%(ids)s::bigint[]) AND s.status IN ({LIVE_SQL})
  AND (r.status = 'pending' OR (r.status = 'failed' AND r.amount IS NOT NULL))
ORDER BY r.id
FOR UPDATE OF r, s SKIP LOCKED
"""


def _invoice_batch(ids: Sequence[int], *, run_date: date, actor: Actor) -> Counter[str]:
    counts: Counter[str] = Counter()
    reason_text = f"nightly {run_date}"
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_LOCK_DUE, {"ids": pg_array(ids)})
            recons = list(map(_DueRow._make, cursor.fetchall()))
        if not recons:
            return counts
        periods = suspensions(
            {r.subscription_id for r in recons},
            since=min(r.invoice_date for r in recons),
            until=run_date,
        )
        # Nothing amends a suspended subscription: its invoice waits for the resume.
        suspended = {
            sub_id
            for sub_id, spans in periods.items()
            if any(start <= run_date < end for start, end in spans)
        }
        counts["deferred:suspended"] += sum(r.subscription_id in suspended for r in recons)
        recons = [r for r in recons if r.subscription_id not in suspended]
        if not recons:
            return counts
        seats: dict[int, int] = {}  # new seats by subscription
        specs = []
        pks, statuses, reasons, attempts, failures, invoiced = [], [], [], [], [], []
        for recon in recons:
            pks.append(recon.pk)
            reason = skip_reason(recon, on=run_date, suspended=False)
            if reason and reason != Reconciliation.SkipReason.INELIGIBLE:
                statuses.append("skipped")
                reasons.append(reason)
                attempts.append(recon.attempts)
                failures.append(recon.failure_reason)
                invoiced.append(False)
                counts["skipped:" + reason] += 1
                continue
            specs.append(
                InvoiceSpec(
                    key=f"qsr:{recon.pk}",
                    customer_id=recon.customer_id,
                    subscription_id=recon.subscription_id,
                    currency=recon.subscription_currency,
                    # Dated for its invoice day, also when a missed night is caught up;
                    # one deferred by a suspension, for the day service resumed.
                    issue_date=_in_service_from(
                        periods.get(recon.subscription_id, []), recon.invoice_date
                    ),
                    lines=[
                        LineSpec(
                            kind=InvoiceLine.Kind.QSR_OVERAGE,
                            description=f"QSR Q{recon.quarter}: "
                            f"{recon.overage_seats} seats over {recon.seats_paid}",
                            quantity=recon.overage_seats,
                            unit_price=billing.round_money(
                                recon.amount / recon.overage_seats, recon.currency
                            ),
                            period_start=recon.reconciliation_date,
                            period_end=recon.term_end,
                            amount=recon.amount,
                            reconciliation_id=recon.pk,
                        )
                    ],
                )
            )
            # Several quarters of one subscription may be in one batch: they add up.
            sub_id = recon.subscription_id
            seats[sub_id] = seats.get(sub_id, recon.seats) + recon.overage_seats
            statuses.append("processed")
            reasons.append("")
            attempts.append(recon.attempts + 1)
            failures.append("")
            invoiced.append(True)
            counts["invoiced"] += 1
            money_moved(
                logger,
                "qsr overage invoiced",
                entity=f"reconciliation:{recon.pk}",
                amount=recon.amount,
                currency=recon.currency,
                actor=actor,
                subscription=sub_id,
                seats=recon.overage_seats,
            )
        invoices_write(specs=specs, actor=actor, reason=reason_text)
        update_with_history(
            Reconciliation,
            pks=pks,
            values={
                "status": statuses,
                "skip_reason": reasons,
                "attempts": attempts,
                "failure_reason": failures,
            },
            stamps={"invoiced_at": invoiced},
            reason=reason_text,
            user=actor,
        )
        update_with_history(
            Subscription,
            pks=list(seats),
            values={"seats": list(seats.values())},
            reason=f"QSR overage invoiced ({reason_text})",
            user=actor,
        )
    return counts


INVOICE = BatchedStep("reconciliation_invoice", _invoice_due_ids, _invoice_batch, _invoice_failed)
