"""Filing approval requests: QSR pause, max seats reset, QSR refund, free period.

Each kind has a `*_stake` function that computes what the request puts at stake (seats,
money, approval slots) from the records, writing nothing; the admin shows it on the
confirmation page, and `*_request` files the request with the same figures. Whoever
files it needs the policy's permission on the account; the figures are never typed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from django.db import IntegrityError, transaction
from django.utils import timezone

from approvals.models import ApprovalRequest
from approvals.services.notifications import notify_on_commit
from portal import policy
from portal.errors import DomainError
from subscriptions import billing
from subscriptions.models import Reconciliation, Subscription, qsr_ineligibility
from subscriptions.services.subscriptions import check_url

if TYPE_CHECKING:
    from django.contrib.auth.models import User

Kind = ApprovalRequest.Kind
LIVE = (Subscription.Status.ACTIVE, Subscription.Status.SUSPENDED)
MAX_FREE_DAYS = 366


@dataclass(frozen=True)
class Stake:
    """What a request would put at stake, and whose approval it needs."""

    kind: str
    subscription: Subscription
    seats: int
    amount: Decimal
    slots: list[str]
    effect: list[str] = field(default_factory=list)  # sentences for the confirmation page
    values: dict[str, Any] = field(default_factory=dict)  # request fields the kind sets

    @property
    def currency(self) -> str:
        return self.subscription.currency

    def money(self, amount: Decimal | None = None) -> str:
        return billing.format_money(self.amount if amount is None else amount, self.currency)


# --- Common checks ----------------------------------------------------------------------


def _live(subscription: Subscription) -> Subscription:
    if subscription.status not in LIVE:
        raise DomainError(
            f"The subscription is {subscription.get_status_display().lower()}; "
            "requests are for live subscriptions only."
        )
    return subscription


def _why(justification: str, ticket_url: str) -> str:
    justification = (justification or "").strip()
    if not justification:
        raise DomainError("Say why: the approvers read this.", field="justification")
    check_url(ticket_url, field="ticket_url", what="the ticket")
    return justification


def _next_quarter(sub: Subscription, today: date) -> int | None:
    """The quarter of the next QSR charge on or after `today`, or None after Q3."""
    for quarter, day in enumerate(billing.reconciliation_dates(sub.term_start), start=1):
        if day >= today:
            return quarter
    return None


def _charge_of_waiver(sub: Subscription, *, seats: int, today: date) -> tuple[Decimal, str]:
    """What `seats` more seats of overage would cost at the subscription's next charge."""
    if qsr_ineligibility(sub):
        amount = billing.waived_amount(
            waived_seats=seats,
            annual_unit_price=sub.annual_unit_price,
            currency=sub.currency,
            quarter=None,
        )
        return amount, f"the annual true-up at term end ({sub.term_end})"
    quarter = _next_quarter(sub, today)
    if quarter is None:
        return Decimal(0), "no further QSR charge this term (after the third quarter)"
    amount = billing.waived_amount(
        waived_seats=seats,
        annual_unit_price=sub.annual_unit_price,
        currency=sub.currency,
        quarter=quarter,
    )
    day = billing.reconciliation_dates(sub.term_start)[quarter - 1]
    return amount, f"the Q{quarter} reconciliation on {day}"


def _file(
    stake: Stake, *, actor: policy.Actor, justification: str, ticket_url: str, **extra: Any
) -> ApprovalRequest:
    request = ApprovalRequest(
        kind=stake.kind,
        requester=cast("User", actor),  # people file requests; the portal files none
        subscription=stake.subscription,
        justification=justification,
        ticket_url=ticket_url,
        seats_at_stake=stake.seats,
        amount_at_stake=stake.amount,
        currency=stake.currency,
        required_slots=stake.slots,
        **stake.values,
        **extra,
    )
    # simple-history reads who and why off the instance on save.
    request._change_reason = f"requested: {justification[:80]}"  # type: ignore[attr-defined]
    request._history_user = actor  # type: ignore[attr-defined]
    try:
        with transaction.atomic():
            request.save()
    except IntegrityError as exc:
        if "approval_one_open" in str(exc):
            raise DomainError(
                f"A {request.get_kind_display().lower()} request is open for this "
                "subscription already; decide or cancel it first."
            ) from exc
        raise
    notify_on_commit("needs_approval", request.pk)
    return request


# --- QSR pause --------------------------------------------------------------------------


