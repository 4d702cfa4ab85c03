"""Seat usage ingestion (DOMAIN.md "Core records: seat usage report").

A daily CSV comes in one of two formats, told apart by the header row:

- SaaS: ``namespace,date,billable_users`` (the group path of a SaaS namespace);
- self-managed: ``license_key,instance_id,date,billable_users,max_historical_user_count``.

`parse_usage_csv` streams the file and collects every bad line before anything is
written; a file with one bad line is rejected whole. Each line is checked as it is read
and handed on to a temporary table of the database connection, where the checks that
need the whole file (unknown namespaces, duplicate lines) run in SQL: memory stays flat
whatever the size of the file. Lines are numbered from the header, line 1, as an editor
counts them; a byte that is not UTF-8, a field longer than the csv module's field limit
and a line longer than LINE_MAX_LENGTH are bad lines of their own, on their own line. A
count above USAGE_MAX_BILLABLE_USERS is a bad line (a broken export: priced, it would
overflow the ledger), and so is a max historical count below the day's billable users.
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

import codecs
import csv
import operator
import re
import uuid
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
# A binary file is read this many bytes at a time.
CHUNK_SIZE = 1 << 16
# The longest line (bytes of a binary file, characters of a text one), or record when a
# quoted field runs over several lines. No usage line comes near it; holding longer ones
# would let a file without line breaks, or with a quote left open, fill the memory.
LINE_MAX_LENGTH = 1 << 20
# A rejected file lists its first bad lines only: a broken export can have millions.
PROBLEMS_LISTED = 1_000
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
    """The file is rejected whole. `problems` lists the bad lines, (line, reason): all of
    them, or the first PROBLEMS_LISTED when there are more; `count` counts them all."""

    def __init__(self, problems: Iterable[tuple[int, str]], *, count: int = 0):
        self.problems: list[tuple[int, str]] = sorted(problems)
        self.count = max(count, len(self.problems))
        listed = len(self.problems)
        lines = "\n".join(f"line {line}: {reason}" for line, reason in self.problems)
        some = f", the first {listed} listed" if listed < self.count else ""
        super().__init__(
            f"The file was not imported ({self.count} bad line"
            f"{'s' if self.count != 1 else ''}{some}):\n{lines}",
            field="file",
            code="usage_import",
        )


class StagedUsage:
    """The rows of a validated usage file (see `parse_usage_csv`), held in a temporary
    table of the database connection until `usage_import` writes them and drops the
    table (or the connection closes): a file of millions of rows never sits in memory.
    """

    def __init__(self, *, table: str, count: int, batches: int):
        self.table: str | None = table
        self.count = count
        self.batches = batches

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[UsageRow]:
        """The rows, one batch in memory at a time, by namespace and date."""
        table = self.checked_table()
        with connection.cursor() as cursor:
            for batch in range(self.batches):
                cursor.execute(
                    f"SELECT {_ROW_COLUMNS} FROM {table} WHERE batch = %s "
                    "ORDER BY namespace_id, date, line",
                    [batch],
                )
                yield from (UsageRow(*row) for row in cursor.fetchall())

    def checked_table(self) -> str:
        if self.table is None:
            raise DomainError(
                "These usage rows were imported already: read the file again.", field="rows"
            )
        return self.table


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


def parse_usage_csv(
    file_obj, *, today: date | None = None
) -> tuple[str, StagedUsage | list[UsageRow]]:
    """Read a usage CSV (binary file object, or text) into (kind, rows).

    Raises UsageImportError listing the bad lines (header = line 1). A binary file is
    decoded line by line, so a byte that is not UTF-8 is reported on its line; a text
    file object decodes ahead of the reader, so there the line of such a byte is a guess.
    The rows are staged in the database (StagedUsage); a header-only file gives no rows.
    """
    bound = usage_max_billable_users()
    today = today or timezone.localdate()
    lines = _Lines(file_obj)
    kind = _read_header(lines)
    records = _read_records(lines, kind, today, bound)
    first = next(records, None)
    if first is None:
        return kind, []

    suffix = uuid.uuid4().hex
    staged, checked = f"usage_staged_{suffix}", f"usage_checked_{suffix}"
    # One transaction: a rejected file leaves no table behind. The checked table outlives
    # it, for usage_import.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE {staged} ({_STAGED_DDL})")
        with cursor.copy(f"COPY {staged} ({_STAGED_COLUMNS}) FROM STDIN") as copy:
            copy.write_row(first)
            for record in records:
                copy.write_row(record)
        cursor.execute(
            _CHECK.format(
                checked=checked,
                staged=staged,
                column="name" if kind == SAAS else "license_key",
            ),
            {"kind": kind, "batch_size": BATCH_SIZE},
        )
        cursor.execute(f"DROP TABLE {staged}")
        cursor.execute(
            f"SELECT count(*), count(*) FILTER (WHERE {_BAD}), max(batch) FROM {checked}"
        )
        count, bad, last_batch = cursor.fetchone()
        if bad:
            cursor.execute(
                f"SELECT line, key, key IS NOT NULL AND namespace_id IS NULL, reasons, "
                f"first_line FROM {checked} WHERE {_BAD} ORDER BY line LIMIT %s",
                [PROBLEMS_LISTED],
            )
            problems = [_problem(kind, *row) for row in cursor.fetchall()]
            raise UsageImportError(problems, count=bad)
        if last_batch:  # a single batch reads the whole table
            cursor.execute(f"CREATE INDEX ON {checked} (batch)")
    return kind, StagedUsage(table=checked, count=count, batches=last_batch + 1)


# One row per record: what the line says (`reasons`: why it is bad, as far as the line
# alone tells; `key` NULL when it names no namespace).
_STAGED_COLUMNS = "line, key, instance_id, date, billable_users, max_historical_user_count, reasons"
_STAGED_DDL = (
    "line integer, key text, instance_id text, date date, billable_users integer, "
    "max_historical_user_count integer, reasons text"
)
# The checks across lines, and the import's batches: every (namespace, date) in one
# batch, at most BATCH_SIZE of them a batch, in key order.
_CHECK = f"""
CREATE TEMP TABLE {{checked}} AS
SELECT staged.*, namespace.id AS namespace_id,
    CASE WHEN staged.key IS NOT NULL AND staged.date IS NOT NULL THEN
        min(staged.line) OVER (PARTITION BY staged.key, staged.instance_id, staged.date)
    END AS first_line,
    (dense_rank() OVER (ORDER BY namespace.id, staged.date) - 1) / %(batch_size)s AS batch
