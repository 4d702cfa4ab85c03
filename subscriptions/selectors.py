"""Reads for a subscription's account page: what its seat-usage chart draws
(`seat_usage`), in a fixed number of queries whatever the length of the term or the
number of reconciliations and suspensions.

- one query for the daily usage of the term;
- one for the marks: the term's reconciliations and the subscription's suspensions;
- one for the subscription's history (paid seats and QSR state over time);
- one for the namespace's max seats resets in the term.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import CharField, DecimalField, F, IntegerField, Value
from django.utils import timezone

from subscriptions import billing
from subscriptions.models import (
    Namespace,
    Reconciliation,
    SeatUsageReport,
    Subscription,
    Suspension,
)

QsrState = Subscription.QsrState
RECONCILIATION = "reconciliation"


@dataclass(frozen=True)
class Mark:
    """A reconciliation on its date."""

    quarter: int
    day: date
    status: str  # in words
    amount: str  # with its currency, or "—"
    seats: int | None  # the max seats used it priced

    @property
    def label(self) -> str:
        status = self.status.split(" (")[0].lower()  # "pending (notified)": "pending"
        return f"Q{self.quarter} {self.day:%-d %b}: {status}, {self.amount}"


@dataclass(frozen=True)
class Span:
    """A stretch of the term shaded on the chart: suspended, free, QSR paused or off."""

    kind: str  # one of SPAN_KINDS
    start: date
    end: date  # exclusive
    label: str


SPAN_KINDS = {
    "suspended": "Suspended",
    "free": "Free period",
    "paused": "QSR paused",
    "bug": "QSR disabled for a bug",
}


@dataclass(frozen=True)
class SeatUsage:
    """What the chart of one term draws."""

    term_start: date
    term_end: date
    today: date
    usage: list[tuple[date, int]]  # billable users a day
    max_used: list[tuple[date, int]]  # max seats used as it stood each day
    paid: list[tuple[date, int]]  # paid seats, a point where they change
    marks: list[Mark] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)


def _day(moment: datetime) -> date:
    return timezone.localdate(moment)


def _usage(sub: Subscription) -> list[tuple[date, int]]:
    rows = (
        SeatUsageReport.objects.filter(
            namespace_id=sub.namespace_id, date__gte=sub.term_start, date__lt=sub.term_end
        )
        .order_by("date")
        .values_list("date", "billable_users")
    )
    return list(rows)


def _resets(sub: Subscription) -> dict[date, int]:
    """Max seats resets executed in the term: the day counting restarted, and the value
    support set (the namespace's first history row with that day)."""
    rows = (
        Namespace.history.filter(
            id=sub.namespace_id,
            usage_counted_from__gt=sub.term_start,
            usage_counted_from__lt=sub.term_end,
        )
        .order_by("history_date")
        .values_list("usage_counted_from", "max_seats_used")
    )
    resets: dict[date, int] = {}
    for day, value in rows:
        resets.setdefault(day, value)
    return resets


def max_seats_series(
    usage: list[tuple[date, int]], resets: dict[date, int]
) -> list[tuple[date, int]]:
    """Max seats used as seat refresh keeps it: the highest daily count of the term so
    far, restarting from the value a max seats reset set, on the day it was set."""
    series: list[tuple[date, int]] = []
    high = 0
    pending = sorted(resets.items())
    for day, users in usage:
        while pending and pending[0][0] <= day:
            high = pending.pop(0)[1]
        high = max(high, users)
        series.append((day, high))
    return series


def _marks(sub: Subscription) -> tuple[list[Mark], list[Span]]:
    """The term's reconciliations and the subscription's suspensions, in one query."""
    text, money, number = CharField(), DecimalField(), IntegerField()
    reconciliations = (
        Reconciliation.objects.filter(subscription=sub, term_start=sub.term_start)
        .annotate(
            what=Value(RECONCILIATION, output_field=text),
            state=F("status"),
            start=F("reconciliation_date"),
            end=F("reconciliation_date"),
            money=F("amount"),
            n=F("quarter"),
            seats=F("max_seats_used"),
        )
        .values("what", "state", "start", "end", "money", "n", "seats")
    )
    suspensions = (
        Suspension.objects.filter(
            subscription=sub, suspend_date__lt=sub.term_end, resume_date__gt=sub.term_start
        )
        .exclude(status=Suspension.Status.CANCELLED)
        .annotate(
            what=F("mode"),
            state=F("status"),
            start=F("suspend_date"),
            end=F("resume_date"),
            money=Value(None, output_field=money),
            n=Value(0, output_field=number),
            seats=Value(None, output_field=number),
        )
        .values("what", "state", "start", "end", "money", "n", "seats")
    )
    marks, spans = [], []
    for row in reconciliations.union(suspensions, all=True).order_by("start"):
        if row["what"] == RECONCILIATION:
            amount = row["money"]
            marks.append(
                Mark(
                    quarter=row["n"],
                    day=row["start"],
                    status=Reconciliation.Status(row["state"]).label,
                    amount="—"
                    if amount is None
                    else billing.format_money(Decimal(amount), sub.currency),
                    seats=row["seats"],
                )
            )
        else:
            free = row["what"] == Suspension.Mode.FREE_PERIOD
            status = Suspension.Status(row["state"]).label.lower()
            what = "Free period" if free else "Suspended"
            label = f"{what} {row['start']} to {row['end']} ({status})"
            spans.append(Span("free" if free else "suspended", row["start"], row["end"], label))
    return marks, spans


def _history(sub: Subscription, today: date) -> tuple[list[tuple[date, int]], list[Span]]:
    """Paid seats over the term (a point where they change) and the stretches QSR was
    paused or disabled for a bug, from the subscription's history."""
    rows = list(
        sub.history.filter(
            history_date__lt=timezone.make_aware(
                datetime.combine(sub.term_end, datetime.min.time())
            )
        )
        .order_by("history_date", "history_id")
        .values_list("history_date", "seats", "qsr_state", "qsr_paused_until")
    )
    if not rows:  # no history kept: what the record says now
        rows = [(timezone.now(), sub.seats, sub.qsr_state, sub.qsr_paused_until)]
    paid: list[tuple[date, int]] = []
    states: list[tuple[date, str, date | None]] = []
    for moment, seats, state, until in rows:
        # The record's first row stands for the term's start: a subscription loaded
        # mid-term kept no history before.
        day = sub.term_start if not paid else max(_day(moment), sub.term_start)
        if paid and paid[-1][0] == day:
            paid[-1] = (day, seats)
        elif not paid or paid[-1][1] != seats:
            paid.append((day, seats))
        states.append((day, state, until))
    end = min(max(today, sub.term_start), sub.term_end)
    if paid and paid[-1][0] < end:
        paid.append((end, paid[-1][1]))
    spans = []
    for i, (day, state, until) in enumerate(states):
        if state not in (QsrState.PAUSED, QsrState.DISABLED_FOR_BUG):
            continue
        if i and states[i - 1][1] == state:
            continue  # the same stretch, another change
        later = next((d for d, s, _ in states[i + 1 :] if s != state), None)
        stop = later or end
        if state == QsrState.PAUSED and until is not None:
            stop = min(stop, until + timedelta(days=1))
        if stop > day:
            kind = "paused" if state == QsrState.PAUSED else "bug"
            spans.append(Span(kind, day, stop, f"{SPAN_KINDS[kind]} {day} to {stop}"))
    return paid, spans


def seat_usage(subscription: Subscription, *, today: date | None = None) -> SeatUsage:
    """What the seat-usage chart of the subscription's current term draws."""
    sub = subscription
    today = today or timezone.localdate()
    usage = _usage(sub)
    marks, spans = _marks(sub)
    paid, qsr_spans = _history(sub, today)
    return SeatUsage(
        term_start=sub.term_start,
        term_end=sub.term_end,
        today=today,
        usage=usage,
        max_used=max_seats_series(usage, _resets(sub)),
        paid=paid,
        marks=marks,
        spans=sorted([*spans, *qsr_spans], key=lambda s: s.start),
    )
