"""Seat usage ingestion (DOMAIN.md "Core records: seat usage report").

A daily CSV comes in one of two formats, told apart by the header row:

- SaaS: ``namespace,date,billable_users`` (the group path of a SaaS namespace);
- self-managed: ``license_key,instance_id,date,billable_users,max_historical_user_count``.

`parse_usage_csv` reads the whole file and collects every bad line before anything is
written; a file with one bad line is rejected whole. A count above
USAGE_MAX_BILLABLE_USERS is a bad line (a broken export: priced, it would overflow the
ledger), and so is a max historical count below the day's billable users.
`usage_import` then writes one report per namespace and day in a single transaction,
with one set-based upsert (plus its history rows) per batch:

- a re-sent day replaces the day (one row per namespace and day);
- a license reporting from several instances keeps one row a day, the highest
  `billable_users` (with its instance and max historical count); when the instance that
  holds the day re-sends it, its new numbers replace the old ones even if lower.

Ingestion does not touch `Namespace.seats_in_use` / `max_seats_used`: the nightly seat
refresh folds the reports into those.
"""

from __future__ import annotations

import csv
import io
import operator
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import NamedTuple

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.utils import timezone

from subscriptions.checks import usage_bound_problem
from subscriptions.errors import DomainError
from subscriptions.models import Namespace, SeatUsageReport
from subscriptions.services.sql import pg_array

SAAS = Namespace.Kind.SAAS.value
SELF_MANAGED = Namespace.Kind.SELF_MANAGED.value
HEADERS: dict[str, tuple[str, ...]] = {
    SAAS: ("namespace", "date", "billable_users"),
    SELF_MANAGED: (
        "license_key",
        "instance_id",
        "date",
        "billable_users",
        "max_historical_user_count",
    ),
}
# Rows per upsert statement: big enough that round trips do not matter, small enough
# that one statement's arrays and sort stay in memory.
BATCH_SIZE = 10_000
# The range of a PostgreSQL `integer` column (the simulation's input check uses it). The
# import holds counts to the far lower `usage_max_billable_users()`.
MAX_COUNT = 2_147_483_647
INSTANCE_ID_MAX_LENGTH = SeatUsageReport._meta.get_field("instance_id").max_length
REASON_MAX_LENGTH = 100  # simple-history's history_change_reason column
# Serialises imports: each decides replace-or-keep from the rows it reads, so two
# imports of the same day must not interleave.
_ADVISORY_LOCK_KEY = 0x5EA7_05A6
_ORDER = operator.attrgetter("namespace_id", "date", "line")

# ASCII digits only: fromisoformat() also takes full-width or Arabic-Indic digits.
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_NEGATIVE = re.compile(r"-[0-9]+")


class UsageRow(NamedTuple):
    """One validated line: a namespace's billable users on one day."""

    namespace_id: int
    date: date
    billable_users: int
    max_historical_user_count: int | None = None
    instance_id: str = ""
    line: int = 0  # line of the file; among equal counts the earlier line wins


@dataclass(frozen=True, slots=True)
class UsageImportResult:
    """What an import did, row by row: every row created a report, replaced one, or
    changed nothing (an identical re-send, or a lower count from another instance)."""

    created: int
    replaced: int
    unchanged: int
    total: int
    dry_run: bool = False


class UsageImportError(DomainError):
    """The file is rejected whole. `problems` lists every bad line: (line, reason)."""

    def __init__(self, problems: Iterable[tuple[int, str]]):
        self.problems: list[tuple[int, str]] = sorted(problems)
        count = len(self.problems)
        lines = "\n".join(f"line {line}: {reason}" for line, reason in self.problems)
        super().__init__(
            f"The file was not imported ({count} bad line{'s' if count != 1 else ''}):\n{lines}",
            field="file",
            code="usage_import",
        )


def usage_max_billable_users() -> int:
    """The highest count a usage file may carry: settings.USAGE_MAX_BILLABLE_USERS.

    A count above it is a broken export, not a customer: priced, it would overflow the
    ledger. The system check refuses a setting above billing.MAX_SEATS; this repeats it
    for processes that skip the checks.
    """
    bound = getattr(settings, "USAGE_MAX_BILLABLE_USERS", None)
    problem = usage_bound_problem(bound)
    if problem:
        raise ImproperlyConfigured(problem)
    return bound


