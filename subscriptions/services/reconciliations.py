"""Quarterly subscription reconciliation: schedule, notify, invoice, skip, fail and retry.

Each step selects its work by status and date in the query, so a rerun finds nothing
left to do, and works through bounded batches. A batch is one transaction that locks
its rows with `SKIP LOCKED`: two workers on the same night split the work instead of
doubling it, and the unique constraint on (subscription, term, quarter) and the
invoices' idempotency keys are the last line of defence.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import NamedTuple, Protocol

from django.db import connection, transaction
from django.db.models import Q

from outbox.services import outbox_add_refs
from subscriptions import billing
from subscriptions.models import (
    Customer,
    InvoiceLine,
    Namespace,
    Reconciliation,
    SeatUsageReport,
    Subscription,
    Suspension,
    qsr_ineligibility,
)
from subscriptions.services.batches import BatchedStep, Errors, OnBatch, Only, only_these
from subscriptions.services.history import (
    history_insert_sql,
    history_params,
    update_with_history,
)
from subscriptions.services.ledger import InvoiceSpec, LineSpec, invoices_write
from subscriptions.services.sql import pg_array, pg_arrays

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
SAAS_NOTICE_DELAY = timedelta(days=0)
SELF_MANAGED_NOTICE_DELAY = timedelta(days=6)
INVOICE_DELAY = timedelta(days=7)
LIVE = (Subscription.Status.ACTIVE, Subscription.Status.SUSPENDED)
NOTICE = "reconciliation_notice"  # the outbox kind of the customer's notice


class QsrTerms(Protocol):
    """What decides whether QSR charges a subscription: a Subscription, or a row of it."""

    qsr_state: str
    qsr_paused_until: date | None
    term_months: int
    channel: str
    payment_method: str
    program: str
    offline_license: bool


def skip_reason(sub: QsrTerms, *, on: date, suspended: bool) -> str:
    """Why QSR does not charge this subscription on `on`, or "" when it does."""
    if sub.qsr_state == Subscription.QsrState.DISABLED_FOR_BUG:
        return Reconciliation.SkipReason.DISABLED_FOR_BUG
    if sub.qsr_state == Subscription.QsrState.PAUSED and (
        sub.qsr_paused_until is None or sub.qsr_paused_until >= on
    ):
        return Reconciliation.SkipReason.PAUSED
    eligible = not qsr_ineligibility(sub)
    if not eligible:
        return Reconciliation.SkipReason.INELIGIBLE
    if suspended:
        return Reconciliation.SkipReason.SUSPENDED
    return ""


# Suspensions that stop the service (a free period does not) and overlap [since, until].
_SUSPENSIONS_SQL = f"""
SELECT p.subscription_id, p.suspend_date, p.resume_date
FROM {Suspension._meta.db_table} p
WHERE p.subscription_id = ANY(%(ids)s::bigint[])
  AND p.suspend_date <= %(until)s::date AND p.resume_date > %(since)s::date
  AND p.status <> '{Suspension.Status.CANCELLED}' AND p.mode <> '{Suspension.Mode.FREE_PERIOD}'
