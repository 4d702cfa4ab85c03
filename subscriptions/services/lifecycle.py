"""Amending and cancelling a subscription.

A subscription's terms (dates, term length, plan, seats, price) and its QSR eligibility
attributes (channel, payment method, program, offline license) change only here, never
in an edit form: each change moves money, so it needs the policy's permission, a reason
and a ticket, and its effect is shown before it is made. `subscription_amend_effect`
says what an amendment does (QSR state, the recurring charge, the next overage charge
at today's usage); the confirmation page shows it, and `subscription_amend` validates
and applies the same changes with the same function.

The status is not amended: `subscription_cancel` is the only way to cancel, and the
nightly jobs own active, suspended and expired. DOMAIN.md "Suspensions": a subscription
is not amended while suspended; a cancelled or expired one changes no more.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, cast

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction
from django.db.models import Field
from django.utils import timezone
from django.utils.text import capfirst

from portal import policy
from portal.errors import DomainError
from subscriptions import billing
from subscriptions.models import Reconciliation, Subscription, Suspension, qsr_ineligibility
from subscriptions.services.history import REASON_MAX_LENGTH, save_with_reason
from subscriptions.services.reconciliations import skip_reason
from subscriptions.services.subscriptions import check_url

Status = Subscription.Status
QsrState = Subscription.QsrState

# What `subscription_amend` may change, in the order the confirmation page lists them.
AMENDABLE: tuple[str, ...] = (
    "term_start",
    "term_end",
    "term_months",
    "plan",
    "seats",
    "annual_unit_price",
    "channel",
    "payment_method",
    "program",
    "offline_license",
)
TERM_FIELDS = ("term_start", "term_end")
# Suspensions not over yet: a scheduled one has not started, an active one not resumed.
OPEN_SUSPENSIONS = (Suspension.Status.SCHEDULED, Suspension.Status.ACTIVE)
# Reconciliations not invoiced yet; the nightly run notifies and invoices live
# subscriptions only.
OPEN_RECONCILIATIONS = (
    Reconciliation.Status.SCHEDULED,
    Reconciliation.Status.PENDING,
    Reconciliation.Status.FAILED,
)


# --- What a subscription costs ----------------------------------------------------------


def qsr_label(sub: Subscription) -> str:
    """QSR as billing sees it: eligibility first, since an ineligible term has no QSR."""
    reasons = qsr_ineligibility(sub)
    if reasons:
        return "Ineligible: " + ", ".join(reasons)
    if sub.qsr_state == QsrState.DISABLED_FOR_BUG:
        return "Disabled for bug"
    if sub.qsr_state == QsrState.PAUSED:
        # Subscription.clean(): a pause has its end date.
        return f"Paused until {cast(date, sub.qsr_paused_until).isoformat()}"
    return "Enabled"


@dataclass(frozen=True)
class NextCharge:
    """The next charge for seats used over those paid, at today's usage."""

    what: str  # "the Q2 reconciliation on 2026-07-01", "the annual true-up at ..."
    overage: int
    amount: Decimal
    skipped: str = ""  # why QSR would skip it, when it would

    def describe(self, currency: str) -> str:
        text = f"{self.what}, {billing.format_money(self.amount, currency)}"
        return f"{text} (skipped: {self.skipped})" if self.skipped else text


@dataclass(frozen=True)
class MoneyTerms:
    """What a subscription's terms mean for money, at one moment."""

    qsr: str
    recurring: Decimal  # seats x price, as each renewal invoices it
    next_charge: NextCharge


def next_charge(sub: Subscription, *, max_seats_used: int, today: date) -> NextCharge:
    """The next overage charge of `sub` if `max_seats_used` stays as it is: the next QSR
    reconciliation on or after `today`, or the annual true-up when not on QSR; priced
    by the functions the nightly run uses."""
    overage = billing.qsr_overage(max_seats_used=max_seats_used, paid_seats=sub.seats)
    if qsr_ineligibility(sub):
        amount = billing.annual_true_up(
            max_seats_used=max_seats_used,
            paid_seats=sub.seats,
            annual_unit_price=sub.annual_unit_price,
            currency=sub.currency,
        )
        return NextCharge(f"the annual true-up at the term end ({sub.term_end})", overage, amount)
    for quarter, day in enumerate(billing.reconciliation_dates(sub.term_start), start=1):
        if day >= today:
            result = billing.qsr_reconcile(
                quarter=quarter,
                max_seats_used=max_seats_used,
                paid_seats=sub.seats,
                annual_unit_price=sub.annual_unit_price,
                currency=sub.currency,
            )
            reason = skip_reason(sub, on=day, suspended=False)
            skipped = Reconciliation.SkipReason(reason).label if reason else ""
            return NextCharge(
                f"the Q{quarter} reconciliation on {day}", overage, result.amount, skipped
            )
    return NextCharge(
        "none this term (QSR charges nothing after the third quarter)", overage, Decimal(0)
    )


