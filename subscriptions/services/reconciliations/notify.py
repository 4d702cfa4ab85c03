"""The notify step: the scheduled reconciliations whose notice day has come are priced,
and the customer is told through the outbox; a quarter with nothing over is closed at
0.00.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import NamedTuple

from django.db import connection, transaction
from django.db.models import Q

from outbox.services import outbox_add_refs
from portal.policy import Actor
from subscriptions import billing
from subscriptions.models import Customer, Namespace, Reconciliation, SeatUsageReport, Subscription
from subscriptions.services.batches import BatchedStep, Errors, OnBatch, Only, only_these
from subscriptions.services.history import update_with_history
from subscriptions.services.reconciliations.common import (
    LIVE,
    LIVE_SQL,
    MAX_ATTEMPTS,
    PRICING_FAILED,
    QSR_TERMS,
    fail_and_record,
    skip_reason,
)
from subscriptions.services.sql import pg_array

NOTICE = "reconciliation_notice"  # the outbox kind of the customer's notice


def _notify_due_ids(run_date: date, only: Only) -> list[int]:
    due = Reconciliation.objects.filter(
        Q(status="scheduled") | (PRICING_FAILED & Q(attempts__lt=MAX_ATTEMPTS)),
        notify_date__lte=run_date,
        subscription__status__in=LIVE,
    )
    return list(only_these(due, only).order_by("pk").values_list("pk", flat=True))


def _notify_failed(errors: Errors, actor: Actor, recon_id: int, exc: Exception) -> None:
    fail_and_record(errors, "reconciliation_notify", actor, recon_id, exc)


def reconciliations_notify_due(
    *,
    run_date: date,
    actor: Actor,
    on_batch: OnBatch | None = None,
    errors: Errors = None,
    only: Only = None,
) -> Counter[str]:
    """Price the scheduled reconciliations whose notice date has come and tell the
    customer: `pending` with a notice, or `processed` at 0.00 when nothing is over.
    One that cannot be priced is marked `failed` with the error, and retried by the
    next nights, MAX_ATTEMPTS in all."""
    return NOTIFY.run(run_date=run_date, actor=actor, on_batch=on_batch, errors=errors, only=only)


class _ScheduledRow(NamedTuple):
    pk: int
    quarter: int
    # What the record holds now; a skipped one keeps it.
    seats_paid: int | None
    max_seats_used: int | None
    overage_seats: int | None
    annual_unit_price: Decimal | None
    remaining_quarters: int | None
    amount: Decimal | None
    # Its subscription and namespace.
    seats: int
    price: Decimal
    currency: str
    high_water_mark: int
    quarter_peak: int | None
    qsr_state: str
    qsr_paused_until: date | None
    term_months: int
    channel: str
    payment_method: str
    program: str
    offline_license: bool
    # Where the notice goes.
    billing_email: str


# The scheduled reconciliations of a batch with their subscription (both locked) and the
# max seats used up to each one's date, in one query.
#
# The namespace's high-water mark may already hold days after the quarter end
# (self-managed notices go out six days late); those belong to the next quarter, so the
# peak is taken over the quarter's reports. The mark stays the ceiling, so a max seats
# reset is respected; a namespace without reports keeps its mark. Reports dated before
# `usage_counted_from` (a reset, a new term) do not count.
#
# Most namespaces reach their mark within the quarter: one report at the mark, looked
# for from the latest day back, settles the peak without reading the whole quarter.
_QUARTER_REPORTS = f"""
    FROM {SeatUsageReport._meta.db_table} u
    WHERE u.namespace_id = n.id AND u.date >= since.day AND u.date < r.reconciliation_date