ORDER BY p.subscription_id, p.suspend_date
"""

Periods = dict[int, list[tuple[date, date]]]


def _suspensions(subscription_ids: Iterable[int], *, since: date, until: date) -> Periods:
    """The suspended periods [suspend, resume) of these subscriptions that overlap
    [since, until], in date order, by subscription."""
    periods: Periods = {}
    with connection.cursor() as cursor:
        cursor.execute(
            _SUSPENSIONS_SQL, {"ids": pg_array(subscription_ids), "since": since, "until": until}
        )
        for sub_id, start, end in cursor.fetchall():
            periods.setdefault(sub_id, []).append((start, end))
    return periods


def _suspended_on(subscription_ids: Iterable[int], on: date) -> set[int]:
    """Subscriptions whose service is suspended on `on`."""
    return set(_suspensions(subscription_ids, since=on, until=on))


def _in_service_from(periods: list[tuple[date, date]], day: date) -> date:
    """`day`, or, when a suspension covers it, the day service resumes (after any
    suspension that follows on directly)."""
    for start, end in periods:
        if start <= day < end:
            day = end
    return day


# Every subscription of a term shares its quarter ends: work them out once per term start.
_reconciliation_dates = functools.lru_cache(maxsize=1024)(billing.reconciliation_dates)


def _due_quarters(sub, run_date: date) -> list[tuple[int, date]]:
    dates = _reconciliation_dates(sub.term_start)
    return [(q, d) for q, d in enumerate(dates, start=1) if d <= run_date and d < sub.term_end]


_LIVE = ", ".join(f"'{status}'" for status in LIVE)
# Live subscriptions with a quarter end up to the run date that has no record yet.
# PostgreSQL's month arithmetic clamps to month end like `billing.add_months`. (A plain
# anti-join: correlated EXISTS per quarter left the planner guessing, and paying for JIT
# compilation, on a table just filled.)
_MISSING_QUARTERS = f"""
SELECT DISTINCT s.id
FROM {Subscription._meta.db_table} s
CROSS JOIN LATERAL (
    SELECT k AS quarter, (s.term_start + make_interval(months => 3 * k))::date AS day
    FROM generate_series(1, 3) AS k
) AS q
WHERE s.status IN ({_LIVE})
  AND (%(only)s::bigint[] IS NULL OR s.id = ANY(%(only)s::bigint[]))
  AND q.day <= %(run_date)s::date AND q.day < s.term_end
  AND NOT EXISTS (
      SELECT 1 FROM {Reconciliation._meta.db_table} r
      WHERE r.subscription_id = s.id AND r.term_start = s.term_start AND r.quarter = q.quarter
  )
ORDER BY s.id
"""


def _create_due_ids(run_date: date, only: Only) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            _MISSING_QUARTERS,
            {"run_date": run_date, "only": None if only is None else pg_array(only)},
        )
        return [row[0] for row in cursor.fetchall()]


def _create_failed(errors: Errors, actor, sub_id: int, exc: Exception) -> None:
    _record_error(errors, "reconciliation_create", None, sub_id, exc)


def reconciliations_create_due(
    *,
    run_date: date,
    actor,
    on_batch: OnBatch | None = None,
    errors: list | None = None,
    only: Only = None,
) -> Counter:
    """Give every quarter end up to `run_date` of every live subscription its record:
    `scheduled`, or `skipped` with the reason. Returns counts by outcome."""
    return CREATE.run(run_date=run_date, actor=actor, on_batch=on_batch, errors=errors, only=only)


class _SubscriptionRow(NamedTuple):
    pk: int
    term_start: date
    term_end: date
    currency: str
    annual_unit_price: Decimal
    namespace_kind: str
    qsr_state: str
    qsr_paused_until: date | None
    term_months: int
    channel: str
    payment_method: str
    program: str
    offline_license: bool


_QSR_TERMS = (
    "s.qsr_state, s.qsr_paused_until, s.term_months, s.channel, s.payment_method, s.program, "
    "s.offline_license"
)
# The live subscriptions of a batch, locked; one a competing worker holds is left to it.
_LOCK_SUBSCRIPTIONS = f"""
SELECT s.id, s.term_start, s.term_end, s.currency, s.annual_unit_price, n.kind, {_QSR_TERMS}
FROM {Subscription._meta.db_table} s
JOIN {Namespace._meta.db_table} n ON n.id = s.namespace_id
WHERE s.id = ANY(%(ids)s::bigint[]) AND s.status IN ({_LIVE})
ORDER BY s.id
FOR UPDATE OF s SKIP LOCKED
"""


@functools.cache
def _insert_reconciliations_sql() -> str:
    # A quarter another worker recorded meanwhile is left alone (ON CONFLICT).
    return f"""
