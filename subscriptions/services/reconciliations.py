"""Quarterly subscription reconciliation: schedule, notify, invoice, skip, fail and retry.

Each step selects its work by status and date in the query, so a rerun finds nothing
left to do, and works through bounded batches. A batch is one transaction that locks
its rows with `SKIP LOCKED`: two workers on the same night split the work instead of
doubling it, and the unique constraint on (subscription, term, quarter) and the
invoices' idempotency keys are the last line of defence.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import date, timedelta
from types import SimpleNamespace

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import connection, transaction
from django.db.models import DateField, Exists, F, Func, OuterRef, Q
from django.utils import timezone

from subscriptions import billing
from subscriptions.models import (
    InvoiceLine,
    Namespace,
    Reconciliation,
    Subscription,
    Suspension,
    qsr_ineligibility,
)
from subscriptions.services.history import history_snapshot, update_with_history
from subscriptions.services.ledger import InvoiceSpec, invoices_write

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000
MAX_ATTEMPTS = 3
SAAS_NOTICE_DELAY = timedelta(days=0)
SELF_MANAGED_NOTICE_DELAY = timedelta(days=6)
INVOICE_DELAY = timedelta(days=7)
LIVE = (Subscription.Status.ACTIVE, Subscription.Status.SUSPENDED)

OnBatch = Callable[[int], None]
# Subscription ids a run is limited to (a simulation), or None for the whole book.
Only = Sequence[int] | None


def _only(queryset, only: Only, field: str = "subscription_id"):
    return queryset if only is None else queryset.filter(**{f"{field}__in": only})


class AddMonths(Func):
    """PostgreSQL month arithmetic, which clamps to month end like `billing.add_months`."""

    template = "(%(expressions)s + make_interval(months => %(months)d))::date"
    output_field = DateField()

    def __init__(self, expression, *, months: int):
        super().__init__(expression, months=months)


def chunks(ids: Sequence[int], size: int | None = None) -> Iterable[Sequence[int]]:
    size = size or BATCH_SIZE
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def skip_reason(sub: Subscription | SimpleNamespace, *, on: date, suspended: bool) -> str:
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


def _suspended_on(subscription_ids: Iterable[int], on: date) -> set[int]:
    """Subscriptions whose service is suspended on `on` (a free period is not a suspension)."""
    return set(
        Suspension.objects.filter(
            subscription_id__in=list(subscription_ids),
            suspend_date__lte=on,
            resume_date__gt=on,
        )
        .exclude(status=Suspension.Status.CANCELLED)
        .exclude(mode=Suspension.Mode.FREE_PERIOD)
        .values_list("subscription_id", flat=True)
    )


def _due_quarters(sub: Subscription | SimpleNamespace, run_date: date) -> list[tuple[int, date]]:
    dates = billing.reconciliation_dates(sub.term_start)
    return [(q, d) for q, d in enumerate(dates, start=1) if d <= run_date and d < sub.term_end]


def reconciliations_create_due(
    *, run_date: date, actor=None, on_batch: OnBatch | None = None, only: Only = None
) -> Counter:
    """Give every quarter end up to `run_date` of every live subscription its record:
    `scheduled`, or `skipped` with the reason. Returns counts by outcome."""
    missing = Q()
    annotations = {}
    for quarter in (1, 2, 3):
        annotations[f"r{quarter}"] = AddMonths(F("term_start"), months=3 * quarter)
        exists = Reconciliation.objects.filter(
            subscription=OuterRef("pk"), term_start=OuterRef("term_start"), quarter=quarter
        )
        missing |= Q(**{f"r{quarter}__lte": run_date, f"r{quarter}__lt": F("term_end")}) & ~Exists(
            exists
        )
    ids = list(
        _only(Subscription.objects.filter(status__in=LIVE), only, "pk")
        .annotate(**annotations)
        .filter(missing)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    counts: Counter = Counter()
    for batch in chunks(ids):
        counts += _create_batch(batch, run_date=run_date, actor=actor)
        if on_batch:
            on_batch(len(batch))
    return counts


_SUB_FIELDS = (
    "pk", "term_start", "term_end", "currency", "annual_unit_price", "qsr_state",
    "qsr_paused_until", "term_months", "channel", "payment_method", "program",
    "offline_license", "namespace__kind",
)  # fmt: skip
_INSERT_RECONCILIATIONS = """
INSERT INTO subscriptions_reconciliation (
    created_at, updated_at, subscription_id, term_start, quarter, reconciliation_date,
    notify_date, invoice_date, status, skip_reason, currency, annual_unit_price,
    refunded_seats, failure_reason, attempts)
