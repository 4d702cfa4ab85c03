"""Seat usage files for the import tests: headers, lines, bytes, and the import run on them."""

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from subscriptions.models import SeatUsageReport
from subscriptions.services.usage import (
    UsageImportError,
    UsageImportResult,
    parse_usage_csv,
    usage_import,
)

SAAS_HEADER = "namespace,date,billable_users"
SM_HEADER = "license_key,instance_id,date,billable_users,max_historical_user_count"
History = SeatUsageReport.history.model


def days_ago(n: int):
    return timezone.localdate() - timedelta(days=n)


def csv_file(*lines: str) -> io.StringIO:
    return io.StringIO("\n".join(lines) + "\n")


def run(*lines: str, actor=None, source="usage.csv", dry_run=False) -> UsageImportResult:
    kind, rows = parse_usage_csv(csv_file(*lines))
    return usage_import(rows=rows, kind=kind, actor=actor, source=source, dry_run=dry_run)


def reports():
    """What the import left, as a user would read it in the admin list."""
    return {
        (r.namespace.name, r.date): (r.billable_users, r.max_historical_user_count, r.instance_id)
        for r in SeatUsageReport.objects.select_related("namespace")
    }


BOUND = 1_000_000  # USAGE_MAX_BILLABLE_USERS by default


def above(count, column="billable_users", bound=BOUND) -> str:
    return f"{column} {count} is above the limit {bound} (USAGE_MAX_BILLABLE_USERS)"


NOT_UTF8 = "unreadable: is not UTF-8 text (byte 0xE9 at column 4)"  # the é of b"caf\xe9"
TOO_LONG = f"unreadable: a field is longer than {csv.field_size_limit()} characters"


def usage_bytes(*lines: str | bytes, newline: bool = True) -> bytes:
    """A file of `lines` (str as UTF-8, bytes as they are), "\\n" after each line but, with
    newline=False, the last."""
    data = b"\n".join(line if isinstance(line, bytes) else line.encode() for line in lines)
    return data + b"\n" if newline else data


def alpha_lines(count: int) -> list[str]:
    """`count` good lines of one namespace, one day each (line n+1 is n days ago)."""
    return [f"alpha,{days_ago(n)},{n % 50}" for n in range(1, count + 1)]


def problems_of(data: bytes) -> list[tuple[int, str]]:
    with pytest.raises(UsageImportError) as caught:
        parse_usage_csv(io.BytesIO(data))
    return caught.value.problems