FROM {{staged}} AS staged
LEFT JOIN {Namespace._meta.db_table} AS namespace
    ON namespace.kind = %(kind)s AND namespace.{{column}} = staged.key
"""
_BAD = "(reasons IS NOT NULL OR (key IS NOT NULL AND namespace_id IS NULL) OR first_line <> line)"


def _problem(kind, line, key, unknown, reasons, first_line) -> tuple[int, str]:
    found = []
    if unknown:
        found.append(f"unknown {'namespace' if kind == SAAS else 'license key'} {key!r}")
    if reasons:
        found.append(reasons)
    if first_line is not None and first_line != line:
        found.append(f"duplicate of line {first_line} (same {_subject(kind)} and date)")
    return line, "; ".join(found)


class _Unreadable(Exception):
    """The csv reader cannot finish a record: it is a bad line, and reading goes on."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


_OVERLONG = object()  # a line too long to keep: its text is dropped
_UNDECODABLE = object()  # a text file object could not decode what came next


class _Lines:
    """The physical lines of a usage file, for csv.reader, numbered as it counts them.

    A TextIOWrapper decodes a chunk ahead of the line being read, and its error does not
    say which line: here each line is decoded on its own. A line that is not UTF-8 does
    not stop the reading: it goes on to the reader decoded with replacement characters
    (so the record keeps its shape) and into `troubles`, and its record is reported, not
    read. Iterating again after an _Unreadable error goes on at the next line.
    """

    def __init__(self, file_obj):
        self.number = 0
        self.troubles: dict[int, str] = {}  # line -> reason, in the current record
        self._record_start = 1
        self._record_length = 0
        if isinstance(file_obj.read(0), bytes):
            self._pieces, self._unit = _byte_lines(file_obj), "bytes"
        else:
            self._pieces, self._unit = _text_lines(file_obj), "characters"

    def next_record(self) -> dict[int, str]:
        """Start a record; return the troubles of the one just read (not to be changed)."""
        troubles = self.troubles
        if troubles:
            self.troubles = {}
        self._record_start = self.number + 1
        self._record_length = 0
        return troubles

    def __iter__(self) -> Iterator[str]:
        for piece in self._pieces:
            self.number += 1
            if piece is _OVERLONG:
                raise _Unreadable(f"line longer than {LINE_MAX_LENGTH} {self._unit}")
            if piece is _UNDECODABLE:
                raise _Unreadable("is not UTF-8 text")
            self._record_length += len(piece)
            if self._record_length > LINE_MAX_LENGTH:
                # Only a quoted field over several lines gets here.
                raise _Unreadable(
                    f"the record from line {self._record_start} is longer than "
                    f"{LINE_MAX_LENGTH} {self._unit} (a quote left open?)"
                )
            if isinstance(piece, bytes):
                if self.number == 1 and piece.startswith(codecs.BOM_UTF8):
                    piece = piece[len(codecs.BOM_UTF8) :]
                try:
                    text = piece.decode()
                except UnicodeDecodeError as error:
                    self.troubles[self.number] = (
                        f"unreadable: is not UTF-8 text (byte 0x{piece[error.start]:02X} "
                        f"at column {error.start + 1})"
                    )
                    text = piece.decode(errors="replace")
            else:
                text = piece
            if "\x00" in text:
                # PostgreSQL text cannot hold it.
                self.troubles.setdefault(self.number, "unreadable: contains a NUL character")
                text = text.replace("\x00", "\ufffd")
            yield text