SELECT now(), now(), v.*, 0, '', 0
FROM unnest(%s::bigint[], %s::date[], %s::smallint[], %s::date[], %s::date[], %s::date[],
            %s::varchar[], %s::varchar[], %s::varchar[], %s::numeric[]) AS v
ON CONFLICT (subscription_id, term_start, quarter) DO NOTHING
RETURNING id, status, skip_reason
"""


def _create_batch(ids: Sequence[int], *, run_date: date, actor) -> Counter:
    # Plain rows and one INSERT ... FROM unnest: this step touches every subscription of
    # the book four times a year, so it stays clear of per-row model objects.
    with transaction.atomic():
        subs = [
            SimpleNamespace(**dict(zip(_SUB_FIELDS, row, strict=True)))
            for row in Subscription.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk__in=ids, status__in=LIVE)
            .values_list(*_SUB_FIELDS)
        ]
        due = [
            (sub, quarter, when) for sub in subs for quarter, when in _due_quarters(sub, run_date)
        ]
        suspended: dict[date, set[int]] = {}
        for when in {when for _, _, when in due}:
            suspended[when] = _suspended_on([s.pk for s, _, w in due if w == when], when)
        rows = []
        for sub, quarter, when in due:
            self_managed = sub.namespace__kind == Namespace.Kind.SELF_MANAGED
            notify = when + (SELF_MANAGED_NOTICE_DELAY if self_managed else SAAS_NOTICE_DELAY)
            reason = skip_reason(sub, on=when, suspended=sub.pk in suspended[when])
            rows.append(
                (sub.pk, sub.term_start, quarter, when, notify, notify + INVOICE_DELAY,
                 "skipped" if reason else "scheduled", reason, sub.currency,
                 sub.annual_unit_price)
            )  # fmt: skip
        if not rows:
            return Counter()
        with connection.cursor() as cursor:
            # A quarter another worker recorded meanwhile is left alone (ON CONFLICT).
            cursor.execute(_INSERT_RECONCILIATIONS, [list(c) for c in zip(*rows, strict=True)])
            created = cursor.fetchall()
        history_snapshot(
            Reconciliation,
            ids=[pk for pk, _, _ in created],
            reason=f"nightly {run_date}",
            user=actor,
            history_type="+",
        )
    return Counter("skipped:" + reason if reason else "created" for _, _, reason in created)


def reconciliations_notify_due(
    *, run_date: date, actor=None, on_batch: OnBatch | None = None, only: Only = None
) -> Counter:
    """Price the scheduled reconciliations whose notice date has come and tell the
    customer: `pending` with a notice, or `processed` at 0.00 when nothing is over."""
    ids = list(
        _only(Reconciliation.objects.filter(status="scheduled", notify_date__lte=run_date), only)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    counts: Counter = Counter()
    for batch in chunks(ids):
        counts += _notify_batch(batch, run_date=run_date, actor=actor)
        if on_batch:
            on_batch(len(batch))
    return counts


def _locked(ids: Sequence[int], status: Sequence[str], related: str) -> list[Reconciliation]:
    return list(
        Reconciliation.objects.select_for_update(skip_locked=True, of=("self", "subscription"))
        .filter(pk__in=ids, status__in=status)
        .select_related(related)
        .order_by("pk")
    )


def _notify_batch(ids: Sequence[int], *, run_date: date, actor) -> Counter:
    counts: Counter = Counter()
    with transaction.atomic():
        recons = _locked(ids, ["scheduled"], "subscription__namespace")
        peaks = _quarter_peaks(recons)
        notices = []
        for recon in recons:
            sub = recon.subscription
            # Suspension counts on the reconciliation date only (checked when created):
            # one that starts later does not cancel a quarter already used.
            reason = skip_reason(sub, on=run_date, suspended=False)
            if reason:
                recon.status, recon.skip_reason = "skipped", reason
                counts["skipped:" + reason] += 1
                continue
            result = billing.qsr_reconcile(
                quarter=recon.quarter,
                max_seats_used=peaks.get(recon.pk, sub.namespace.max_seats_used),
                paid_seats=sub.seats,
                annual_unit_price=sub.annual_unit_price,
                currency=sub.currency,
            )
            recon.seats_paid = result.paid_seats
            recon.max_seats_used = result.max_seats_used
            recon.overage_seats = result.overage
            recon.annual_unit_price = sub.annual_unit_price
            recon.remaining_quarters = result.remaining_quarters
            recon.amount = result.amount
            if result.overage == 0:
                recon.status = "processed"
                counts["processed:no_overage"] += 1
                continue
            recon.status = "pending"
            recon.notified_at = timezone.now()
            notices.append(recon.pk)
            counts["notified"] += 1
        _touch(recons)
        update_with_history(
            recons,
            [
                "status", "skip_reason", "seats_paid", "max_seats_used", "overage_seats",
                "annual_unit_price", "remaining_quarters", "amount", "notified_at", "updated_at",
            ],
            reason=f"nightly {run_date}",
            user=actor,
        )  # fmt: skip
        if notices:
            # A task per batch, after commit: the run never waits on the mail server,
            # and a rolled-back batch (or a dry run) sends nothing.
            from subscriptions.tasks import send_reconciliation_notices

            transaction.on_commit(lambda: send_reconciliation_notices.delay(notices))
    return counts


def _touch(objs: Iterable) -> None:
    """bulk_update skips auto_now; keep `updated_at` honest."""
    now = timezone.now()
    for obj in objs:
        obj.updated_at = now


_QUARTER_PEAKS_SQL = """
SELECT v.recon_id, max(r.billable_users)
FROM unnest(%s::bigint[], %s::bigint[], %s::date[], %s::date[]) AS v(recon_id, ns_id, since, until)
JOIN subscriptions_seatusagereport r
    ON r.namespace_id = v.ns_id AND r.date >= v.since AND r.date < v.until
