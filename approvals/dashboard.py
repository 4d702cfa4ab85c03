"""The home page's dashboard: each role's work queues with their counts and oldest item,
the reconciliations coming due with the money at stake, last night's run, the
subscriptions off QSR for a bug and, for executives and finance, revenue, waivers and
refunds per quarter.

The subscriptions-side figures come from `subscriptions/dashboard.py`; this module adds
the approvals' and puts the page's context together (`index_context`, which the admin's
index view receives through `ApprovalsConfig.ready()`). The queries are a fixed number
whatever the number of records, and what a sales manager sees is limited to their
accounts, as in the lists the figures link to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db.models import Count, Min, QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from approvals.charts import revenue_chart
from approvals.models import ApprovalRequest, Dispute
from approvals.selectors import approval_requests_awaiting, approval_requests_to_execute
from portal import policy
from subscriptions import billing
from subscriptions import dashboard as figures
from subscriptions.dashboard import age_in_days
from subscriptions.models import QsrDisabledForBug

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.http import HttpRequest

Action = policy.Action
Status = ApprovalRequest.Status
Kind = ApprovalRequest.Kind
REQUESTING = (
    Action.REQUEST_PAUSE,
    Action.REQUEST_RESET,
    Action.REQUEST_REFUND,
    Action.REQUEST_FREE_PERIOD,
)


@dataclass(frozen=True)
class Queue:
    """One work queue on the home page: what it holds, how many, since when."""

    key: str
    label: str
    help: str
    url: str
    count: int
    oldest: datetime | date | None

    @property
    def oldest_days(self) -> int | None:
        return age_in_days(self.oldest) if self.count else None


def _changelist(name: str, **params: str) -> str:
    url = reverse(f"admin:{name}_changelist")
    return f"{url}?{urlencode(params)}" if params else url


def _queue(key: str, label: str, help: str, url: str, qs: QuerySet, since: str) -> Queue:
    found = qs.aggregate(n=Count("pk"), oldest=Min(since))
    return Queue(key, label, help, url, found["n"], found["oldest"])


def work_queues(user: User) -> list[Queue]:
    """The queues `user`'s roles work, each one aggregate query over what the queue's
    list shows them."""
    requests = policy.visible(
        ApprovalRequest.objects.all(), user, customer_path="subscription__customer"
    )
    queues = []
    if policy.may(user, Action.DECIDE):
        queues.append(
            _queue(
                "awaiting_me",
                "Waiting for my approval",
                "Requests with an open slot your role fills",
                _changelist("approvals_approvalrequest", queue="awaiting_me"),
                approval_requests_awaiting(user=user, queryset=requests),
                "created_at",
            )
        )
    if policy.may(user, Action.EXECUTE_RESET) or policy.may(user, Action.PROCESS_REFUND):
        what = []
        if policy.may(user, Action.EXECUTE_RESET):
            what.append("max seats resets to execute")
        if policy.may(user, Action.PROCESS_REFUND):
            what.append("refunds ready to process")
        queues.append(
            _queue(
                "to_execute",
                "Approved, for me to execute",
                " and ".join(what).capitalize() + "; oldest by approval date",
                _changelist("approvals_approvalrequest", queue="to_execute"),
                approval_requests_to_execute(user=user, queryset=requests),
                "decided_at",
            )
        )
    if any(policy.may(user, action) for action in REQUESTING):
        queues.append(
            _queue(
                "mine",
                "My open requests",
                "What you asked for that is pending or approved",
                _changelist(
                    "approvals_approvalrequest",
                    queue="mine",
                    status__in=f"{Status.PENDING},{Status.APPROVED}",
                ),
                requests.filter(requester=user, status__in=[Status.PENDING, Status.APPROVED]),
                "created_at",
            )
        )
    if policy.may(user, Action.RESOLVE_DISPUTE):
        disputes = policy.visible(
            Dispute.objects.all(), user, customer_path="reconciliation__subscription__customer"
        )
        queues.append(
            _queue(
                "disputes",
                "Open disputes",
                "Disputes routed to sales and not resolved yet",
                _changelist("approvals_dispute", status__exact=Dispute.Status.ROUTED),
                disputes.filter(status=Dispute.Status.ROUTED),
                "created_at",
            )
        )
    if policy.may(user, Action.QSR_ENABLE):
        bugs = policy.visible(QsrDisabledForBug.objects.all(), user, customer_path="customer")
        queues.append(
            _queue(
                "qsr_bugs",
                "QSR disabled for bugs",
                "To re-enable once the bug is fixed; oldest by when QSR was disabled",
                _changelist("subscriptions_qsrdisabledforbug"),
                bugs,
                "qsr_changed_at",
            )
        )
    return queues


# --- Revenue, waivers and refunds per quarter ----------------------------------------------


@dataclass(frozen=True)
class QuarterFigures:
    quarter: date
    currency: str
    revenue: Decimal
    waived: Decimal
    refunded: Decimal

    @property
    def label(self) -> str:
        return figures.quarter_label(self.quarter)

    @property
    def revenue_display(self) -> str:
        return billing.format_money(self.revenue, self.currency)

    @property
    def waived_display(self) -> str:
        return billing.format_money(self.waived, self.currency)

    @property
    def refunded_display(self) -> str:
        return billing.format_money(self.refunded, self.currency)


def money_per_quarter(*, today: date, quarters: int = 4) -> dict[str, list[QuarterFigures]]:
    """Per currency, per calendar quarter (the last `quarters`, this one included): QSR
    revenue (invoiced reconciliations), waived (approved max seats resets, what they
    waived, by approval date) and refunded (processed refunds, by processing date).
    Three queries. Not narrowed to accounts: only `policy.sees_revenue` users read it."""
    starts = figures.last_quarters(today, quarters)
    revenue = figures.qsr_revenue(since=starts[0])
    resets = ApprovalRequest.objects.filter(
        kind=Kind.MAX_SEATS_RESET,
        status__in=[Status.APPROVED, Status.EXECUTED],
        decided_at__date__gte=starts[0],
    )
    waived = figures.per_quarter(resets, when="decided_at", amount="amount_at_stake")
    refunds = ApprovalRequest.objects.filter(
        kind=Kind.QSR_REFUND, status=Status.EXECUTED, executed_at__date__gte=starts[0]
    )
    refunded = figures.per_quarter(refunds, when="executed_at", amount="amount_at_stake")
    currencies = sorted({c for f in (revenue, waived, refunded) for _, c in f})
    zero = Decimal(0)
    return {
        c: [
            QuarterFigures(
                q,
                c,
                revenue.get((q, c), zero),
                waived.get((q, c), zero),
                refunded.get((q, c), zero),
            )
            for q in starts
        ]
        for c in currencies
    }


# --- The page -----------------------------------------------------------------------------


def index_context(request: HttpRequest) -> dict[str, Any]:
    """What the home page shows `request.user`."""
    user = request.user
    if not user.is_authenticated or (not policy.roles_of(user) and not user.is_superuser):
        return {}
    today = timezone.localdate()
    bug_count, bugs = figures.qsr_disabled_for_bugs(user=user)
    context: dict[str, Any] = {
        "queues": work_queues(user),
        "due": figures.reconciliations_due(user=user, today=today),
        "due_until": today + timedelta(days=figures.DUE_WINDOW_DAYS - 1),
        "bug_count": bug_count,
        "bugs": bugs,
        "bugs_url": _changelist("subscriptions_qsrdisabledforbug"),
    }
    if policy.sees_every_account(user):
        context["night"] = figures.last_night(today=today)
        context["job_runs_url"] = _changelist("subscriptions_jobrun")
    if policy.sees_revenue(user):
        per_currency = money_per_quarter(today=today)
        context["money"] = [
            {"currency": c, "rows": rows, "chart": revenue_chart(c, rows)}
            for c, rows in per_currency.items()
        ]
    return {"dashboard": context}
