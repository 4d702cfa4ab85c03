"""What checking and writing a usage file share: the two formats, the size of the
import's batches, a validated row, and the staged rows of a checked file.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import NamedTuple

from django.db import connection

from portal.errors import DomainError
from subscriptions.models import Namespace

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
# that one statement's arrays and sort stay in memory. Checking and writing read it as
# `common.BATCH_SIZE`, so the staged batches and the written ones stay the same size.
BATCH_SIZE = 10_000
ROW_COLUMNS = "namespace_id, date, billable_users, max_historical_user_count, instance_id, line"


class UsageRow(NamedTuple):
    """One validated line: a namespace's billable users on one day."""

    namespace_id: int
    date: date
    billable_users: int
    max_historical_user_count: int | None = None
    instance_id: str = ""
    line: int = 0  # line of the file; among equal counts the earlier line wins


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
                    f"SELECT {ROW_COLUMNS} FROM {table} WHERE batch = %s "
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