# -- parsing -----------------------------------------------------------------------------


def parse_usage_csv(file_obj, *, today: date | None = None) -> tuple[str, list[UsageRow]]:
    """Read a usage CSV (text or binary file object) into (kind, rows).

    Raises UsageImportError listing every bad line (header = line 1). Resolves all
    namespace names / license keys with one query. A header-only file gives no rows.
    """
    bound = usage_max_billable_users()
    today = today or timezone.localdate()
    if isinstance(file_obj.read(0), bytes):
        file_obj = io.TextIOWrapper(file_obj, encoding="utf-8-sig", newline="")
    reader = csv.reader(file_obj)
    problems: dict[int, list[str]] = defaultdict(list)
    try:
        kind = _read_header(reader)
        parsed = list(_read_lines(reader, kind, today, bound, problems))
    except (UnicodeDecodeError, csv.Error) as error:
        what = "is not UTF-8 text" if isinstance(error, UnicodeDecodeError) else error
        raise UsageImportError([(reader.line_num + 1, f"unreadable: {what}")]) from error

    ids = _namespace_ids(kind, {key for _, key, *_ in parsed})
    rows = []
    for line, key, instance_id, day, users, max_count in parsed:
        namespace_id = ids.get(key)
        if namespace_id is None:
            what = "namespace" if kind == SAAS else "license key"
            problems[line].insert(0, f"unknown {what} {key!r}")
        elif line not in problems:
            rows.append(UsageRow(namespace_id, day, users, max_count, instance_id, line))
    if problems:
        raise UsageImportError((line, "; ".join(reasons)) for line, reasons in problems.items())
    return kind, rows


def _read_header(reader: Iterator[list[str]]) -> str:
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        header = tuple(cell.strip().lstrip("\ufeff").lower() for cell in cells)
        for kind, expected in HEADERS.items():
            if header == expected:
                return kind
        found = ",".join(header)
        raise UsageImportError(
            [(reader.line_num, f"unknown header {found!r}; expected {_expected_headers()}")]
        )
    raise UsageImportError(
        [(1, f"the file is empty; expected a header row: {_expected_headers()}")]
    )


def _expected_headers() -> str:
    return " or ".join(f"{','.join(columns)!r} ({kind})" for kind, columns in HEADERS.items())


def _read_lines(reader, kind: str, today: date, bound: int, problems: dict[int, list[str]]):
    """Yield (line, key, instance_id, date, billable_users, max_count) for every line that
    names a namespace (resolved later, all at once); record the reasons of every bad line
    in `problems`. Counts above `bound` are bad lines."""
    columns = len(HEADERS[kind])
    seen: dict[tuple[str, str, date], int] = {}
    # A file holds a few distinct days: each is checked once.
    dates: dict[str, tuple[date | None, tuple[str, ...]]] = {}
    for cells in reader:
        line = reader.line_num
        if not "".join(cells).strip():
            continue  # blank lines (a trailing newline, say) carry no report
        if len(cells) != columns:
            problems[line].append(f"expected {columns} columns, got {len(cells)}")
            continue
        cells = list(map(str.strip, cells))
        reasons: list[str] = []
        if kind == SAAS:
            key, day_text, users_text = cells
            instance_id, max_text = "", None
        else:
            key, instance_id, day_text, users_text, max_text = cells
        if not key:
            reasons.append("missing namespace" if kind == SAAS else "missing license key")
        if kind == SELF_MANAGED and not instance_id:
            reasons.append("missing instance_id")
        elif len(instance_id) > INSTANCE_ID_MAX_LENGTH:
            reasons.append(f"instance_id longer than {INSTANCE_ID_MAX_LENGTH} characters")
        if day_text not in dates:
            found: list[str] = []
            dates[day_text] = (_date(day_text, today, found), tuple(found))
        day, day_reasons = dates[day_text]
        reasons.extend(day_reasons)
        users = _count(users_text, "billable_users", bound, reasons)
        max_count = None
        if max_text is not None:
            max_count = _count(max_text, "max_historical_user_count", bound, reasons)
            # The instance's historical peak includes today's users.
            if users is not None and max_count is not None and max_count < users:
                reasons.append(
                    f"max_historical_user_count {max_count} is below billable_users {users}"
                )
        if key and day is not None:
            first = seen.setdefault((key, instance_id, day), line)
            if first != line:
                reasons.append(f"duplicate of line {first} (same {_subject(kind)} and date)")
        if reasons:
            problems[line] = reasons
        if key:
            yield line, key, instance_id, day, users, max_count


