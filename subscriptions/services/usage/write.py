"""Writing checked usage rows: `usage_import` writes one report per namespace and day in
a single transaction, with one set-based upsert (plus its history rows) per batch:

- a re-sent day replaces the day (one row per namespace and day);
- a license reporting from several instances keeps one row a day, the highest
  `billable_users` (with its instance and max historical count); when the instance that
  holds the day re-sends it, its new numbers replace the old ones even if lower.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from portal.errors import DomainError
from portal.policy import Actor
from subscriptions.models import SeatUsageReport
from subscriptions.services.sql import pg_array
from subscriptions.services.usage import common
from subscriptions.services.usage.common import (
    HEADERS,
    ROW_COLUMNS,
    SAAS,
    StagedUsage,
    UsageRow,
)

REASON_MAX_LENGTH = 100  # simple-history's history_change_reason column
# Serialises imports: each decides replace-or-keep from the rows it reads, so two
# imports of the same day must not interleave.
_ADVISORY_LOCK_KEY = 0x5EA7_05A6
_ORDER = operator.attrgetter("namespace_id", "date", "line")


@dataclass(frozen=True, slots=True)
class UsageImportResult:
    """What an import did, row by row: every row created a report, replaced one, or
    changed nothing (an identical re-send, or a lower count from another instance)."""

    created: int
    replaced: int
    unchanged: int
    total: int
    dry_run: bool = False


_REPORT = SeatUsageReport._meta.db_table
_HISTORY = SeatUsageReport.history.model._meta.db_table

# The rows of one batch: from arrays (rows given as UsageRow) or from the staged table.
_FROM_ARRAYS = f"""
    SELECT *
    FROM unnest(%(namespace_ids)s::bigint[], %(dates)s::date[], %(users)s::integer[],
                %(max_counts)s::integer[], %(instance_ids)s::text[], %(lines)s::integer[])
        AS t({ROW_COLUMNS})
