"""What the reconciliation steps share: which subscriptions are live, the rules that
skip a quarter, the suspended periods, the subscription columns the rules read, and how
a failed reconciliation is recorded for the next nights to retry (MAX_ATTEMPTS in all).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Protocol

from django.db import connection, transaction
from django.db.models import Q

from portal.policy import Actor
from subscriptions.models import Reconciliation, Subscription, Suspension, qsr_ineligibility
from subscriptions.services.batches import Errors
from subscriptions.services.sql import pg_array

MAX_ATTEMPTS = 3
LIVE = (Subscription.Status.ACTIVE, Subscription.Status.SUSPENDED)
# LIVE as SQL, for `s.status IN (...)`.
LIVE_SQL = ", ".join(f"'{status}'" for status in LIVE)
# The columns of a subscription `s` that `skip_reason` reads (QsrTerms).
QSR_TERMS = (
    "s.qsr_state, s.qsr_paused_until, s.term_months, s.channel, s.payment_method, s.program, "
    "s.offline_license"
)


class QsrTerms(Protocol):
    """What decides whether QSR charges a subscription: a Subscription, or a row of it."""

    # Read-only: the rows are named tuples.
    @property
    def qsr_state(self) -> str: ...
    @property
    def qsr_paused_until(self) -> date | None: ...
    @property
    def term_months(self) -> int: ...
    @property
    def channel(self) -> str: ...
    @property
    def payment_method(self) -> str: ...
    @property
    def program(self) -> str: ...
    @property
    def offline_license(self) -> bool: ...


def skip_reason(sub: QsrTerms, *, on: date, suspended: bool) -> str:
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


# Suspensions that stop the service (a free period does not) and overlap [since, until].
_SUSPENSIONS_SQL = f"""
SELECT p.subscription_id, p.suspend_date, p.resume_date
FROM {Suspension._meta.db_table} p
WHERE p.subscription_id = ANY(%(ids)s::bigint[])
  AND p.suspend_date <= %(until)s::date AND p.resume_date > %(since)s::date
  AND p.status <> '{Suspension.Status.CANCELLED}' AND p.mode <> '{Suspension.Mode.FREE_PERIOD}'
ORDER BY p.subscription_id, p.suspend_date
"""

Periods = dict[int, list[tuple[date, date]]]


def suspensions(subscription_ids: Iterable[int], *, since: date, until: date) -> Periods:
    """The suspended periods [suspend, resume) of these subscriptions that overlap
    [since, until], in date order, by subscription."""
    periods: Periods = {}
    with connection.cursor() as cursor:
        cursor.execute(
            _SUSPENSIONS_SQL, {"ids": pg_array(subscription_ids), "since": since, "until": until}
        )
        for sub_id, start, end in cursor.fetchall():
            periods.setdefault(sub_id, []).append((start, end))
    return periods


# A reconciliation whose pricing failed is `failed` with no amount; one whose invoicing
# failed has its amount. Each is retried by the step that failed.
PRICING_FAILED = Q(status="failed", amount__isnull=True)
INVOICING_FAILED = Q(status="failed", amount__isnull=False)


def reconciliation_fail(
    *, reconciliation_id: int, error: Exception, actor: Actor | None = None
) -> None:
    """Record a failed pricing or invoicing attempt; the next nights retry it, up to
    MAX_ATTEMPTS in all."""
    with transaction.atomic():
        recon = (
            Reconciliation.objects.select_for_update()
            .filter(pk=reconciliation_id, status__in=["scheduled", "pending", "failed"])
            .first()
        )
        if recon is None:
            return
        what = "invoicing" if recon.amount is not None else "pricing"
        recon.status = "failed"
        recon.attempts += 1
        recon.failure_reason = str(error)[:2000]
        # simple-history reads why off the instance on save.
        recon._change_reason = f"{what} failed"  # type: ignore[attr-defined]
        recon.save(update_fields=["status", "attempts", "failure_reason", "updated_at"])


def fail_and_record(errors: Errors, step: str, actor: Actor, recon_id: int, exc: Exception) -> None:
    """Mark a reconciliation that failed alone `failed`, for the next nights to retry,
    and add it to the job run's errors."""
    reconciliation_fail(reconciliation_id=recon_id, error=exc, actor=actor)
    record_error(errors, step, recon_id, recon_id, exc)


def record_error(errors: Errors, step: str, recon_id: int | None, pk: int, exc: Exception) -> None:
    """Add a record's failure to the job run's errors. `pk` is the reconciliation when
    `recon_id` is given, else the subscription."""
    if errors is None:
        return
    sub_id = (
        Reconciliation.objects.filter(pk=recon_id).values_list("subscription_id", flat=True).first()
        if recon_id is not None
        else pk
    )
    error = {"step": step, "subscription": sub_id, "error": str(exc)[:2000]}
    if recon_id is not None:
        error["reconciliation"] = recon_id
    errors.append(error)