def money_terms(sub: Subscription, *, max_seats_used: int, today: date) -> MoneyTerms:
    return MoneyTerms(
        qsr=qsr_label(sub),
        recurring=billing.round_money(sub.seats * sub.annual_unit_price, sub.currency),
        next_charge=next_charge(sub, max_seats_used=max_seats_used, today=today),
    )


# --- Amend ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AmendEffect:
    """An amendment, validated: the changes (field -> (old, new)) and what the terms mean
    for money before and after. Nothing is saved."""

    subscription: Subscription
    amended: Subscription  # a copy with the changes applied
    changes: dict[str, tuple[Any, Any]]
    before: MoneyTerms
    after: MoneyTerms
    max_seats_used: int
    today: date

    def lines(self) -> list[str]:
        """The effect in sentences, for the confirmation page."""
        if not self.changes:
            return ["Nothing changes: every value is the subscription's own."]
        currency = self.subscription.currency
        lines = [
            f"{_label(name)}: {_shown(self.subscription, name)} → {_shown(self.amended, name)}."
            for name in self.changes
        ]
        lines.append(_compare("QSR", self.before.qsr, self.after.qsr))
        lines.append(
            _compare(
                "Recurring charge (seats × price a year, invoiced at each renewal)",
                billing.format_money(self.before.recurring, currency),
                billing.format_money(self.after.recurring, currency),
            )
        )
        lines.append(
            _compare(
                f"Next overage charge at today's usage ({self.max_seats_used} max seats used)",
                _overage(self.before.next_charge, self.subscription.seats, currency),
                _overage(self.after.next_charge, self.amended.seats, currency),
            )
        )
        if "term_end" in self.changes and self.amended.term_end <= self.today:
            lines.append(
                f"The term now ends on or before today ({self.today}): the next nightly run "
                "renews it, with its true-up and the new term's invoice."
            )
        lines.append("Nothing is invoiced now; the history records your reason and ticket.")
        return lines


def _label(name: str) -> str:
    # The amendable names are the subscription's own fields, not reverse relations.
    return str(capfirst(cast(Field, Subscription._meta.get_field(name)).verbose_name))