def _byte_lines(stream) -> Iterator[bytes | object]:
    """The lines of a binary stream, endings kept, split at \n, \r\n or \r as csv wants
    (what a TextIOWrapper with newline="" does); _OVERLONG for a line too long."""
    pending = b""
    skipping = False  # in a line too long: drop it up to its end
    drop_lf = False  # a line too long ended in "\r": drop the "\n" of a "\r\n"
    while chunk := stream.read(CHUNK_SIZE):
        if drop_lf:
            drop_lf, chunk = False, chunk.removeprefix(b"\n")
            if not chunk:
                continue
        lines = (pending + chunk).splitlines(keepends=True)
        # The last line may go on in the next chunk ("\r" may be half of "\r\n").
        pending = b"" if lines[-1].endswith(b"\n") else lines.pop()
        for line in lines:
            if skipping:
                skipping = False  # the end of the line too long
            elif len(line) > LINE_MAX_LENGTH:
                yield _OVERLONG
            else:
                yield line
        if len(pending) > LINE_MAX_LENGTH:
            if not skipping:
                yield _OVERLONG
            # Dropped; a "\r" at its end is the end of the line.
            drop_lf = pending.endswith(b"\r")
            skipping, pending = not drop_lf, b""
    if pending and not skipping:
        yield pending


def _text_lines(stream) -> Iterator[str | object]:
    """The lines of a text stream; _OVERLONG for a line too long."""
    try:
        while line := stream.readline(LINE_MAX_LENGTH + 1):
            if len(line) <= LINE_MAX_LENGTH:
                yield line
                continue
            yield _OVERLONG
            while line and not line.endswith(("\n", "\r")):
                line = stream.readline(LINE_MAX_LENGTH + 1)
    except UnicodeDecodeError:
        yield _UNDECODABLE