WITH created AS (
    INSERT INTO {Reconciliation._meta.db_table} (
        created_at, updated_at, subscription_id, term_start, quarter, reconciliation_date,
        notify_date, invoice_date, status, skip_reason, currency, annual_unit_price,
        refunded_seats, failure_reason, attempts)
    SELECT now(), now(), v.*, 0, '', 0
    FROM unnest(%(v0)s::bigint[], %(v1)s::date[], %(v2)s::smallint[], %(v3)s::date[],
                %(v4)s::date[], %(v5)s::date[], %(v6)s::varchar[], %(v7)s::varchar[],
                %(v8)s::varchar[], %(v9)s::numeric[]) AS v
    ON CONFLICT (subscription_id, term_start, quarter) DO NOTHING
    RETURNING *
), history AS (
    {history_insert_sql(Reconciliation, select_from="created", history_type="+")}
)
SELECT id, status, skip_reason FROM created
"""


def _create_batch(ids: Sequence[int], *, run_date: date, actor) -> Counter:
    # Plain rows and one INSERT ... FROM unnest: this step touches every subscription of
    # the book four times a year, so it stays clear of per-row model objects.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_LOCK_SUBSCRIPTIONS, {"ids": pg_array(ids)})
        subs = list(map(_SubscriptionRow._make, cursor.fetchall()))
        due = [
            (sub, quarter, when) for sub in subs for quarter, when in _due_quarters(sub, run_date)
        ]
        suspended: dict[date, set[int]] = {}
        for when in {when for _, _, when in due}:
            suspended[when] = _suspended_on([s.pk for s, _, w in due if w == when], when)
        rows = []
        for sub, quarter, when in due:
            self_managed = sub.namespace_kind == Namespace.Kind.SELF_MANAGED
            notify = when + (SELF_MANAGED_NOTICE_DELAY if self_managed else SAAS_NOTICE_DELAY)
            reason = skip_reason(sub, on=when, suspended=sub.pk in suspended[when])
            rows.append(
                (sub.pk, sub.term_start, quarter, when, notify, notify + INVOICE_DELAY,
                 "skipped" if reason else "scheduled", reason, sub.currency,
                 sub.annual_unit_price)
            )  # fmt: skip
        if not rows:
            return Counter()
        arrays = pg_arrays(rows, 10)
        cursor.execute(
            _insert_reconciliations_sql(),
            {
                **{f"v{i}": array for i, array in enumerate(arrays)},
                **history_params(reason=f"nightly {run_date}", user=actor),
            },
        )
        created = cursor.fetchall()
    return Counter("skipped:" + reason if reason else "created" for _, _, reason in created)


# A reconciliation whose pricing failed is `failed` with no amount; one whose invoicing
# failed has its amount. Each is retried by the step that failed.
_PRICING_FAILED = Q(status="failed", amount__isnull=True)
_INVOICING_FAILED = Q(status="failed", amount__isnull=False)


def _notify_due_ids(run_date: date, only: Only) -> list[int]:
    due = Reconciliation.objects.filter(
        Q(status="scheduled") | (_PRICING_FAILED & Q(attempts__lt=MAX_ATTEMPTS)),
        notify_date__lte=run_date,
        subscription__status__in=LIVE,
    )
    return list(only_these(due, only).order_by("pk").values_list("pk", flat=True))


def _notify_failed(errors: Errors, actor, recon_id: int, exc: Exception) -> None:
    _fail(errors, "reconciliation_notify", actor, recon_id, exc)


def reconciliations_notify_due(
    *,
    run_date: date,
    actor,
    on_batch: OnBatch | None = None,
    errors: list | None = None,
    only: Only = None,
) -> Counter:
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
       {_QSR_TERMS}, c.billing_email
FROM {Reconciliation._meta.db_table} r
JOIN {Subscription._meta.db_table} s ON s.id = r.subscription_id
JOIN {Namespace._meta.db_table} n ON n.id = s.namespace_id
JOIN {Customer._meta.db_table} c ON c.id = s.customer_id
CROSS JOIN LATERAL (
    SELECT GREATEST(r.term_start, COALESCE(n.usage_counted_from, r.term_start)) AS day
) AS since
WHERE r.id = ANY(%(ids)s::bigint[]) AND s.status IN ({_LIVE})
  AND (r.status = 'scheduled' OR (r.status = 'failed' AND r.amount IS NULL))
ORDER BY r.id
FOR UPDATE OF r, s SKIP LOCKED
"""
_PRICING = (
    "seats_paid", "max_seats_used", "overage_seats", "annual_unit_price", "remaining_quarters",
    "amount",
)  # fmt: skip


