"""Starting and resuming the suspensions that are due, with their proration lines."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date

from django.db import transaction

from subscriptions import billing
from subscriptions.models import InvoiceLine, Subscription, Suspension
from subscriptions.services.history import save_with_reason
from subscriptions.services.ledger import InvoiceSpec, LineSpec, invoices_write
from subscriptions.services.reconciliations import LIVE, OnBatch, Only, _only, each_batch


def _proration(suspension: Suspension) -> billing.ProrationResult:
    sub = suspension.subscription
    return billing.suspension_proration(
        mode=suspension.mode,
        charge=sub.seats * sub.annual_unit_price,
        currency=sub.currency,
        term_start=sub.term_start,
        term_end=sub.term_end,
        start=suspension.suspend_date,
        end=suspension.resume_date,
        extend_term=suspension.extend_term,
    )


def _line_spec(suspension: Suspension, line: billing.ProrationLine) -> InvoiceSpec:
    sub = suspension.subscription
    return InvoiceSpec.for_subscription(
        sub,
        key=f"suspension:{suspension.pk}:{line.kind}",
        issue_date=line.date,
        lines=[
            LineSpec(
                kind=line.kind,
                description=f"{suspension.get_mode_display()}: {line.days} of {sub.term_days} days",
                quantity=sub.seats,
                unit_price=sub.annual_unit_price,
                period_start=line.period_start,
                period_end=line.period_end,
                amount=line.amount,
                suspension_id=suspension.pk,
            )
        ],
    )


def _process_due(
    *, status: str, date_field: str, run_date: date, handle, on_batch, errors, only: Only
) -> Counter:
    """Apply `handle` to each suspension in `status` whose `date_field` has come, in
    locked batches; returns counts of what `handle` reports.

    A cancelled or expired subscription is never touched: its suspensions stay as they
    are. A suspension that fails is counted, listed in `errors` and left in its status,
    so the next night tries again; the others go through."""
    due = Suspension.objects.filter(
        status=status, subscription__status__in=LIVE, **{f"{date_field}__lte": run_date}
    )
    ids = list(_only(due, only).order_by(date_field, "pk").values_list("pk", flat=True))

    def work(batch: Sequence[int]) -> Counter:
        counts: Counter = Counter()
        with transaction.atomic():
            for suspension in (
                Suspension.objects.select_for_update(skip_locked=True, of=("self", "subscription"))
                .filter(pk__in=batch, status=status, subscription__status__in=LIVE)
                .select_related("subscription")
            ):
                counts[handle(suspension)] += 1
        return counts

    def fail(pk: int, exc: Exception) -> None:
        if errors is not None:
            sub_id = Suspension.objects.filter(pk=pk).values_list("subscription_id", flat=True)
            errors.append(
                {"step": "suspension_" + ("start" if status == "scheduled" else "resume"),
                 "suspension": pk,
                 "subscription": sub_id.first(), "error": str(exc)[:2000]}
            )  # fmt: skip

    return each_batch(ids, work, fail=fail, on_batch=on_batch, size=200)


def suspensions_start_due(
    *,
    run_date: date,
    actor,
    on_batch: OnBatch | None = None,
    errors: list | None = None,
    only: Only = None,
) -> Counter:
    """Start the scheduled suspensions whose day has come. Credit mode writes the credit
    for the rest of the term; freeze writes nothing; a free period extends the term now."""
    return _process_due(
        status="scheduled",
        date_field="suspend_date",
        run_date=run_date,
        handle=lambda s: _start(s, run_date=run_date, actor=actor),
        on_batch=on_batch,
        errors=errors,
        only=only,
    )


def _start(suspension: Suspension, *, run_date: date, actor) -> str:
    sub = suspension.subscription
    reason = f"suspension {suspension.pk} started ({run_date})"
    result = _proration(suspension)
    credits = [line for line in result.lines if line.kind == InvoiceLine.Kind.PRORATION_CREDIT]
    invoices_write(
        specs=[_line_spec(suspension, line) for line in credits], actor=actor, reason=reason
    )
    if suspension.mode == Suspension.Mode.FREE_PERIOD:
        sub.term_end = result.new_term_end
        save_with_reason(sub, ["term_end"], reason=reason, actor=actor)
    else:
        sub.status = Subscription.Status.SUSPENDED
        save_with_reason(sub, ["status"], reason=reason, actor=actor)
    suspension.status = Suspension.Status.ACTIVE
    save_with_reason(suspension, ["status"], reason=reason, actor=actor)
    return "started"


def suspensions_resume_due(
    *,
    run_date: date,
    actor,
    on_batch: OnBatch | None = None,
    errors: list | None = None,
    only: Only = None,
) -> Counter:
    """Resume the active suspensions whose resume day has come: charge the rest of the
    (possibly extended) term in credit mode, and extend the term where asked."""
    return _process_due(
        status="active",
        date_field="resume_date",
        run_date=run_date,
        handle=lambda s: _resume(s, run_date=run_date, actor=actor),
        on_batch=on_batch,
        errors=errors,
        only=only,
    )


def _resume(suspension: Suspension, *, run_date: date, actor) -> str:
    sub = suspension.subscription
    reason = f"suspension {suspension.pk} resumed ({run_date})"
    if suspension.mode != Suspension.Mode.FREE_PERIOD:
        # The term is as it was at the start: nothing amends a suspended subscription.
        result = _proration(suspension)
        charges = [x for x in result.lines if x.kind == InvoiceLine.Kind.PRORATION_CHARGE]
        invoices_write(
            specs=[_line_spec(suspension, line) for line in charges], actor=actor, reason=reason
        )
        sub.term_end = result.new_term_end
        sub.status = Subscription.Status.ACTIVE
        save_with_reason(sub, ["term_end", "status"], reason=reason, actor=actor)
    suspension.status = Suspension.Status.RESUMED
    save_with_reason(suspension, ["status"], reason=reason, actor=actor)
    return "resumed"
