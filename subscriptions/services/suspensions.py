"""Starting and resuming the suspensions that are due, with their proration lines."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import date

from django.db import transaction
from django.db.models import QuerySet

from portal.logs import money_moved
from portal.policy import Actor
from subscriptions import billing
from subscriptions.models import InvoiceLine, Subscription, Suspension
from subscriptions.services.batches import BatchedStep, Errors, OnBatch, Only, only_these
from subscriptions.services.history import save_with_reason
from subscriptions.services.ledger import InvoiceSpec, LineSpec, invoices_write
from subscriptions.services.reconciliations import LIVE

logger = logging.getLogger(__name__)


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


def _line_spec(suspension: Suspension, line: billing.ProrationLine, actor: Actor) -> InvoiceSpec:
    sub = suspension.subscription
    money_moved(
        logger,
        f"suspension {line.kind}",
        entity=f"suspension:{suspension.pk}",
        amount=line.amount,
        currency=sub.currency,
        actor=actor,
        subscription=sub.pk,
    )
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


def _start(suspension: Suspension, *, run_date: date, actor: Actor) -> str:
    sub = suspension.subscription
    reason = f"suspension {suspension.pk} started ({run_date})"
    result = _proration(suspension)
    credits = [line for line in result.lines if line.kind == InvoiceLine.Kind.PRORATION_CREDIT]
    invoices_write(
        specs=[_line_spec(suspension, line, actor) for line in credits], actor=actor, reason=reason
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


def _resume(suspension: Suspension, *, run_date: date, actor: Actor) -> str:
    sub = suspension.subscription
    reason = f"suspension {suspension.pk} resumed ({run_date})"
    if suspension.mode != Suspension.Mode.FREE_PERIOD:
        # The term is as it was at the start: nothing amends a suspended subscription.
        result = _proration(suspension)
        charges = [x for x in result.lines if x.kind == InvoiceLine.Kind.PRORATION_CHARGE]
        invoices_write(
            specs=[_line_spec(suspension, line, actor) for line in charges],
            actor=actor,
            reason=reason,
        )
        sub.term_end = result.new_term_end
        sub.status = Subscription.Status.ACTIVE
        save_with_reason(sub, ["term_end", "status"], reason=reason, actor=actor)
    suspension.status = Suspension.Status.RESUMED
    save_with_reason(suspension, ["status"], reason=reason, actor=actor)
    return "resumed"


def _due(status: str, date_field: str) -> Callable[[date, Only], list[int]]:
    """The suspensions in `status` whose `date_field` has come. A cancelled or expired
    subscription is never touched: its suspensions stay as they are."""

    def due(run_date: date, only: Only) -> list[int]:
        rows = Suspension.objects.filter(
            status=status, subscription__status__in=LIVE, **{f"{date_field}__lte": run_date}
        )
        return list(only_these(rows, only).order_by(date_field, "pk").values_list("pk", flat=True))

    return due


def _locked(batch: Sequence[int], status: str) -> QuerySet[Suspension]:
    return (
        Suspension.objects.select_for_update(skip_locked=True, of=("self", "subscription"))
        .filter(pk__in=batch, status=status, subscription__status__in=LIVE)
        .select_related("subscription")
    )


def _start_batch(batch: Sequence[int], *, run_date: date, actor: Actor) -> Counter[str]:
    with transaction.atomic():
        return Counter(
            _start(s, run_date=run_date, actor=actor) for s in _locked(batch, "scheduled")
        )


def _resume_batch(batch: Sequence[int], *, run_date: date, actor: Actor) -> Counter[str]:
    with transaction.atomic():
        locked = _locked(batch, "active")
        return Counter(_resume(s, run_date=run_date, actor=actor) for s in locked)


def _failed(step: str) -> Callable[[Errors, Actor, int, Exception], None]:
    """A suspension that fails is listed and left in its status for the next night."""

    def fail(errors: Errors, actor: Actor, pk: int, exc: Exception) -> None:
        if errors is not None:
            sub_id = Suspension.objects.filter(pk=pk).values_list("subscription_id", flat=True)
            errors.append(
                {"step": step, "suspension": pk, "subscription": sub_id.first(),
                 "error": str(exc)[:2000]}
            )  # fmt: skip

    return fail


# Start the scheduled suspensions whose day has come. Credit mode writes the credit for
# the rest of the term; freeze writes nothing; a free period extends the term now.
START = BatchedStep(
    "suspension_start", _due("scheduled", "suspend_date"), _start_batch,
    _failed("suspension_start"), size=200,
)  # fmt: skip
# Resume the active suspensions whose resume day has come: charge the rest of the
# (possibly extended) term in credit mode, and extend the term where asked.
RESUME = BatchedStep(
    "suspension_resume", _due("active", "resume_date"), _resume_batch,
    _failed("suspension_resume"), size=200,
)  # fmt: skip


def suspensions_start_due(
    *,
    run_date: date,
    actor: Actor,
    on_batch: OnBatch | None = None,
    errors: Errors = None,
    only: Only = None,
) -> Counter[str]:
    return START.run(run_date=run_date, actor=actor, on_batch=on_batch, errors=errors, only=only)


def suspensions_resume_due(
    *,
    run_date: date,
    actor: Actor,
    on_batch: OnBatch | None = None,
    errors: Errors = None,
    only: Only = None,
) -> Counter[str]:
    return RESUME.run(run_date=run_date, actor=actor, on_batch=on_batch, errors=errors, only=only)