def _unreadable(error: Exception) -> str:
    if isinstance(error, _Unreadable):
        return f"unreadable: {error.reason}"
    if "field larger than field limit" in str(error):
        return f"unreadable: a field is longer than {csv.field_size_limit()} characters"
    return f"unreadable: {error}"


def _read_header(lines: _Lines) -> str:
    reader = csv.reader(lines)
    while True:
        try:
            cells = next(reader, None)
        except (_Unreadable, csv.Error) as error:
            raise UsageImportError(_troubles(lines, error).items()) from error
        troubles = lines.next_record()
        if troubles:
            raise UsageImportError(troubles.items())
        if cells is None:
            raise UsageImportError(
                [(1, f"the file is empty; expected a header row: {_expected_headers()}")]
            )
        if not any(cell.strip() for cell in cells):
            continue
        header = tuple(cell.strip().lstrip("\ufeff").lower() for cell in cells)
        for kind, expected in HEADERS.items():
            if header == expected:
                return kind
        found = ",".join(header)
        raise UsageImportError(
            [(lines.number, f"unknown header {found!r}; expected {_expected_headers()}")]
        )


def _troubles(lines: _Lines, error: Exception) -> dict[int, str]:
    """The troubles of a record the reader gave up on, with the reason it gave up."""
    troubles = dict(lines.next_record())
    line = lines.number
    troubles[line] = "; ".join(filter(None, (troubles.get(line), _unreadable(error))))
    return troubles


def _expected_headers() -> str:
    return " or ".join(f"{','.join(columns)!r} ({kind})" for kind, columns in HEADERS.items())


def _read_records(lines: _Lines, kind: str, today: date, bound: int) -> Iterator[tuple]:
    """One staging row (_STAGED_COLUMNS) per record after the header; blank lines give
    none. Counts above `bound` are bad lines."""
    columns = len(HEADERS[kind])
    # A file holds a few distinct days: each is checked once.
    dates: dict[str, tuple[date | None, tuple[str, ...]]] = {}
    reader = csv.reader(lines)
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except (_Unreadable, csv.Error) as error:
            for line, reason in sorted(_troubles(lines, error).items()):
                yield line, None, "", None, None, None, reason
            reader = csv.reader(lines)  # goes on at the next line
            continue
        troubles = lines.next_record()
        if troubles:
            for line, reason in sorted(troubles.items()):
                yield line, None, "", None, None, None, reason
            continue
        line = lines.number
        if not "".join(cells).strip():
            continue  # blank lines (a trailing newline, say) carry no report
        if len(cells) != columns:
            yield line, None, "", None, None, None, f"expected {columns} columns, got {len(cells)}"
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
            if len(dates) > 1_000:
                dates.clear()  # a file of bad dates does not fill the memory
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
        yield line, key or None, instance_id, day, users, max_count, "; ".join(reasons) or None


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


# -- writing -----------------------------------------------------------------------------

_REPORT = SeatUsageReport._meta.db_table
_HISTORY = SeatUsageReport.history.model._meta.db_table
_ROW_COLUMNS = "namespace_id, date, billable_users, max_historical_user_count, instance_id, line"

# The rows of one batch: from arrays (rows given as UsageRow) or from the staged table.
_FROM_ARRAYS = f"""
    SELECT *
    FROM unnest(%(namespace_ids)s::bigint[], %(dates)s::date[], %(users)s::integer[],
                %(max_counts)s::integer[], %(instance_ids)s::text[], %(lines)s::integer[])
        AS t({_ROW_COLUMNS})
"""
_FROM_TABLE = f"SELECT {_ROW_COLUMNS} FROM {{table}} WHERE batch = %(batch)s"

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
    actor=None,
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
        batches = (_arrays(batch, saas=kind == SAAS) for batch in _batches(ordered, BATCH_SIZE))
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
