"""Reads for the home page's dashboard, subscriptions side: the reconciliations coming due
and the money at stake, last night's run, the subscriptions off QSR for a bug, and the
QSR revenue invoiced per quarter.

Every read is a fixed number of queries whatever the size of the book, and every figure
drawn from the accounts is narrowed to those the user may see (`policy.visible`). The
approvals app adds its queues and figures and puts the page together
(`approvals/dashboard.py`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db.models import (
    Case,
    Count,
    DateField,
    Exists,
    F,
    Func,
    IntegerField,
    JSONField,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
    Window,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Greatest, TruncQuarter
from django.utils import timezone
from django.utils.formats import date_format

from portal import policy
from subscriptions import billing
from subscriptions.models import (
    JobRun,
    QsrDisabledForBug,
    Reconciliation,
    Subscription,
    Suspension,
)
from subscriptions.services.nightly import last_completed_night

if TYPE_CHECKING:
    from django.contrib.auth.models import User

DUE_WINDOW_DAYS = 14
LIVE = (Subscription.Status.ACTIVE, Subscription.Status.SUSPENDED)
# On QSR (billing.qsr_ineligibility_reasons, as a query): a 12-month term bought direct,
# paid by card or invoice, in no program, not an offline-license install.
ON_QSR_TERMS = Q(
    term_months=12,
    channel=Subscription.Channel.DIRECT,
    payment_method__in=[Subscription.Payment.CARD, Subscription.Payment.INVOICE],
    program="",
    offline_license=False,
)
# How many subscriptions off QSR for a bug the home page lists (oldest first); the rest
# are a click away in their list.
BUG_LIST_LIMIT = 10


def age_in_days(since: datetime | date | None, *, now: datetime | None = None) -> int | None:
    """Whole days from `since` to now (0 on the same day), in the portal's time zone."""
    if since is None:
        return None
    today = timezone.localdate(now) if now else timezone.localdate()
    day = timezone.localdate(since) if isinstance(since, datetime) else since
    return max(0, (today - day).days)


def quarter_label(day: date) -> str:
    return f"{day.year} Q{(day.month - 1) // 3 + 1}"


