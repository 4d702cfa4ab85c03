"""Seat refresh: fold the daily usage reports into `seats_in_use` and `max_seats_used`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from django.db import connection, transaction

from portal.policy import Actor
from subscriptions.models import Namespace, Subscription
from subscriptions.services.history import history_snapshot

# Self-managed usage arrives late (DOMAIN.md: notices go out six days after the quarter
# end for that reason), so each night folds the last week of reports, not only today's.
LATE_REPORT_DAYS = 6

_REFRESH_SQL = """
WITH window_reports AS (
    SELECT n.id AS namespace_id, r.date, r.billable_users,
           GREATEST(COALESCE(n.usage_counted_from, '-infinity'::date),
                    COALESCE(s.term_start, '-infinity'::date)) AS counted_from
    FROM subscriptions_namespace n
    LEFT JOIN subscriptions_subscription s
        ON s.namespace_id = n.id AND s.status IN ('active', 'suspended')
    -- Each namespace's window read through its (namespace, date) index: the table has
    -- no index on the date alone, and a scan of the date range reads every report ever
    -- received. OFFSET 0 keeps the planner from flattening this back into that scan.
    CROSS JOIN LATERAL (
        SELECT u.date, u.billable_users
        FROM subscriptions_seatusagereport u
        WHERE u.namespace_id = n.id AND u.date BETWEEN %(since)s AND %(until)s
        OFFSET 0
    ) AS r
    WHERE %(namespaces)s::bigint[] IS NULL OR n.id = ANY(%(namespaces)s::bigint[])
), agg AS (
    SELECT namespace_id,
           (array_agg(billable_users ORDER BY date DESC))[1] AS latest,
           COALESCE(max(billable_users) FILTER (WHERE date >= counted_from), 0) AS peak
    FROM window_reports
    GROUP BY namespace_id
)
UPDATE subscriptions_namespace n SET
    seats_in_use = agg.latest,
    max_seats_used = GREATEST(n.max_seats_used, agg.peak, agg.latest),
    max_seats_used_changed_at = CASE
        WHEN GREATEST(agg.peak, agg.latest) > n.max_seats_used THEN now()
        ELSE n.max_seats_used_changed_at END,
    updated_at = now()
FROM agg
WHERE n.id = agg.namespace_id
  AND (n.seats_in_use <> agg.latest OR GREATEST(agg.peak, agg.latest) > n.max_seats_used)
RETURNING n.id
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
                _REFRESH_SQL,
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