def pause_stake(*, subscription: Subscription, until: date | None, today: date) -> Stake:
    sub = _live(subscription)
    reasons = qsr_ineligibility(sub)
    if reasons:
        raise DomainError(
            "This subscription is not on QSR (" + ", ".join(reasons) + "); there is no "
            "reconciliation to pause."
        )
    last_day = sub.term_end - timedelta(days=1)
    end = until or last_day
    if not today <= end <= last_day:
        raise DomainError(
            f"The pause must end between today ({today}) and the last day of the term "
            f"({last_day}).",
            field="until",
        )
    overage = billing.qsr_overage(max_seats_used=sub.namespace.max_seats_used, paid_seats=sub.seats)
    paused = [
        (quarter, day)
        for quarter, day in enumerate(billing.reconciliation_dates(sub.term_start), start=1)
        if today <= day <= end
    ]
    amount = Decimal(0)
    effect = [f"QSR paused from approval until {end}; reconciliations due then are skipped."]
    if paused:
        quarter, day = paused[0]
        amount = billing.waived_amount(
            waived_seats=overage,
            annual_unit_price=sub.annual_unit_price,
            currency=sub.currency,
            quarter=quarter,
        )
        effect.append(
            f"At today's usage, {overage} seats over the paid {sub.seats} would be charged "
            f"{billing.format_money(amount, sub.currency)} at the Q{quarter} reconciliation "
            f"on {day}; the pause defers that charge."
        )
    else:
        effect.append("No reconciliation falls in the pause.")
    return Stake(
        kind=Kind.QSR_PAUSE,
        subscription=sub,
        seats=overage,
        amount=amount,
        slots=policy.required_slots(
            Kind.QSR_PAUSE, seats=overage, amount=amount, currency=sub.currency
        ),
        effect=effect,
        values={"pause_until": end},
    )


def approval_request_pause(
    *,
    subscription: Subscription,
    until: date | None,
    justification: str,
    ticket_url: str,
    actor: policy.Actor,
    today: date | None = None,
) -> ApprovalRequest:
    """Ask sales ops to pause QSR until `until` (None: the end of the term)."""
    policy.check(actor, policy.Action.REQUEST_PAUSE, subscription)
    justification = _why(justification, ticket_url)
    stake = pause_stake(subscription=subscription, until=until, today=today or timezone.localdate())
    return _file(stake, actor=actor, justification=justification, ticket_url=ticket_url)


# --- Max seats reset --------------------------------------------------------------------


def reset_stake(
    *,
    subscription: Subscription,
    new_max_seats: int | None,
    today: date,
    paid_seats: int | None = None,
) -> Stake:
    """Lowering the namespace's max seats used to `new_max_seats` (default: the seats in
    use). `paid_seats` overrides the subscription's paid seats (a refund lowers them)."""
    sub = _live(subscription)
    ns = sub.namespace
    new = ns.seats_in_use if new_max_seats is None else new_max_seats
    if not ns.seats_in_use <= new <= ns.max_seats_used:
        raise DomainError(
            f"The new max seats used must lie between the seats in use ({ns.seats_in_use}) "
            f"and the current max seats used ({ns.max_seats_used}).",
            field="new_max_seats",
        )
    waived = ns.max_seats_used - new
    if waived == 0:
        raise DomainError(
            f"Max seats used is {ns.max_seats_used} already; there is nothing to waive.",
            field="new_max_seats",
        )
    paid = sub.seats if paid_seats is None else paid_seats
    # Only seats above those paid for would have been charged.
    chargeable = min(waived, billing.qsr_overage(max_seats_used=ns.max_seats_used, paid_seats=paid))
    amount, when = _charge_of_waiver(sub, seats=chargeable, today=today)
    return Stake(
        kind=Kind.MAX_SEATS_RESET,
        subscription=sub,
        seats=waived,
        amount=amount,
        slots=policy.required_slots(
            Kind.MAX_SEATS_RESET, seats=waived, amount=amount, currency=sub.currency
        ),
        effect=[
            f"Max seats used of {ns} goes from {ns.max_seats_used} to {new} when support "
            f"executes it ({waived} seats waived; {ns.seats_in_use} in use today).",
            f"{chargeable} of them are above the {paid} paid seats: "
            f"{billing.format_money(amount, sub.currency)} not charged at {when}.",
        ],
    )


def approval_request_reset(
    *,
    subscription: Subscription,
    new_max_seats: int | None,
    justification: str,
    ticket_url: str,
    actor: policy.Actor,
    today: date | None = None,
) -> ApprovalRequest:
    """Ask to waive a true-up by lowering max seats used (executed by support later)."""
    policy.check(actor, policy.Action.REQUEST_RESET, subscription)
    justification = _why(justification, ticket_url)
    stake = reset_stake(
        subscription=subscription,
        new_max_seats=new_max_seats,
        today=today or timezone.localdate(),
    )
    return _file(stake, actor=actor, justification=justification, ticket_url=ticket_url)


# --- QSR refund -------------------------------------------------------------------------