def _shown(sub: Subscription, name: str) -> str:
    value = getattr(sub, name)
    field = cast(Field, Subscription._meta.get_field(name))
    if field.choices:
        return str(dict(field.flatchoices).get(value, value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    if name == "annual_unit_price":
        return billing.format_money(value, sub.currency)
    return str(value)


def _compare(what: str, before: str, after: str) -> str:
    if before == after:
        return f"{what}: {after} (unchanged)."
    return f"{what}: {before} → {after}."


def _overage(charge: NextCharge, seats: int, currency: str) -> str:
    return f"{charge.overage} over {seats} paid, {charge.describe(currency)}"


def amend_refusal(sub: Subscription) -> str | None:
    """Why `sub` cannot be amended as it stands, or None if it can."""
    if sub.status == Status.SUSPENDED:
        return "The subscription is suspended; amend it after it resumes."
    if sub.status != Status.ACTIVE:
        return f"The subscription is {sub.get_status_display().lower()}; it changes no more."
    return None


def _validation_error(exc: ValidationError) -> DomainError:
    """The model's refusal as the one domain error, on the first field at fault."""
    errors = exc.message_dict
    field = next(iter(errors))
    message = " ".join(m for messages in errors.values() for m in messages)
    return DomainError(message, field=None if field == NON_FIELD_ERRORS else field)


def subscription_amend_effect(
    *, subscription: Subscription, values: Mapping[str, Any], today: date | None = None
) -> AmendEffect:
    """Validate amending `subscription` to `values` (field -> new value; None keeps a
    field as it is) and say what it does to money. Raises DomainError on what
    `subscription_amend` would refuse; writes nothing."""
    unknown = set(values) - set(AMENDABLE)
    if unknown:
        raise TypeError(f"not amendable: {', '.join(sorted(unknown))}")
    today = today or timezone.localdate()
    sub = subscription
    if (refusal := amend_refusal(sub)) is not None:
        raise DomainError(refusal)
    given = {name: value for name, value in values.items() if value is not None}
    amended = copy.copy(sub)
    for name, value in given.items():
        setattr(amended, name, value)
    # The model's own rules: field validators and choices, clean() (term end after start,
    # the currency's decimals) and the constraints on the fields given.
    others = [f.name for f in Subscription._meta.concrete_fields if f.name not in given]
    try:
        amended.full_clean(exclude=others)
    except ValidationError as exc:
        raise _validation_error(exc) from exc
    changes = {
        name: (getattr(sub, name), getattr(amended, name))
        for name in AMENDABLE
        if name in given and getattr(amended, name) != getattr(sub, name)
    }
    if "term_months" in changes and amended.term_months < 1:
        raise DomainError("A term lasts at least one month.", field="term_months")
    if "term_start" in changes:
        _refuse_moving_a_reconciled_start(sub)
    moved = [name for name in TERM_FIELDS if name in changes]
    if moved:
        _refuse_orphaned_suspensions(sub, amended, field=moved[-1])
    max_seats_used = sub.namespace.max_seats_used
    return AmendEffect(
        subscription=sub,
        amended=amended,
        changes=changes,
        before=money_terms(sub, max_seats_used=max_seats_used, today=today),
        after=money_terms(amended, max_seats_used=max_seats_used, today=today),
        max_seats_used=max_seats_used,
        today=today,
    )


def _refuse_moving_a_reconciled_start(sub: Subscription) -> None:
    # Reconciliations are keyed by the term's start: a moved start would make the nightly
    # run reconcile the same quarters again.
    first = (
        Reconciliation.objects.filter(subscription=sub, term_start=sub.term_start)
        .order_by("quarter")
        .first()
    )
    if first is not None:
        raise DomainError(
            f"This term has been reconciled (Q{first.quarter} on {first.reconciliation_date}); "
            "moving its start would reconcile its quarters again.",
            field="term_start",
        )


def _refuse_orphaned_suspensions(sub: Subscription, amended: Subscription, *, field: str) -> None:
    """A suspension that has not started must still lie in the term (the rule
    `suspension_schedule` applies, from the money module)."""
    for suspension in Suspension.objects.filter(
        subscription=sub, status=Suspension.Status.SCHEDULED
    ).order_by("suspend_date"):
        try:
            billing.suspension_proration(
                mode=suspension.mode,
                charge=amended.seats * amended.annual_unit_price,
                currency=amended.currency,
                term_start=amended.term_start,
                term_end=amended.term_end,
                start=suspension.suspend_date,
                end=suspension.resume_date,
                extend_term=suspension.extend_term,
            )
        except billing.InvalidPeriod as exc:
            raise DomainError(
                f"The scheduled suspension from {suspension.suspend_date} to "
                f"{suspension.resume_date} would no longer fit the term ({exc}).",
                field=field,
            ) from exc


def subscription_amend(
    *,
    subscription: Subscription,
    actor: policy.Actor,
    reason: str,
    ticket_url: str,
    term_start: date | None = None,
    term_end: date | None = None,
    term_months: int | None = None,
    plan: str | None = None,
    seats: int | None = None,
    annual_unit_price: Decimal | None = None,
    channel: str | None = None,
    payment_method: str | None = None,
    program: str | None = None,
    offline_license: bool | None = None,
    today: date | None = None,
) -> Subscription:
    """Change the given values of an active subscription (None keeps a value), with the
    reason and ticket in its history. Nothing to change: a no-op, no history row."""
    policy.check(actor, policy.Action.AMEND_SUBSCRIPTION, subscription)
    why = _why("amended", reason, ticket_url)
    values = {
        "term_start": term_start,
        "term_end": term_end,
        "term_months": term_months,
        "plan": plan,
        "seats": seats,
        "annual_unit_price": annual_unit_price,
        "channel": channel,
        "payment_method": payment_method,
        "program": program,
        "offline_license": offline_license,
    }
    with transaction.atomic():
        sub = _lock(subscription)
        effect = subscription_amend_effect(subscription=sub, values=values, today=today)
        if not effect.changes:
            return sub
        for name, (_, new) in effect.changes.items():
            setattr(sub, name, new)
        save_with_reason(sub, list(effect.changes), reason=why, actor=actor)
    return sub


# --- Cancel -----------------------------------------------------------------------------


def _refuse_unless_cancellable(sub: Subscription) -> None:
    if sub.status not in (Status.ACTIVE, Status.SUSPENDED):
        raise DomainError(
            f"The subscription is {sub.get_status_display().lower()} already; it changes no more."
        )


def subscription_cancel_effect(*, subscription: Subscription) -> list[str]:
    """What cancelling `subscription` does, in sentences for the confirmation page.
    Raises DomainError when it cannot be cancelled; writes nothing."""
    sub = subscription
    _refuse_unless_cancellable(sub)
    currency = sub.currency
    recurring = billing.round_money(sub.seats * sub.annual_unit_price, currency)
    lines = [
        f"Status: {sub.get_status_display()} → Cancelled. The term ({sub.term_start} to "
        f"{sub.term_end}) is not renewed: the recurring charge of "
        f"{billing.format_money(recurring, currency)} a year is not invoiced again, and "
        "there is no annual true-up and no further QSR reconciliation.",
    ]
    open_recons = list(
        Reconciliation.objects.filter(subscription=sub, status__in=OPEN_RECONCILIATIONS).order_by(
            "reconciliation_date"
        )
    )
    if open_recons:
        total = sum((r.amount or Decimal(0) for r in open_recons), Decimal(0))
        quarters = ", ".join(f"Q{r.quarter} on {r.reconciliation_date}" for r in open_recons)
        lines.append(
            f"Reconciliations not invoiced yet ({quarters}; priced so far: "
            f"{billing.format_money(total, currency)}) will not be invoiced."
        )
    for s in Suspension.objects.filter(subscription=sub, status__in=OPEN_SUSPENSIONS).order_by(
        "suspend_date"
    ):
        if s.status == Suspension.Status.SCHEDULED:
            lines.append(
                f"The scheduled suspension ({s.get_mode_display().lower()}) from "
                f"{s.suspend_date} to {s.resume_date} is cancelled: it never starts."
            )
        else:
            lines.append(
                f"The active suspension ({s.get_mode_display().lower()}) from "
                f"{s.suspend_date} to {s.resume_date} is cancelled: it never resumes, so "
                "no recharge is written and the term is not extended."
            )
    lines.append("Nothing is invoiced or credited now; the history records your reason and ticket.")
    return lines


def subscription_cancel(
    *, subscription: Subscription, actor: policy.Actor, reason: str, ticket_url: str
) -> Subscription:
    """Cancel a live subscription, and with it the suspensions that are not over (a
    scheduled one would start, an active one would resume and revive the subscription),
    all with the reason and ticket in their history."""
    policy.check(actor, policy.Action.CANCEL_SUBSCRIPTION, subscription)
    why = _why("cancelled", reason, ticket_url)
    with transaction.atomic():
        sub = _lock(subscription)
        _refuse_unless_cancellable(sub)
        sub.status = Status.CANCELLED
        save_with_reason(sub, ["status"], reason=why, actor=actor)
        for suspension in (
            Suspension.objects.select_for_update()
            .filter(subscription=sub, status__in=OPEN_SUSPENSIONS)
            .order_by("pk")
        ):
            suspension.status = Suspension.Status.CANCELLED
            save_with_reason(suspension, ["status"], reason=why, actor=actor)
    return sub


# --- Common -----------------------------------------------------------------------------


def _lock(subscription: Subscription) -> Subscription:
    return Subscription.objects.select_for_update().get(pk=subscription.pk)


def _why(verb: str, reason: str, ticket_url: str) -> str:
    """The history's change reason: what, why and the ticket, in the one column
    simple-history keeps (REASON_MAX_LENGTH characters)."""
    reason = " ".join((reason or "").split())
    if not reason:
        raise DomainError("Say why: the history keeps the reason.", field="reason")
    check_url(ticket_url, field="ticket_url", what="the ticket")
    text = f"{verb}: {reason} · {ticket_url}"
    if len(text) <= REASON_MAX_LENGTH:
        return text
    room = REASON_MAX_LENGTH - (len(text) - len(reason))
    if room < 20:
        raise DomainError(
            f"The history keeps the reason and the ticket link in {REASON_MAX_LENGTH} "
            "characters together; use a shorter link to the ticket.",
            field="ticket_url",
        )
    raise DomainError(
        f"The history keeps the reason and the ticket link in {REASON_MAX_LENGTH} "
        f"characters together; shorten the reason to {room} characters.",
        field="reason",
    )
