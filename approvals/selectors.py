"""Reads for the approvals app: the admin's work queues, and what a request would put at
stake.

The queues select from a queryset of requests the caller may see (the admin's), in the
one query that lists them. Each kind of request has a `*_stake` function that computes
what the request would put at stake (seats, money, approval slots) from the records,
writing nothing: the admin shows it on the confirmation page, and the request services
file the request with the same figures, so they are never typed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from django.db.models import Exists, OuterRef, Q, QuerySet

from approvals.models import ApprovalDecision, ApprovalRequest
from approvals.preconditions import not_live, not_on_qsr
from portal import policy
from portal.errors import DomainError
from subscriptions import billing
from subscriptions.models import Reconciliation, Subscription, qsr_ineligibility

if TYPE_CHECKING:
    from django.contrib.auth.models import User

Status = ApprovalRequest.Status
Kind = ApprovalRequest.Kind
LIVE = (Subscription.Status.ACTIVE, Subscription.Status.SUSPENDED)
MAX_FREE_DAYS = 366


# --- Work queues ------------------------------------------------------------------------


def approval_requests_awaiting(
    *, user: User, queryset: QuerySet[ApprovalRequest]
) -> QuerySet[ApprovalRequest]:
    """The approval queue: pending requests, not `user`'s own nor decided by them, with a
    slot `user`'s roles fill that nobody has filled yet."""
    roles = policy.roles_of(user)
    slots = [s for s, fillers in policy.SLOTS.items() if fillers & roles or user.is_superuser]
    # One condition a slot: the slots are a handful (policy.SLOTS), and each stays one
    # EXISTS in the list's single query. No slot of theirs: nothing is waiting for them.
    open_for_me = Q(pk__in=[])
    for slot in slots:
        filled = ApprovalDecision.objects.filter(request=OuterRef("pk"), slot=slot)
        open_for_me |= Q(~Exists(filled), required_slots__contains=[slot])
    return (
        queryset.filter(status=Status.PENDING)
        .exclude(requester=user)
        .exclude(decisions__approver=user)
        .filter(open_for_me)
    )


def approval_requests_to_execute(
    *, user: User, queryset: QuerySet[ApprovalRequest]
) -> QuerySet[ApprovalRequest]:
    """Approved requests the user's role executes: resets (support), refunds whose reset
    is approved too (deal desk)."""
    may_reset = policy.may(user, policy.Action.EXECUTE_RESET)
    may_refund = policy.may(user, policy.Action.PROCESS_REFUND)
    wanted = Q(pk__in=[])
    if may_reset:
        wanted |= Q(kind=Kind.MAX_SEATS_RESET)
    if may_refund:
        wanted |= Q(
            kind=Kind.QSR_REFUND, linked_reset__status__in=[Status.APPROVED, Status.EXECUTED]
        )
    return queryset.filter(wanted, status=Status.APPROVED).exclude(requester=user)


# --- What a request puts at stake -------------------------------------------------------


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


def _live(subscription: Subscription) -> Subscription:
    refusal = not_live(subscription)
    if refusal is not None:
        raise DomainError(refusal)
    return subscription


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


def pause_stake(*, subscription: Subscription, until: date | None, today: date) -> Stake:
    sub = _live(subscription)
    refusal = not_on_qsr(sub)
    if refusal is not None:
        raise DomainError(refusal)
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
        # The value asked for; support sets the one it executes (within the waiver).
        values={"reset_to": new},
    )


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


# --- What an approver reads before deciding ---------------------------------------------

QUEUES = ("awaiting_me", "to_execute", "mine")


def approval_queue(
    name: str, *, user: User, queryset: QuerySet[ApprovalRequest]
) -> QuerySet[ApprovalRequest]:
    """The work queue `name` (one of QUEUES) of `user`, from what they may see."""
    if name == "to_execute":
        return approval_requests_to_execute(user=user, queryset=queryset)
    if name == "mine":
        return queryset.filter(requester=user)
    return approval_requests_awaiting(user=user, queryset=queryset)


@dataclass(frozen=True)
class DecisionContext:
    """What a request changes, as the approver weighs it: the seats now, the value asked
    for and the money at stake."""

    rows: list[tuple[str, str]]


def requested_reset_to(req: ApprovalRequest) -> int | None:
    """The max seats used a reset asks for: the value recorded when it was filed, or for
    a request filed before that was kept, today's max seats used less the waived seats
    (never below the seats in use)."""
    if req.kind != Kind.MAX_SEATS_RESET:
        return None
    if req.reset_to is not None:
        return req.reset_to
    ns = req.subscription.namespace
    return max(ns.seats_in_use, ns.max_seats_used - req.seats_at_stake)


def decision_context(req: ApprovalRequest) -> DecisionContext:
    sub = req.subscription
    ns = sub.namespace
    stake = billing.format_money(req.amount_at_stake, req.currency)
    rows = [
        ("Seats in use today", f"{ns.seats_in_use:,}"),
        ("Max seats used this term", f"{ns.max_seats_used:,}"),
        ("Paid seats", f"{sub.seats:,}"),
        ("Over the paid seats", f"{max(0, ns.max_seats_used - sub.seats):,}"),
    ]
    if req.kind == Kind.MAX_SEATS_RESET:
        new = requested_reset_to(req)
        done = req.status == Status.EXECUTED
        rows += [
            ("Max seats used set to" if done else "Asks to lower max seats used to", f"{new:,}"),
            ("Seats waived", f"{req.seats_at_stake:,}"),
        ]
    elif req.kind == Kind.QSR_PAUSE:
        rows += [("QSR paused until", str(req.pause_until or sub.term_end))]
        rows += [("Overage deferred", f"{req.seats_at_stake:,} seats")]
    elif req.kind == Kind.FREE_PERIOD:
        rows += [
            ("Free days", f"{req.free_days} from {req.free_from}"),
            ("Term end", f"{sub.term_end}, {req.free_days} days later once applied"),
        ]
    elif req.kind == Kind.QSR_REFUND:
        recon = req.reconciliation
        if recon is not None:
            charged = billing.format_money(recon.amount or 0, recon.currency)
            rows += [
                ("Reconciliation", f"Q{recon.quarter} {recon.reconciliation_date}: {charged}"),
                (
                    "Its overage seats",
                    f"{recon.overage_seats or 0} ({recon.refunded_seats} refunded)",
                ),
            ]
        rows += [
            ("Seats refunded", f"{req.seats_at_stake:,}"),
            ("Paid seats after", f"{sub.seats - req.seats_at_stake:,}"),
        ]
    rows.append(("Money at stake", stake))
    return DecisionContext(rows=rows)


def earlier_requests(req: ApprovalRequest, *, queryset: QuerySet[ApprovalRequest]):
    """The account's other requests, newest first, from what the user may see."""
    return (
        queryset.filter(subscription__customer_id=req.subscription.customer_id)
        .exclude(pk=req.pk)
        .select_related("requester", "subscription__namespace")
        .order_by("-created_at", "-id")
    )