GROUP BY v.recon_id
"""


def _quarter_peaks(recons: list[Reconciliation]) -> dict[int, int]:
    """Max seats used up to each reconciliation's date, in one query for the batch.

    The namespace's high-water mark may already hold days after the quarter end
    (self-managed notices go out six days late); those belong to the next quarter. It
    stays the ceiling, so a max seats reset is respected. Namespaces without reports
    keep their recorded high-water mark.
    """
    if not recons:
        return {}
    rows = [
        (
            r.pk,
            r.subscription.namespace_id,
            max(r.term_start, r.subscription.namespace.usage_counted_from or r.term_start),
            r.reconciliation_date,
        )
        for r in recons
    ]
    with connection.cursor() as cursor:
        cursor.execute(_QUARTER_PEAKS_SQL, [list(column) for column in zip(*rows, strict=True)])
        peaks = dict(cursor.fetchall())
    ceiling = {r.pk: r.subscription.namespace.max_seats_used for r in recons}
    return {pk: min(peak, ceiling[pk]) for pk, peak in peaks.items()}


def _notice(recon: Reconciliation) -> EmailMessage:
    sub = recon.subscription
    amount = billing.format_money(recon.amount, recon.currency)
    body = (
        f"Hello {sub.customer.name},\n\n"
        f"Your subscription for {sub.namespace.name} used up to {recon.max_seats_used} seats "
        f"in quarter {recon.quarter} of the term that started {recon.term_start}, "
        f"{recon.overage_seats} more than the {recon.seats_paid} seats paid for.\n"
        f"As agreed in the quarterly reconciliation terms, we will invoice {amount} "
        f"({recon.overage_seats} seats for the {recon.remaining_quarters} remaining "
        f"quarter(s) of the term) on {recon.invoice_date}.\n\n"
        "If this looks wrong, reply to this email before the invoice date.\n"
    )
    return EmailMessage(
        subject=f"Quarterly seat reconciliation: {amount} due on {recon.invoice_date}",
        body=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[sub.customer.billing_email],
    )


def reconciliation_notices_send(*, reconciliation_ids: Sequence[int]) -> int:
    """Email the billing contacts of these pending reconciliations their notice."""
    recons = Reconciliation.objects.filter(
        pk__in=reconciliation_ids, status="pending"
    ).select_related("subscription__customer", "subscription__namespace")
    messages = [_notice(recon) for recon in recons]
    return get_connection().send_messages(messages) or 0


def reconciliations_invoice_due(
    *,
    run_date: date,
    actor=None,
    on_batch: OnBatch | None = None,
    errors: list | None = None,
    only: Only = None,
) -> Counter:
    """Invoice the pending reconciliations whose invoice date has come (and retry the
    failed ones): a QSR overage line, and the subscription's seats grow by the overage.
    A pending reconciliation of a paused (or bug-disabled) subscription is skipped."""
    due = Reconciliation.objects.filter(
        Q(status="pending") | Q(status="failed", attempts__lt=MAX_ATTEMPTS),
        invoice_date__lte=run_date,
    )
    ids = list(_only(due, only).order_by("pk").values_list("pk", flat=True))
    counts: Counter = Counter()
    for batch in chunks(ids):
        try:
            counts += _invoice_batch(batch, run_date=run_date, actor=actor)
        except Exception:
            # One bad record must not hold up the rest: redo the batch one by one and
            # mark only the ones that fail.
            logger.exception("invoice batch failed; retrying one by one")
            for recon_id in batch:
                try:
                    counts += _invoice_batch([recon_id], run_date=run_date, actor=actor)
                except Exception as exc:
                    counts["failed"] += 1
                    reconciliation_fail(reconciliation_id=recon_id, error=exc, actor=actor)
                    if errors is not None:
                        errors.append(_error("invoice", recon_id, exc))
        if on_batch:
            on_batch(len(batch))
    return counts


def _error(step: str, recon_id: int, exc: Exception) -> dict:
    sub_id = (
        Reconciliation.objects.filter(pk=recon_id).values_list("subscription_id", flat=True).first()
    )
    return {"step": step, "reconciliation": recon_id, "subscription": sub_id, "error": str(exc)}


def _invoice_batch(ids: Sequence[int], *, run_date: date, actor) -> Counter:
    counts: Counter = Counter()
    reason_text = f"nightly {run_date}"
    with transaction.atomic():
        recons = _locked(ids, ["pending", "failed"], "subscription")
        suspended = _suspended_on({r.subscription_id for r in recons}, run_date)
        # Nothing amends a suspended subscription: its invoice waits for the resume.
        deferred = [r for r in recons if r.subscription_id in suspended]
        counts["deferred:suspended"] += len(deferred)
        recons = [r for r in recons if r.subscription_id not in suspended]
        subs: dict[int, Subscription] = {}
        specs = []
        to_invoice = []
        for recon in recons:
            # Several quarters of one subscription may be in one batch: share its object.
            sub = subs.setdefault(recon.subscription_id, recon.subscription)
            reason = skip_reason(sub, on=run_date, suspended=False)
            if reason and reason != Reconciliation.SkipReason.INELIGIBLE:
                recon.status, recon.skip_reason = "skipped", reason
                counts["skipped:" + reason] += 1
                continue
            specs.append(
                InvoiceSpec(
                    subscription=sub,
                    # Dated for its invoice day, also when a missed night is caught up.
                    issue_date=recon.invoice_date,
                    key=f"qsr:{recon.pk}",
                    lines=[
                        {
                            "kind": InvoiceLine.Kind.QSR_OVERAGE,
                            "description": f"QSR Q{recon.quarter}: "
                            f"{recon.overage_seats} seats over {recon.seats_paid}",
                            "quantity": recon.overage_seats,
                            "unit_price": billing.round_money(
                                recon.amount / recon.overage_seats, recon.currency
                            ),
                            "period_start": recon.reconciliation_date,
                            "period_end": sub.term_end,
                            "amount": recon.amount,
                            "reconciliation": recon,
                        }
                    ],
                )
            )
            sub.seats += recon.overage_seats
            recon.status, recon.invoiced_at = "processed", timezone.now()
            recon.attempts += 1
            recon.failure_reason = ""
            to_invoice.append(recon)
            counts["invoiced"] += 1
        invoices_write(specs=specs, actor=actor, reason=reason_text)
        changed = list({r.subscription_id: subs[r.subscription_id] for r in to_invoice}.values())
        _touch(recons)
        _touch(changed)
        update_with_history(
            recons,
            ["status", "skip_reason", "invoiced_at", "attempts", "failure_reason", "updated_at"],
            reason=reason_text,
            user=actor,
        )
        update_with_history(
            changed,
            ["seats", "updated_at"],
            reason=f"QSR overage invoiced ({reason_text})",
            user=actor,
        )
    return counts


def reconciliation_fail(*, reconciliation_id: int, error: Exception, actor=None) -> None:
    """Record a failed invoicing attempt; the next run retries it up to MAX_ATTEMPTS."""
    with transaction.atomic():
        recon = (
            Reconciliation.objects.select_for_update()
            .filter(pk=reconciliation_id, status__in=["pending", "failed"])
            .first()
        )
        if recon is None:
            return
        recon.status = "failed"
        recon.attempts += 1
        recon.failure_reason = str(error)[:2000]
        recon._change_reason = "invoicing failed"
        recon.save(update_fields=["status", "attempts", "failure_reason", "updated_at"])
