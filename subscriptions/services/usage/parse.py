"""Checking a usage file: `parse_usage_csv`.

It streams the file and collects every bad line before anything is written; a file with
one bad line is rejected whole. Each line is checked as it is read and handed on to a
temporary table of the database connection, where the checks that need the whole file
(unknown namespaces, duplicate lines) run in SQL: memory stays flat whatever the size of
the file. Lines are numbered from the header, line 1, as an editor counts them; a byte
that is not UTF-8, a field longer than the csv module's field limit and a line longer
than LINE_MAX_LENGTH are bad lines of their own, on their own line (`lines` reads them).
A count above USAGE_MAX_BILLABLE_USERS is a bad line (a broken export: priced, it would
overflow the ledger), and so is a max historical count below the day's billable users.
"""

from __future__ import annotations

import csv
import re
import uuid
from collections.abc import Iterable, Iterator
from datetime import date
from typing import IO, Any, cast

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.utils import timezone

from portal.errors import DomainError
from subscriptions.checks import usage_bound_problem
from subscriptions.models import Namespace, SeatUsageReport
from subscriptions.services.usage import common
from subscriptions.services.usage.common import (
    HEADERS,
    SAAS,
    SELF_MANAGED,
    StagedUsage,
    UsageRow,
)
from subscriptions.services.usage.lines import Lines, Unreadable, unreadable_troubles

# A CharField always has a max_length; the stubs allow None for any field.
INSTANCE_ID_MAX_LENGTH = cast(int, SeatUsageReport._meta.get_field("instance_id").max_length)
# A rejected file lists its first bad lines only: a broken export can have millions.
PROBLEMS_LISTED = 1_000

# ASCII digits only: fromisoformat() also takes full-width or Arabic-Indic digits.
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_NEGATIVE = re.compile(r"-[0-9]+")


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
    return cast(int, bound)  # usage_bound_problem refuses anything but an int


def parse_usage_csv(
    file_obj: IO[Any], *, today: date | None = None
) -> tuple[str, StagedUsage | list[UsageRow]]:
    """Read a usage CSV (binary file object, or text) into (kind, rows).

    Raises UsageImportError listing the bad lines (header = line 1). A binary file is
    decoded line by line, so a byte that is not UTF-8 is reported on its line; a text
    file object decodes ahead of the reader, so there the line of such a byte is a guess.
    The rows are staged in the database (StagedUsage); a header-only file gives no rows.
    """
    bound = usage_max_billable_users()
    today = today or timezone.localdate()
    lines = Lines(file_obj)
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
            {"kind": kind, "batch_size": common.BATCH_SIZE},
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


def _problem(
    kind: str,
    line: int,
    key: str | None,
    unknown: bool,
    reasons: str | None,
    first_line: int | None,
) -> tuple[int, str]:
    found: list[str] = []
    if unknown:
        found.append(f"unknown {'namespace' if kind == SAAS else 'license key'} {key!r}")
    if reasons:
        found.append(reasons)
    if first_line is not None and first_line != line:
        found.append(f"duplicate of line {first_line} (same {_subject(kind)} and date)")
    return line, "; ".join(found)


def _read_header(lines: Lines) -> str:
    reader = csv.reader(lines)
    while True:
        try:
            cells = next(reader, None)
        except (Unreadable, csv.Error) as error:
            raise UsageImportError(unreadable_troubles(lines, error).items()) from error
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


def _expected_headers() -> str:
    return " or ".join(f"{','.join(columns)!r} ({kind})" for kind, columns in HEADERS.items())


def _read_records(lines: Lines, kind: str, today: date, bound: int) -> Iterator[tuple]:
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
        except (Unreadable, csv.Error) as error:
            for line, reason in sorted(unreadable_troubles(lines, error).items()):
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