"""
_LOCK_SCHEDULED = f"""
SELECT r.id, r.quarter,
       r.seats_paid, r.max_seats_used, r.overage_seats, r.annual_unit_price,
       r.remaining_quarters, r.amount,
       s.seats, s.annual_unit_price, s.currency, n.max_seats_used,
       COALESCE(
           (SELECT n.max_seats_used {_QUARTER_REPORTS}
              AND u.billable_users >= n.max_seats_used ORDER BY u.date DESC LIMIT 1),
           (SELECT max(u.billable_users) {_QUARTER_REPORTS})
       ),
       {QSR_TERMS}, c.billing_email
FROM {Reconciliation._meta.db_table} r
JOIN {Subscription._meta.db_table} s ON s.id = r.subscription_id
JOIN {Namespace._meta.db_table} n ON n.id = s.namespace_id
JOIN {Customer._meta.db_table} c ON c.id = s.customer_id
CROSS JOIN LATERAL (
    SELECT GREATEST(r.term_start, COALESCE(n.usage_counted_from, r.term_start)) AS day
) AS since
WHERE r.id = ANY(%(ids)s::bigint[]) AND s.status IN ({LIVE_SQL})
  AND (r.status = 'scheduled' OR (r.status = 'failed' AND r.amount IS NULL))
ORDER BY r.id
FOR UPDATE OF r, s SKIP LOCKED
"""
_PRICING = (
    "seats_paid", "max_seats_used", "overage_seats", "annual_unit_price", "remaining_quarters",
    "amount",
)  # fmt: skip


def _notify_batch(ids: Sequence[int], *, run_date: date, actor: Actor) -> Counter[str]:
    counts: Counter[str] = Counter()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_LOCK_SCHEDULED, {"ids": pg_array(ids)})
            recons = list(map(_ScheduledRow._make, cursor.fetchall()))
        if not recons:
            return counts
        pks, statuses, reasons, pricing, notified, notices = [], [], [], [], [], []
        for recon in recons:
            pks.append(recon.pk)
            # Suspension counts on the reconciliation date only (checked when created):
            # one that starts later does not cancel a quarter already used.
            reason = skip_reason(recon, on=run_date, suspended=False)
            if reason:
                statuses.append("skipped")
                reasons.append(reason)
                pricing.append(
                    (recon.seats_paid, recon.max_seats_used, recon.overage_seats,
                     recon.annual_unit_price, recon.remaining_quarters, recon.amount)
                )  # fmt: skip
                notified.append(False)
                counts["skipped:" + reason] += 1
                continue
            peak = recon.high_water_mark
            if recon.quarter_peak is not None:
                peak = min(recon.quarter_peak, peak)
            result = billing.qsr_reconcile(
                quarter=recon.quarter,
                max_seats_used=peak,
                paid_seats=recon.seats,
                annual_unit_price=recon.price,
                currency=recon.currency,
            )
            pending = result.overage > 0
            statuses.append("pending" if pending else "processed")
            reasons.append("")
            pricing.append(
                (result.paid_seats, result.max_seats_used, result.overage, recon.price,
                 result.remaining_quarters, result.amount)
            )  # fmt: skip
            notified.append(pending)
            if pending:
                notices.append((recon.pk, recon.billing_email))
            counts["notified" if pending else "processed:no_overage"] += 1
        update_with_history(
            Reconciliation,
            pks=pks,
            values={
                "status": statuses,
                "skip_reason": reasons,
                **dict(zip(_PRICING, zip(*pricing, strict=True), strict=True)),
                # A retry that prices clears the last attempt's error.
                "failure_reason": [""] * len(pks),
            },
            stamps={"notified_at": notified},
            reason=f"nightly {run_date}",
            user=actor,
        )
        # The notices go out through the outbox, written in this transaction: a
        # rolled-back batch (or a dry run) mails nobody, a committed one everybody.
        # One statement for the batch; the text is written when a notice is sent
        # (subscriptions/services/notices.py).
        outbox_add_refs(kind=NOTICE, refs=notices)
    return counts


NOTIFY = BatchedStep("reconciliation_notify", _notify_due_ids, _notify_batch, _notify_failed)
