"""Seat refresh: fold the daily usage reports into `seats_in_use` and `max_seats_used`."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import date, timedelta

from django.db import connection, transaction

from portal.policy import Actor
from subscriptions.models import Namespace, SeatUsageReport, Subscription
from subscriptions.services.history import history_snapshot
from subscriptions.services.sql import column, pk_array, table

# Self-managed usage arrives late (DOMAIN.md: notices go out six days after the quarter
# end for that reason), so each night folds the last week of reports, not only today's.
LATE_REPORT_DAYS = 6
LIVE = (Subscription.Status.ACTIVE, Subscription.Status.SUSPENDED)


@functools.cache
def _refresh_sql() -> str:
    """The refresh of every namespace (or those given) in one UPDATE: set-based, because
    the nightly run folds a week of reports into each of tens of thousands of rows."""
    ns, sub, report = Namespace, Subscription, SeatUsageReport
    ns_id, counted_from = column(ns, "id"), column(ns, "usage_counted_from")
    in_use, max_used = column(ns, "seats_in_use"), column(ns, "max_seats_used")
    changed_at = column(ns, "max_seats_used_changed_at")
    sub_ns, term_start = column(sub, "namespace"), column(sub, "term_start")
    report_ns, report_date = column(report, "namespace"), column(report, "date")
    users = column(report, "billable_users")
    live = ", ".join(f"'{status.value}'" for status in LIVE)
    ids = pk_array(ns)
    return f"""
WITH window_reports AS (
    SELECT n.{ns_id} AS namespace_id, r.date, r.billable_users,
           GREATEST(COALESCE(n.{counted_from}, '-infinity'::date),
                    COALESCE(s.{term_start}, '-infinity'::date)) AS counted_from
    FROM {table(ns)} n
    LEFT JOIN {table(sub)} s
        ON s.{sub_ns} = n.{ns_id} AND s.{column(sub, "status")} IN ({live})
    -- Each namespace's window read through its (namespace, date) index: the table has
    -- no index on the date alone, and a scan of the date range reads every report ever
    -- received. OFFSET 0 keeps the planner from flattening this back into that scan.
    CROSS JOIN LATERAL (
        SELECT u.{report_date} AS date, u.{users} AS billable_users
        FROM {table(report)} u
        WHERE u.{report_ns} = n.{ns_id} AND u.{report_date} BETWEEN %(since)s AND %(until)s
        OFFSET 0
    ) AS r
    WHERE %(namespaces)s::{ids} IS NULL OR n.{ns_id} = ANY(%(namespaces)s::{ids})
), agg AS (
    SELECT namespace_id,
           (array_agg(billable_users ORDER BY date DESC))[1] AS latest,
           COALESCE(max(billable_users) FILTER (WHERE date >= counted_from), 0) AS peak
    FROM window_reports
    GROUP BY namespace_id
)
UPDATE {table(ns)} n SET
    {in_use} = agg.latest,
    {max_used} = GREATEST(n.{max_used}, agg.peak, agg.latest),
    {changed_at} = CASE
        WHEN GREATEST(agg.peak, agg.latest) > n.{max_used} THEN now()
        ELSE n.{changed_at} END,
    {column(ns, "updated_at")} = now()
FROM agg
WHERE n.{ns_id} = agg.namespace_id
  AND (n.{in_use} <> agg.latest OR GREATEST(agg.peak, agg.latest) > n.{max_used})
RETURNING n.{ns_id}
"""


def seats_refresh(*, run_date: date, actor: Actor, only: Sequence[int] | None = None) -> int:
    """Set each namespace's seats in use to its latest report up to `run_date` and raise
    its high-water mark to the highest report this term. Idempotent; returns how many
    namespaces changed. `only` limits it to these subscriptions' namespaces.

    Reports dated before `usage_counted_from` (a max seats reset, a new term) are not
    folded into the high-water mark, so a late refresh cannot undo a waiver.
    """
    with transaction.atomic():
        with connection.cursor() as cursor:
            # JIT off for this transaction: the refresh is costed high enough to be
            # compiled, which takes about a third of the time it then runs.
            cursor.execute("SELECT set_config('jit', 'off', true)")
            cursor.execute(
                _refresh_sql(),
                {
                    "since": run_date - timedelta(days=LATE_REPORT_DAYS),
                    "until": run_date,
                    "namespaces": None
                    if only is None
                    else list(
                        Subscription.objects.filter(pk__in=only).values_list(
                            "namespace_id", flat=True
                        )
                    ),
                },
            )
            ids = [row[0] for row in cursor.fetchall()]
        history_snapshot(Namespace, ids=ids, reason=f"seat refresh {run_date}", user=actor)
    return len(ids)