def _notify_batch(ids: Sequence[int], *, run_date: date, actor) -> Counter:
    counts: Counter = Counter()
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


def _invoice_due_ids(run_date: date, only: Only) -> list[int]:
    due = Reconciliation.objects.filter(
        Q(status="pending") | (_INVOICING_FAILED & Q(attempts__lt=MAX_ATTEMPTS)),
        invoice_date__lte=run_date,
        subscription__status__in=LIVE,
    )
    return list(only_these(due, only).order_by("pk").values_list("pk", flat=True))


def _invoice_failed(errors: Errors, actor, recon_id: int, exc: Exception) -> None:
    _fail(errors, "reconciliation_invoice", actor, recon_id, exc)


def reconciliations_invoice_due(
    *,
    run_date: date,
    actor,
    on_batch: OnBatch | None = None,
    errors: list | None = None,
    only: Only = None,
) -> Counter:
    """Invoice the pending reconciliations whose invoice date has come (and retry the
    failed ones): a QSR overage line, and the subscription's seats grow by the overage.
    A pending reconciliation of a paused (or bug-disabled) subscription is skipped."""
    return INVOICE.run(run_date=run_date, actor=actor, on_batch=on_batch, errors=errors, only=only)


def _fail(errors: list | None, step: str, actor, recon_id: int, exc: Exception) -> None:
    reconciliation_fail(reconciliation_id=recon_id, error=exc, actor=actor)
    _record_error(errors, step, recon_id, recon_id, exc)


def _record_error(
    errors: list | None, step: str, recon_id: int | None, pk: int, exc: Exception
) -> None:
    """Add a record's failure to the job run's errors. `pk` is the reconciliation when
    `recon_id` is given, else the subscription."""
    if errors is None:
        return
    sub_id = (
        Reconciliation.objects.filter(pk=recon_id).values_list("subscription_id", flat=True).first()
        if recon_id is not None
        else pk
    )
    error = {"step": step, "subscription": sub_id, "error": str(exc)[:2000]}
    if recon_id is not None:
        error["reconciliation"] = recon_id
    errors.append(error)


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
       s.customer_id, s.seats, s.term_end, s.currency, {_QSR_TERMS}
FROM {Reconciliation._meta.db_table} r
JOIN {Subscription._meta.db_table} s ON s.id = r.subscription_id
WHERE r.id = ANY(%(ids)s::bigint[]) AND s.status IN ({_LIVE})
  AND (r.status = 'pending' OR (r.status = 'failed' AND r.amount IS NOT NULL))
ORDER BY r.id
FOR UPDATE OF r, s SKIP LOCKED
"""


def _invoice_batch(ids: Sequence[int], *, run_date: date, actor) -> Counter:
    counts: Counter = Counter()
    reason_text = f"nightly {run_date}"
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_LOCK_DUE, {"ids": pg_array(ids)})
            recons = list(map(_DueRow._make, cursor.fetchall()))
        if not recons:
            return counts
        periods = _suspensions(
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


def reconciliation_fail(*, reconciliation_id: int, error: Exception, actor=None) -> None:
    """Record a failed pricing or invoicing attempt; the next nights retry it, up to
    MAX_ATTEMPTS in all."""
    with transaction.atomic():
        recon = (
            Reconciliation.objects.select_for_update()
            .filter(pk=reconciliation_id, status__in=["scheduled", "pending", "failed"])
            .first()
        )
        if recon is None:
            return
        what = "invoicing" if recon.amount is not None else "pricing"
        recon.status = "failed"
        recon.attempts += 1
        recon.failure_reason = str(error)[:2000]
        recon._change_reason = f"{what} failed"
        recon.save(update_fields=["status", "attempts", "failure_reason", "updated_at"])


CREATE = BatchedStep("reconciliation_create", _create_due_ids, _create_batch, _create_failed)
NOTIFY = BatchedStep("reconciliation_notify", _notify_due_ids, _notify_batch, _notify_failed)
INVOICE = BatchedStep("reconciliation_invoice", _invoice_due_ids, _invoice_batch, _invoice_failed)
