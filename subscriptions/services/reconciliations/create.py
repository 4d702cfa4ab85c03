"""The create step: every quarter end that has come, of every live subscription, gets its
reconciliation record, `scheduled` or `skipped` with the reason, with the notice and
invoice dates that the next steps go by.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import NamedTuple

from django.db import connection, transaction

from portal.policy import Actor
from subscriptions import billing
from subscriptions.models import Namespace, Reconciliation, Subscription
from subscriptions.services.batches import BatchedStep, Errors, OnBatch, Only
from subscriptions.services.history import history_insert_from, history_params
from subscriptions.services.reconciliations.common import (
    LIVE_SQL,
    QSR_TERMS,
    record_error,
    skip_reason,
    suspensions,
)
from subscriptions.services.sql import pg_array, pg_arrays

SAAS_NOTICE_DELAY = timedelta(days=0)
SELF_MANAGED_NOTICE_DELAY = timedelta(days=6)
INVOICE_DELAY = timedelta(days=7)


def _suspended_on(subscription_ids: Iterable[int], on: date) -> set[int]:
    """Subscriptions whose service is suspended on `on`."""
    return set(suspensions(subscription_ids, since=on, until=on))


# Every subscription of a term shares its quarter ends: work them out once per term start.
_reconciliation_dates = functools.lru_cache(maxsize=1024)(billing.reconciliation_dates)


def _due_quarters(sub: _SubscriptionRow, run_date: date) -> list[tuple[int, date]]:
    dates = _reconciliation_dates(sub.term_start)
    return [(q, d) for q, d in enumerate(dates, start=1) if d <= run_date and d < sub.term_end]


# Live subscriptions with a quarter end up to the run date that has no record yet.
# PostgreSQL's month arithmetic clamps to month end like `billing.add_months`. (A plain
# anti-join: correlated EXISTS per quarter left the planner guessing, and paying for JIT
# compilation, on a table just filled.)
_MISSING_QUARTERS = f"""
SELECT DISTINCT s.id
FROM {Subscription._meta.db_table} s
CROSS JOIN LATERAL (
    SELECT k AS quarter, (s.term_start + make_interval(months => 3 * k))::date AS day
    FROM generate_series(1, 3) AS k
) AS q
WHERE s.status IN ({LIVE_SQL})
  AND (%(only)s::bigint[] IS NULL OR s.id = ANY(%(only)s::bigint[]))
  AND q.day <= %(run_date)s::date AND q.day < s.term_end
  AND NOT EXISTS (
      SELECT 1 FROM {Reconciliation._meta.db_table} r
      WHERE r.subscription_id = s.id AND r.term_start = s.term_start AND r.quarter = q.quarter
  )
ORDER BY s.id
"""


def _create_due_ids(run_date: date, only: Only) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            _MISSING_QUARTERS,
            {"run_date": run_date, "only": None if only is None else pg_array(only)},
        )
        return [row[0] for row in cursor.fetchall()]


def _create_failed(errors: Errors, actor: Actor, sub_id: int, exc: Exception) -> None:
    record_error(errors, "reconciliation_create", None, sub_id, exc)


def reconciliations_create_due(
    *,
    run_date: date,
    actor: Actor,
    on_batch: OnBatch | None = None,
    errors: Errors = None,
    only: Only = None,
) -> Counter[str]:
    """Give every quarter end up to `run_date` of every live subscription its record:
    `scheduled`, or `skipped` with the reason. Returns counts by outcome."""
    return CREATE.run(run_date=run_date, actor=actor, on_batch=on_batch, errors=errors, only=only)


class _SubscriptionRow(NamedTuple):
    pk: int
    term_start: date
    term_end: date
    currency: str
    annual_unit_price: Decimal
    namespace_kind: str
    qsr_state: str
    qsr_paused_until: date | None
    term_months: int
    channel: str
    payment_method: str
    program: str
    offline_license: bool


# The live subscriptions of a batch, locked; one a competing worker holds is left to it.
_LOCK_SUBSCRIPTIONS = f"""
SELECT s.id, s.term_start, s.term_end, s.currency, s.annual_unit_price, n.kind, {QSR_TERMS}
FROM {Subscription._meta.db_table} s
JOIN {Namespace._meta.db_table} n ON n.id = s.namespace_id
WHERE s.id = ANY(%(ids)s::bigint[]) AND s.status IN ({LIVE_SQL})
ORDER BY s.id
FOR UPDATE OF s SKIP LOCKED
"""


@functools.cache
def _insert_reconciliations_sql() -> str:
    # A quarter another worker recorded meanwhile is left alone (ON CONFLICT).
    return f"""
WITH created AS (
    INSERT INTO {Reconciliation._meta.db_table} (
        created_at, updated_at, subscription_id, term_start, quarter, reconciliation_date,
        notify_date, invoice_date, status, skip_reason, currency, annual_unit_price,
        refunded_seats, failure_reason, attempts)
    SELECT now(), now(), v.*, 0, '', 0
    FROM unnest(%(v0)s::bigint[], %(v1)s::date[], %(v2)s::smallint[], %(v3)s::date[],
                %(v4)s::date[], %(v5)s::date[], %(v6)s::varchar[], %(v7)s::varchar[],
                %(v8)s::varchar[], %(v9)s::numeric[]) AS v
    ON CONFLICT (subscription_id, term_start, quarter) DO NOTHING
    RETURNING *
), history AS (
    {history_insert_from(Reconciliation, cte="created", history_type="+")}
)
SELECT id, status, skip_reason FROM created
"""


def _create_batch(ids: Sequence[int], *, run_date: date, actor: Actor) -> Counter[str]:
    # Plain rows and one INSERT ... FROM unnest: this step touches every subscription of
    # the book four times a year, so it stays clear of per-row model objects.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_LOCK_SUBSCRIPTIONS, {"ids": pg_array(ids)})
        subs = list(map(_SubscriptionRow._make, cursor.fetchall()))
        due = [
            (sub, quarter, when) for sub in subs for quarter, when in _due_quarters(sub, run_date)
        ]
        suspended: dict[date, set[int]] = {}
        for when in {when for _, _, when in due}:
            suspended[when] = _suspended_on([s.pk for s, _, w in due if w == when], when)
        rows = []
        for sub, quarter, when in due:
            self_managed = sub.namespace_kind == Namespace.Kind.SELF_MANAGED
            notify = when + (SELF_MANAGED_NOTICE_DELAY if self_managed else SAAS_NOTICE_DELAY)
            reason = skip_reason(sub, on=when, suspended=sub.pk in suspended[when])
            rows.append(
                (sub.pk, sub.term_start, quarter, when, notify, notify + INVOICE_DELAY,
                 "skipped" if reason else "scheduled", reason, sub.currency,
                 sub.annual_unit_price)
            )  # fmt: skip
        if not rows:
            return Counter()
        arrays = pg_arrays(rows, 10)
        cursor.execute(
            _insert_reconciliations_sql(),
            {
                **{f"v{i}": array for i, array in enumerate(arrays)},
                **history_params(reason=f"nightly {run_date}", user=actor),
            },
        )
        created = cursor.fetchall()
    return Counter("skipped:" + reason if reason else "created" for _, _, reason in created)


CREATE = BatchedStep("reconciliation_create", _create_due_ids, _create_batch, _create_failed)