def refund_stake(*, reconciliation: Reconciliation, seats: int) -> Stake:
    recon = reconciliation
    sub = _live(recon.subscription)
    if recon.status != Reconciliation.Status.PROCESSED:
        raise DomainError(
            f"Only a processed reconciliation can be refunded; this one is "
            f"{recon.get_status_display().lower()}."
        )
    try:
        amount = billing.qsr_refund_amount(
            quarter=recon.quarter,
            refunded_seats=seats,
            overage=recon.overage_seats or 0,
            already_refunded=recon.refunded_seats,
            # Only a processed reconciliation gets here: it has its price and amount.
            annual_unit_price=cast(Decimal, recon.annual_unit_price),
            currency=recon.currency,
        )
    except billing.BillingError as exc:
        raise DomainError(str(exc), field="seats") from exc
    return Stake(
        kind=Kind.QSR_REFUND,
        subscription=sub,
        seats=seats,
        amount=amount,
        slots=policy.required_slots(
            Kind.QSR_REFUND, seats=seats, amount=amount, currency=sub.currency
        ),
        effect=[
            f"A credit memo of -{billing.format_money(amount, sub.currency)} for {seats} of "
            f"the {recon.overage_seats} seats reconciled in Q{recon.quarter} "
            f"({billing.format_money(cast(Decimal, recon.amount), sub.currency)} charged).",
            f"Paid seats go from {sub.seats} to {sub.seats - seats} when deal desk processes it.",
            "It needs a max seats reset of the namespace as well, linked to it: an open one "
            "is linked, or one is requested with it for the same seats.",
        ],
    )


def approval_request_refund(
    *,
    reconciliation: Reconciliation,
    seats: int,
    justification: str,
    ticket_url: str,
    actor: policy.Actor,
    today: date | None = None,
) -> ApprovalRequest:
    """Ask to refund `seats` of a processed reconciliation, linked to a max seats reset of
    the namespace: the open one there is, or a new one for the same seats."""
    policy.check(actor, policy.Action.REQUEST_REFUND, reconciliation)
    justification = _why(justification, ticket_url)
    today = today or timezone.localdate()
    with transaction.atomic():
        recon = Reconciliation.objects.select_related(
            "subscription__namespace", "subscription__customer"
        ).get(pk=reconciliation.pk)
        stake = refund_stake(reconciliation=recon, seats=seats)
        sub = recon.subscription
        open_refund = ApprovalRequest.objects.filter(
            reconciliation=recon,
            kind=Kind.QSR_REFUND,
            status__in=[ApprovalRequest.Status.PENDING, ApprovalRequest.Status.APPROVED],
        ).first()
        if open_refund is not None:
            raise DomainError(
                f"A refund of this reconciliation is open already (request #{open_refund.pk}); "
                "decide or cancel it first."
            )
        reset = (
            ApprovalRequest.objects.select_for_update(of=("self",))
            .filter(
                subscription=sub,
                kind=Kind.MAX_SEATS_RESET,
                status__in=[ApprovalRequest.Status.PENDING, ApprovalRequest.Status.APPROVED],
                refund__isnull=True,
            )
            .first()
        )
        if reset is None:
            ns = sub.namespace
            reset_stake_ = reset_stake(
                subscription=sub,
                new_max_seats=max(ns.seats_in_use, ns.max_seats_used - seats),
                today=today,
                paid_seats=sub.seats - seats,
            )
            reset = _file(
                reset_stake_,
                actor=actor,
                justification=f"For the refund of {seats} seats of {recon}: {justification}",
                ticket_url=ticket_url,
            )
        return _file(
            stake,
            actor=actor,
            justification=justification,
            ticket_url=ticket_url,
            reconciliation=recon,
            linked_reset=reset,
        )


# --- Free period ------------------------------------------------------------------------


def free_period_stake(*, subscription: Subscription, start: date, days: int, today: date) -> Stake:
    sub = _live(subscription)
    if not 1 <= days <= MAX_FREE_DAYS:
        raise DomainError(f"Give between 1 and {MAX_FREE_DAYS} free days.", field="days")
    if start < today:
        raise DomainError(f"The free period cannot start before today ({today}).", field="start")
    if not sub.term_start <= start < sub.term_end:
        raise DomainError(
            f"The free period starts inside the term ({sub.term_start} to {sub.term_end}).",
            field="start",
        )
    charge = sub.seats * sub.annual_unit_price
    amount = billing.free_period_value(
        charge=charge,
        currency=sub.currency,
        term_start=sub.term_start,
        term_end=sub.term_end,
        days=days,
    )
    return Stake(
        kind=Kind.FREE_PERIOD,
        subscription=sub,
        seats=sub.seats,
        amount=amount,
        slots=policy.required_slots(
            Kind.FREE_PERIOD, seats=sub.seats, amount=amount, currency=sub.currency, days=days
        ),
        effect=[
            f"{days} free days from {start} for {sub.seats} seats, worth "
            f"{billing.format_money(amount, sub.currency)}: the term end moves from "
            f"{sub.term_end} to {sub.term_end + timedelta(days=days)} once approved.",
        ],
        values={"free_from": start, "free_days": days},
    )


def approval_request_free_period(
    *,
    subscription: Subscription,
    start: date,
    days: int,
    justification: str,
    ticket_url: str,
    actor: policy.Actor,
    today: date | None = None,
) -> ApprovalRequest:
    """Ask to give `days` days of service for free from `start` (the term grows by them)."""
    policy.check(actor, policy.Action.REQUEST_FREE_PERIOD, subscription)
    justification = _why(justification, ticket_url)
    stake = free_period_stake(
        subscription=subscription, start=start, days=days, today=today or timezone.localdate()
    )
    return _file(stake, actor=actor, justification=justification, ticket_url=ticket_url)
