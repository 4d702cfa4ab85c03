"""Seat usage ingestion (DOMAIN.md "Core records: seat usage report").

A daily CSV comes in one of two formats, told apart by the header row:

- SaaS: ``namespace,date,billable_users`` (the group path of a SaaS namespace);
- self-managed: ``license_key,instance_id,date,billable_users,max_historical_user_count``.

`parse_usage_csv` (`parse`, with `lines` reading the file's lines) checks the whole file
and stages its rows in the database; `usage_import` (`write`) then writes them; `common`
holds what the two share: the formats, the batch size, a validated row, the staged rows.

Ingestion does not touch `Namespace.seats_in_use` / `max_seats_used`: the nightly seat
refresh folds the reports into those.
"""

from subscriptions.services.usage.common import (
    BATCH_SIZE,
    HEADERS,
    SAAS,
    SELF_MANAGED,
    StagedUsage,
    UsageRow,
)
from subscriptions.services.usage.lines import CHUNK_SIZE, LINE_MAX_LENGTH
from subscriptions.services.usage.parse import (
    INSTANCE_ID_MAX_LENGTH,
    PROBLEMS_LISTED,
    UsageImportError,
    parse_usage_csv,
    usage_max_billable_users,
)
from subscriptions.services.usage.write import (
    REASON_MAX_LENGTH,
    UsageImportResult,
    usage_import,
)

__all__ = [
    "BATCH_SIZE",
    "CHUNK_SIZE",
    "HEADERS",
    "INSTANCE_ID_MAX_LENGTH",
    "LINE_MAX_LENGTH",
    "PROBLEMS_LISTED",
    "REASON_MAX_LENGTH",
    "SAAS",
    "SELF_MANAGED",
    "StagedUsage",
    "UsageImportError",
    "UsageImportResult",
    "UsageRow",
    "parse_usage_csv",
    "usage_import",
    "usage_max_billable_users",
]