def _subject(kind: str) -> str:
    return "namespace" if kind == SAAS else "license key and instance"


def _date(text: str, today: date, reasons: list[str]) -> date | None:
    if not text:
        reasons.append("missing date")
        return None
    try:
        # fromisoformat alone also takes 20260201 or 2026-W05-1; the file format is
        # YYYY-MM-DD only.
        day = date.fromisoformat(text) if _DATE.fullmatch(text) else None
    except ValueError:
        day = None
    if day is None:
        reasons.append(f"bad date {text!r} (expected YYYY-MM-DD)")
    elif day > today:
        reasons.append(f"date {day} is in the future")
    return day


def _count(text: str, column: str, bound: int, reasons: list[str]) -> int | None:
    """The count in `text`, or None with the reason in `reasons`."""
    # isdigit() alone also takes full-width or superscript digits; with isascii() it is
    # 0-9 only.
    if text.isdigit() and text.isascii():
        # Compared by length first: int() refuses strings of over 4,300 digits.
        digits = text.lstrip("0") or "0"
        if len(digits) <= len(str(bound)) and int(digits) <= bound:
            return int(digits)
        reasons.append(f"{column} {text} is above the limit {bound} (USAGE_MAX_BILLABLE_USERS)")
    elif not text:
        reasons.append(f"missing {column}")
    elif _NEGATIVE.fullmatch(text):
        reasons.append(f"negative {column} {text}")
    else:
        reasons.append(f"{column} {text!r} is not a whole number")
    return None


def _namespace_ids(kind: str, keys: set[str]) -> dict[str, int]:
    """One query for the whole file: SaaS group path / license key -> namespace id."""
    if not keys:
        return {}
    column = "name" if kind == SAAS else "license_key"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {column}, id FROM {Namespace._meta.db_table} "
            f"WHERE kind = %s AND {column} = ANY(%s::text[])",
            [kind, pg_array(keys)],
        )
        return dict(cursor.fetchall())


# -- writing -----------------------------------------------------------------------------

_REPORT = SeatUsageReport._meta.db_table
_HISTORY = SeatUsageReport.history.model._meta.db_table

# One batch of rows; `best` folds several instances of one license and day into the
# highest.
_INCOMING = """
WITH incoming AS (
    SELECT *
    FROM unnest(%(namespace_ids)s::bigint[], %(dates)s::date[], %(users)s::integer[],
                %(max_counts)s::integer[], %(instance_ids)s::text[], %(lines)s::integer[])
        AS t(namespace_id, date, billable_users, max_historical_user_count, instance_id, line)
),
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
_COUNT = f"""{_INCOMING},
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
_WRITE = f"""{_INCOMING},
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
    rows: Iterable[UsageRow],
    kind: str,
    actor=None,
    source: str = "",
    dry_run: bool = False,
) -> UsageImportResult:
    """Write the reports of validated rows (see `parse_usage_csv`) in one transaction.

    `dry_run` computes the same counts without writing. History rows carry `actor` and
    the reason "usage import <source>".
    """
    if kind not in HEADERS:
        raise DomainError(f"Unknown usage report kind {kind!r}.", field="kind")
    # Sorted by key, so a batch boundary never splits one license's day, and batches
    # lock rows in one order.
    ordered = sorted(rows, key=_ORDER)
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
        for batch in _batches(ordered, BATCH_SIZE):
            cursor.execute(
                _COUNT if dry_run else _WRITE, {**params, **_arrays(batch, saas=kind == SAAS)}
            )
            batch_created, batch_replaced = cursor.fetchone()
            created += batch_created
            replaced += batch_replaced
    return UsageImportResult(
        created=created,
        replaced=replaced,
        unchanged=len(ordered) - created - replaced,
        total=len(ordered),
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
