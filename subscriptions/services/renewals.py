"""Renewals: the annual true-up for subscriptions not on QSR, the new term, the seat
statistics reset, and the end of temporary QSR pauses."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from portal.logs import money_moved
from portal.policy import Actor
from subscriptions import billing
from subscriptions.models import InvoiceLine, Subscription, qsr_ineligibility
from subscriptions.services.batches import BatchedStep, Errors, OnBatch, Only, only_these
from subscriptions.services.history import save_with_reason
from subscriptions.services.ledger import (
    InvoiceSpec,
    LineSpec,
    invoices_write,
    recurring_invoice_spec,
)
from subscriptions.services.reconciliations import LIVE

logger = logging.getLogger(__name__)


def _renew_due_ids(run_date: date, only: Only) -> list[int]:
    due = Subscription.objects.filter(status=Subscription.Status.ACTIVE, term_end__lte=run_date)
    return list(only_these(due, only, "pk").order_by("pk").values_list("pk", flat=True))


def _renew_batch(batch: Sequence[int], *, run_date: date, actor: Actor) -> Counter[str]:
    counts: Counter[str] = Counter()
    with transaction.atomic():
        subs = (
            Subscription.objects.select_for_update(skip_locked=True, of=("self", "namespace"))
            .filter(pk__in=batch, status=Subscription.Status.ACTIVE, term_end__lte=run_date)
            .select_related("namespace")
        )
        for sub in subs:
            while sub.term_end <= run_date:  # a missed year or two renews in turn
                counts += _renew(sub, actor=actor)
    return counts


def _renew_failed(errors: Errors, actor: Actor, pk: int, exc: Exception) -> None:
    """One that fails is listed and left as it was for the next night."""
    if errors is not None:
        errors.append({"step": "renewal", "subscription": pk, "error": str(exc)[:2000]})


def subscriptions_renew_due(
    *,
    run_date: date,
    actor: Actor,
    on_batch: OnBatch | None = None,
    errors: Errors = None,
    only: Only = None,
) -> Counter[str]:
    """Renew every active subscription whose term ended on or before `run_date`, then
    end the QSR pauses that are over."""
    return RENEW.run(run_date=run_date, actor=actor, on_batch=on_batch, errors=errors, only=only)


def _renew(sub: Subscription, *, actor: Actor) -> Counter[str]:
    counts: Counter[str] = Counter()
    namespace = sub.namespace
    old_start, old_end = sub.term_start, sub.term_end
    reason = f"renewal of the term {old_start} to {old_end}"
    specs = []
    eligible = not qsr_ineligibility(sub)
    if not eligible:
        overage = billing.qsr_overage(max_seats_used=namespace.max_seats_used, paid_seats=sub.seats)
        amount = billing.annual_true_up(
            max_seats_used=namespace.max_seats_used,
            paid_seats=sub.seats,
            annual_unit_price=sub.annual_unit_price,
            currency=sub.currency,
        )
        if overage:
            specs.append(
                InvoiceSpec.for_subscription(
                    sub,
                    key=f"true-up:{sub.pk}:{old_start}",
                    issue_date=old_end,
                    lines=[
                        LineSpec(
                            kind=InvoiceLine.Kind.ANNUAL_TRUE_UP,
                            description=f"Annual true-up: {overage} seats over {sub.seats}",
                            quantity=overage,
                            unit_price=sub.annual_unit_price,
                            period_start=old_start,
                            period_end=old_end,
                            amount=amount,
                        )
                    ],
                )
            )
            sub.seats += overage
            counts["trued_up"] += 1
    sub.term_start = old_end
    sub.term_end = billing.add_months(old_end, sub.term_months)
    specs.append(
        recurring_invoice_spec(sub, description=f"{sub.get_plan_display()} subscription, renewed")
    )
    invoices_write(specs=specs, actor=actor, reason=reason)
    for spec in specs:  # the true-up, if any, and the new term's charge
        amount = sum((line.amount for line in spec.lines), Decimal(0))
        money_moved(
            logger,
            "renewal invoiced",
            entity=f"invoice:{spec.key}",
            amount=amount,
            currency=sub.currency,
            actor=actor,
            subscription=sub.pk,
        )
    fields = ["seats", "term_start", "term_end"]
    if sub.qsr_state == Subscription.QsrState.PAUSED:
        sub.qsr_state, sub.qsr_paused_until = Subscription.QsrState.ENABLED, None
        fields += ["qsr_state", "qsr_paused_until"]
        counts["pause_ended"] += 1
    save_with_reason(sub, fields, reason=reason, actor=actor)
    namespace.max_seats_used = namespace.seats_in_use
    namespace.max_seats_used_changed_at = timezone.now()
    namespace.usage_counted_from = sub.term_start
    save_with_reason(
        namespace,
        ["max_seats_used", "max_seats_used_changed_at", "usage_counted_from"],
        reason=reason,
        actor=actor,
    )
    counts["renewed"] += 1
    return counts


def qsr_pauses_end(*, run_date: date, actor: Actor, only: Only = None) -> Counter[str]:
    """QSR resumes the day after a pause's last day."""
    counts: Counter[str] = Counter()
    with transaction.atomic():
        paused = Subscription.objects.filter(
            qsr_state=Subscription.QsrState.PAUSED,
            qsr_paused_until__lt=run_date,
            status__in=LIVE,
        )
        for sub in only_these(paused, only, "pk").select_for_update(skip_locked=True):
            sub.qsr_state, sub.qsr_paused_until = Subscription.QsrState.ENABLED, None
            save_with_reason(
                sub,
                ["qsr_state", "qsr_paused_until"],
                reason=f"QSR pause ended ({run_date})",
                actor=actor,
            )
            counts["pause_ended"] += 1
    return counts


RENEW = BatchedStep(
    "renewal", _renew_due_ids, _renew_batch, _renew_failed, size=200, tail=qsr_pauses_end
)