def last_quarters(today: date, count: int = 4) -> list[date]:
    """The first days of the last `count` calendar quarters, oldest first, this one last."""
    first = date(today.year, (today.month - 1) // 3 * 3 + 1, 1)
    return [billing.add_months(first, -3 * n) for n in reversed(range(count))]


# --- Reconciliations coming due -----------------------------------------------------------


@dataclass
class DueFigures:
    """One currency's reconciliations coming due in the window, and the money at stake:
    `priced` are notified already and will be invoiced at their amount; `estimated` are
    quarter ends not priced yet, at today's max seats used over the paid seats."""

    currency: str
    priced_count: int = 0
    priced_amount: Decimal = Decimal(0)
    estimated_count: int = 0
    estimated_amount: Decimal = Decimal(0)

    @property
    def count(self) -> int:
        return self.priced_count + self.estimated_count

    @property
    def amount(self) -> Decimal:
        return self.priced_amount + self.estimated_amount

    def money(self, amount: Decimal) -> str:
        return billing.format_money(amount, self.currency)

    @property
    def priced_display(self) -> str:
        return self.money(self.priced_amount)

    @property
    def estimated_display(self) -> str:
        return self.money(self.estimated_amount)

    @property
    def amount_display(self) -> str:
        return self.money(self.amount)


class _QuarterEnd(Func):
    """`term_start` + `months` months; PostgreSQL clamps to month end like
    `billing.add_months` (the create step relies on the same)."""

    template = "(%(expressions)s + make_interval(months => %(months)s))::date"
    output_field = DateField()


def _suspended_on(day: Any) -> Exists:
    """A suspension that stops the service on `day` (the quarter is skipped then)."""
    return Exists(
        Suspension.objects.filter(
            subscription=OuterRef("pk"), suspend_date__lte=day, resume_date__gt=day
        )
        .exclude(status=Suspension.Status.CANCELLED)
        .exclude(mode=Suspension.Mode.FREE_PERIOD)
    )


def _quarter_ends_ahead(user: User, start: date, end: date) -> QuerySet[Subscription]:
    """Live subscriptions on QSR with a quarter end in [start, end) that has no record yet
    and that QSR would charge on the day (not disabled, paused or suspended then)."""
    ends = {k: _QuarterEnd(F("term_start"), months=3 * k) for k in (1, 2, 3)}
    in_window = {k: Q(**{f"q{k}__gte": start, f"q{k}__lt": end}) for k in ends}
    # The terms that can have a quarter end in the window, as plain ranges of term_start
    # (a few days wider: month ends clamp), so the exact test runs on those rows only.
    margin = timedelta(days=4)
    starts = Q(pk__in=[])
    for k in ends:
        since, until = billing.add_months(start, -3 * k), billing.add_months(end, -3 * k)
        starts |= Q(term_start__gte=since - margin, term_start__lt=until + margin)
    subs = (
        policy.visible(Subscription.objects.all(), user, customer_path="customer")
        .filter(starts, ON_QSR_TERMS, status__in=LIVE)
        .annotate(**{f"q{k}": expr for k, expr in ends.items()})
        # The window is shorter than a quarter: one quarter end at most falls in it.
        .annotate(
            quarter=Case(
                *(When(in_window[k], then=Value(k)) for k in ends), output_field=IntegerField()
            ),
            day=Case(*(When(in_window[k], then=F(f"q{k}")) for k in ends)),
        )
        .filter(quarter__isnull=False, day__lt=F("term_end"))
    )
    recorded = Reconciliation.objects.filter(
        subscription=OuterRef("pk"), term_start=OuterRef("term_start"), quarter=OuterRef("quarter")
    )
    charged = Q(qsr_state=Subscription.QsrState.ENABLED) | Q(
        qsr_state=Subscription.QsrState.PAUSED, qsr_paused_until__lt=F("day")
    )
    return (
        subs.filter(charged)
        .exclude(Exists(recorded))
        .exclude(_suspended_on(OuterRef("day")))
        .order_by()  # the model's ordering would join the customers for nothing
    )


_ESTIMATE_GROUPS = ("currency", "quarter")
_OVERAGE = Greatest(F("namespace__max_seats_used") - F("seats"), Value(0))


def _estimate(groups: Any, figures: dict[str, DueFigures]) -> None:
    """Price groups of (currency, quarter, unit price, overage, n) as the notify step
    would price each reconciliation (`billing.qsr_reconcile`), summing the rounded lines."""
    for row in groups:
        amount = billing.qsr_reconcile(
            quarter=row["quarter"],
            max_seats_used=row["overage"],
            paid_seats=0,
            annual_unit_price=row["price"],
            currency=row["currency"],
        ).amount
        due = figures.setdefault(row["currency"], DueFigures(row["currency"]))
        due.estimated_count += row["n"]
        due.estimated_amount += amount * row["n"]


def reconciliations_due(
    *, user: User, today: date, days: int = DUE_WINDOW_DAYS
) -> list[DueFigures]:
    """Per currency, the reconciliations the nightly run will invoice or price from today
    to `today + days` (exclusive), and the money at stake. Three queries."""
    end = today + timedelta(days=days)
    figures: dict[str, DueFigures] = {}
    recons = policy.visible(
        Reconciliation.objects.filter(subscription__status__in=LIVE),
        user,
        customer_path="subscription__customer",
    )
    priced = (
        recons.filter(status=Reconciliation.Status.PENDING, invoice_date__lt=end)
        .values("currency")
        .annotate(n=Count("pk"), total=Sum("amount"))
    )
    for row in priced:
        due = figures.setdefault(row["currency"], DueFigures(row["currency"]))
        due.priced_count, due.priced_amount = row["n"], row["total"] or Decimal(0)
    # Recorded but not priced yet (a self-managed quarter waits six days for its usage).
    scheduled = (
        recons.filter(status=Reconciliation.Status.SCHEDULED, notify_date__lt=end)
        .filter(
            Q(subscription__qsr_state=Subscription.QsrState.ENABLED)
            | Q(
                subscription__qsr_state=Subscription.QsrState.PAUSED,
                subscription__qsr_paused_until__lt=F("notify_date"),
            )
        )
        .values("currency", "quarter", price=F("subscription__annual_unit_price"))
        .annotate(
            overage=Greatest(
                F("subscription__namespace__max_seats_used") - F("subscription__seats"), Value(0)
            ),
            n=Count("pk"),
        )
    )
    _estimate(scheduled, figures)
    ahead = (
        _quarter_ends_ahead(user, today, end)
        # "quarter" is the annotation made there, which the type checker cannot follow.
        .values(*_ESTIMATE_GROUPS, price=F("annual_unit_price"))
        .annotate(overage=_OVERAGE, n=Count("pk"))
    )
    _estimate(ahead, figures)
    return [figures[c] for c in sorted(figures)]


# --- Last night's run -----------------------------------------------------------------------


@dataclass
class NightSummary:
    """The latest nightly run, the last night that went through all its steps, and what
    is wrong with them, in words."""

    run: JobRun | None
    last_completed: date | None
    errors_by_step: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def error_count(self) -> int:
        return sum(self.errors_by_step.values())


# Errors counted per step in the database: a night's error list can be long.
_ERRORS_BY_STEP = RawSQL(
    "(SELECT jsonb_object_agg(s, n) FROM (SELECT coalesce(e->>'step', '?') AS s, count(*) AS n"
    " FROM jsonb_array_elements(errors) AS e GROUP BY 1) AS per_step)",
    [],
    output_field=JSONField(),
)


def last_night(*, today: date) -> NightSummary:
    """The latest nightly run (simulations left out) and the warnings an operator should
    see: no run at all, a last completed night before yesterday, a failed or abandoned
    last run. Two queries."""
    run = (
        JobRun.objects.exclude(trigger="simulation")
        .defer("errors", "counts")
        .annotate(errors_by_step=_ERRORS_BY_STEP)
        .order_by("-started_at", "-pk")
        .first()
    )
    completed = last_completed_night()
    summary = NightSummary(
        run=run,
        last_completed=completed,
        errors_by_step=dict(sorted((getattr(run, "errors_by_step", None) or {}).items())),
    )
    yesterday = today - timedelta(days=1)
    if run is None:
        summary.warnings.append("No nightly run has been recorded.")
    elif run.status == JobRun.Status.FAILED:
        summary.warnings.append(
            f"The last run (for {date_format(run.run_date)}) failed: {summary.error_count} errors."
        )
    elif run.status == JobRun.Status.ABANDONED:
        summary.warnings.append(
            f"The last run (for {date_format(run.run_date)}) was abandoned: its process stopped."
        )
    if run is not None and (completed is None or completed < yesterday):
        since = f"since {date_format(completed)}" if completed else "yet"
        summary.warnings.append(
            f"No night has completed {since}: the nights after it have not been billed."
        )
    return summary


# --- QSR disabled for bugs ------------------------------------------------------------------


@dataclass
class BugDisabled:
    subscription: Subscription
    days: int | None


def qsr_disabled_for_bugs(
    *, user: User, limit: int = BUG_LIST_LIMIT
) -> tuple[int, list[BugDisabled]]:
    """How many subscriptions the user may see are off QSR for a bug, and the `limit`
    longest off, with the days since. One query: each row carries the total."""
    qs = policy.visible(QsrDisabledForBug.objects.all(), user, customer_path="customer")
    rows = list(
        qs.select_related("customer", "namespace")
        .annotate(total=Window(Count("pk")))
        .order_by(F("qsr_changed_at").asc(nulls_first=True), "pk")[:limit]
    )
    listed = [BugDisabled(sub, age_in_days(sub.qsr_changed_at)) for sub in rows]
    return (rows[0].total if rows else 0), listed


# --- QSR revenue ----------------------------------------------------------------------------


Figures = dict[tuple[date, str], Decimal]  # (first day of the quarter, currency) -> amount


def per_quarter(qs: QuerySet, *, when: str, amount: str) -> Figures:
    """Sum `amount` of `qs` per calendar quarter of `when` and currency. One query."""
    rows = (
        qs.annotate(q=TruncQuarter(when, output_field=DateField()))
        .values("q", "currency")
        .annotate(total=Sum(amount))
        .order_by()
    )
    totals: Figures = defaultdict(Decimal)
    for row in rows:
        totals[row["q"], row["currency"]] += row["total"] or Decimal(0)
    return dict(totals)


def qsr_revenue(*, since: date) -> Figures:
    """QSR overage invoiced per quarter and currency, from the quarter of `since` on:
    the invoiced reconciliations (those refunded since included; refunds are counted
    apart)."""
    invoiced = Reconciliation.objects.filter(
        invoiced_at__isnull=False, invoiced_at__date__gte=since, amount__gt=0
    )
    return per_quarter(invoiced, when="invoiced_at", amount="amount")