"""
_FROM_TABLE = f"SELECT {ROW_COLUMNS} FROM {{table}} WHERE batch = %(batch)s"

# One batch of rows; `best` folds several instances of one license and day into the
# highest.
_INCOMING = """
WITH incoming AS ({rows}),
best AS (
    SELECT DISTINCT ON (namespace_id, date) *
    FROM incoming
    ORDER BY namespace_id, date, billable_users DESC, line
)
"""

# Whether the incoming row `{new}` replaces the day's existing `report`. Another instance
# takes the day only with a higher count; the instance that holds it (for SaaS: always,
# instance_id '') replaces its own numbers; an identical re-send changes nothing.
_REPLACES = """(
    (
        {new}.billable_users > report.billable_users
        OR EXISTS (
            SELECT 1 FROM incoming
            WHERE incoming.namespace_id = report.namespace_id
              AND incoming.date = report.date
              AND incoming.instance_id = report.instance_id
        )
    )
    AND ({new}.billable_users, {new}.max_historical_user_count, {new}.instance_id)
        IS DISTINCT FROM
        (report.billable_users, report.max_historical_user_count, report.instance_id)
)"""

# A dry run: what the write would create and replace.
_COUNT = f"""{{incoming}},
decided AS (
    SELECT best.*, report.id IS NULL AS is_new
    FROM best
    -- LATERAL: one index probe per row. A plain join lets the planner, which guesses
    -- ~1,000 rows out of unnest, scan the whole usage table instead.
    LEFT JOIN LATERAL (
        SELECT * FROM {_REPORT} AS r
        WHERE r.namespace_id = best.namespace_id AND r.date = best.date
        LIMIT 1
    ) AS report ON true
    WHERE report.id IS NULL OR {_REPLACES.format(new="best")}
)
SELECT count(*) FILTER (WHERE is_new), count(*) FILTER (WHERE NOT is_new) FROM decided
"""

# The write: the upsert's own conflict check finds the existing report (no separate
# probe), and its WHERE leaves the day alone unless the rule says to replace it.
_COLUMNS = "namespace_id, date, billable_users, max_historical_user_count, instance_id"
_WRITE = f"""{{incoming}},
written AS (
    INSERT INTO {_REPORT} AS report ({_COLUMNS}, received_at)
    SELECT {_COLUMNS}, %(now)s FROM best
    ON CONFLICT (namespace_id, date) DO UPDATE SET
        billable_users = EXCLUDED.billable_users,
        max_historical_user_count = EXCLUDED.max_historical_user_count,
        instance_id = EXCLUDED.instance_id,
        received_at = EXCLUDED.received_at
    WHERE {_REPLACES.format(new="EXCLUDED")}
    RETURNING report.id, {_COLUMNS}, received_at, report.xmax = 0 AS inserted
),
history AS (
    INSERT INTO {_HISTORY} (id, {_COLUMNS}, received_at,
        history_date, history_change_reason, history_type, history_user_id)
    SELECT id, {_COLUMNS}, received_at,
        %(now)s, %(reason)s, CASE WHEN inserted THEN '+' ELSE '~' END, %(user_id)s::integer
    FROM written
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written
"""


def usage_import(
    *,
    rows: StagedUsage | Iterable[UsageRow],
    kind: str,
    actor: Actor | None = None,
    source: str = "",
    dry_run: bool = False,
) -> UsageImportResult:
    """Write the reports of validated rows (see `parse_usage_csv`) in one transaction.

    Staged rows are written batch by batch from their table, which is dropped once done
    (dry run or not): they are imported once. `dry_run` computes the same counts without
    writing. History rows carry `actor` and the reason "usage import <source>".
    """
    if kind not in HEADERS:
        raise DomainError(f"Unknown usage report kind {kind!r}.", field="kind")
    staged = rows if isinstance(rows, StagedUsage) else None
    if staged is not None:
        table = staged.checked_table()
        total = staged.count
        batches: Iterable[dict] = ({"batch": batch} for batch in range(staged.batches))
        incoming = _FROM_TABLE.format(table=table)
    else:
        # Sorted by key, so a batch boundary never splits one license's day, and batches
        # lock rows in one order.
        ordered = sorted(rows, key=_ORDER)
        total = len(ordered)
        batches = (
            _arrays(batch, saas=kind == SAAS) for batch in _batches(ordered, common.BATCH_SIZE)
        )
        incoming = _FROM_ARRAYS
    statement = (_COUNT if dry_run else _WRITE).format(incoming=_INCOMING.format(rows=incoming))
    reason = f"usage import {source}".strip()[:REASON_MAX_LENGTH]
    params = {
        "now": timezone.now(),
        "reason": reason,
        "user_id": getattr(actor, "pk", None),
    }
    created = replaced = 0
    with transaction.atomic(), connection.cursor() as cursor:
        # JIT off for this transaction: PostgreSQL estimates the upsert of a batch high
        # enough to compile it, which takes longer than running it.
        if dry_run:
            cursor.execute("SELECT set_config('jit', 'off', true)")
        else:
            cursor.execute(
                "SELECT set_config('jit', 'off', true), pg_advisory_xact_lock(%s)",
                [_ADVISORY_LOCK_KEY],
            )
        for batch in batches:
            cursor.execute(statement, {**params, **batch})
            batch_created, batch_replaced = cursor.fetchone()
            created += batch_created
            replaced += batch_replaced
        if staged is not None:
            cursor.execute(f"DROP TABLE {table}")
    if staged is not None:
        staged.table = None
    return UsageImportResult(
        created=created,
        replaced=replaced,
        unchanged=total - created - replaced,
        total=total,
        dry_run=dry_run,
    )


def _batches(rows: list[UsageRow], size: int) -> Iterator[list[UsageRow]]:
    batch: list[UsageRow] = []
    for row in rows:
        if len(batch) >= size and (row.namespace_id, row.date) != (
            batch[-1].namespace_id,
            batch[-1].date,
        ):
            yield batch
            batch = []
        batch.append(row)
    if batch:
        yield batch


def _arrays(batch: list[UsageRow], *, saas: bool) -> dict[str, str]:
    columns = list(zip(*batch, strict=True))
    if saas:
        # A SaaS day has no instances: a re-send always replaces it.
        columns[3] = (None,) * len(batch)  # max_historical_user_count
        columns[4] = ("",) * len(batch)  # instance_id
    names = ("namespace_ids", "dates", "users", "max_counts", "instance_ids", "lines")
    return dict(zip(names, map(pg_array, columns), strict=True))
