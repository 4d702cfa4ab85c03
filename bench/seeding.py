"""Bench seeding: a book of N SaaS subscriptions at scale, with SQL.

`seed` empties every billing table (`wipe`) and fills customers, namespaces,
subscriptions and D days of usage with `INSERT ... SELECT generate_series`, timing each
stage (`SeedFigures`); the seeding is not part of the targets. bench/README.md describes
the book.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date


@dataclass
class SeedFigures:
    subscriptions: int
    usage_rows: int = 0
    stages: dict[str, float] = field(default_factory=dict)
    fk_checks_skipped: bool = False

    @property
    def seconds(self) -> float:
        return sum(self.stages.values())


# -- seeding -----------------------------------------------------------------------------

# The book, one row per i = 1..N (customer i, namespace i, subscription i):
# seats from a mix of sizes; usage climbs linearly from 60 % of the seats to `last_users`
# over the first two thirds of the days and stays there: above the paid seats for four in
# five (by 1 seat or 5-20 %), below them (60-85 %) for the fifth. Usage never falls, so
# the latest report is the maximum, and the quarter's peak is reached before R.
_PLAN = """
SELECT i, seats, currency,
       seats * 60 / 100 AS first_users,
       CASE WHEN i %% 5 = 0 THEN seats * (60 + i %% 30) / 100
            ELSE seats + GREATEST(1, seats * (5 + 5 * (i %% 4)) / 100) END AS last_users
FROM (
    SELECT i,
           (ARRAY[5, 10, 20, 50, 100, 250, 1000])[1 + i %% 7] AS seats,
           (ARRAY['USD', 'EUR', 'GBP'])[1 + i %% 3] AS currency
    FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS i
) AS s
"""

_SEED_CUSTOMERS = f"""
INSERT INTO subscriptions_customer (id, created_at, updated_at, name, billing_email, currency,
                                    owner_id)
SELECT i, now(), now(), 'Bench customer ' || lpad(i::text, 7, '0'),
       'billing+' || i || '@bench.example', currency, NULL
FROM ({_PLAN}) AS p
"""

# seats_in_use / max_seats_used are seeded as the seat refresh would leave them (latest =
# highest report), so the timed nights do the reconciliation work, not a first refresh.
_SEED_NAMESPACES = f"""
INSERT INTO subscriptions_namespace (id, created_at, updated_at, customer_id, kind, name,
    license_key, instance_id, seats_in_use, max_seats_used, max_seats_used_changed_at,
    usage_counted_from)
SELECT i, now(), now(), i, 'saas', 'bench-group-' || lpad(i::text, 7, '0'), '', '',
       last_users, last_users, %(r)s::timestamptz, NULL
FROM ({_PLAN}) AS p
"""

_SEED_SUBSCRIPTIONS = f"""
INSERT INTO subscriptions_subscription (id, created_at, updated_at, customer_id, namespace_id,
    plan, seats, annual_unit_price, currency, term_start, term_end, term_months, status,
    qsr_state, qsr_paused_until, qsr_bug_url, qsr_ticket_url, qsr_changed_by_id,
    qsr_changed_at, channel, payment_method, program, offline_license)
SELECT i, now(), now(), i, i,
       CASE WHEN i %% 2 = 0 THEN 'premium' ELSE 'ultimate' END, seats,
       CASE WHEN i %% 2 = 0 THEN 348.00 ELSE 1188.00 END, currency,
       %(term_start)s, %(term_end)s, 12, 'active',
       'enabled', NULL, '', '', NULL, NULL, 'direct', 'card', '', false
FROM ({_PLAN}) AS p
"""

_SEED_USAGE = f"""
INSERT INTO subscriptions_seatusagereport (namespace_id, date, billable_users,
    max_historical_user_count, instance_id, received_at)
SELECT p.i, %(r)s::date - %(days)s + 1 + d,
       CASE WHEN d >= ramp.days THEN p.last_users
            ELSE p.first_users + (p.last_users - p.first_users) * d / ramp.days END,
       NULL, '', now()
FROM ({_PLAN}) AS p,
     (SELECT GREATEST((%(days)s - 2) * 2 / 3, 0) AS days) AS ramp,
     LATERAL generate_series(0, %(days)s - 1) AS d
"""

SEEDED_TABLES = (
    "subscriptions_customer",
    "subscriptions_namespace",
    "subscriptions_subscription",
    "subscriptions_seatusagereport",
)


def billing_tables() -> list[str]:
    """Every table of the billing apps, their history tables included."""
    from django.apps import apps

    tables = []
    for label in ("subscriptions", "approvals"):
        for model in apps.get_app_config(label).get_models():
            if model._meta.managed and not model._meta.proxy:
                tables.append(model._meta.db_table)
    return sorted(set(tables))


def wipe() -> None:
    from django.db import connection

    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"TRUNCATE {', '.join(quote(t) for t in billing_tables())} RESTART IDENTITY CASCADE"
        )


def seed(*, n: int, usage_days: int, r: date, bar_factory) -> SeedFigures:
    from django.db import DatabaseError, connection, transaction

    from subscriptions import billing

    figures = SeedFigures(subscriptions=n, usage_rows=n * usage_days)
    term_start = billing.add_months(r, -3)
    params = {
        "first": 1,
        "last": n,
        "r": r,
        "days": usage_days,
        "term_start": term_start,
        "term_end": billing.add_months(term_start, 12),
    }
    usage_chunk = max(1, min(n, 2_000_000 // max(usage_days, 1)))
    usage_chunks = range(1, n + 1, usage_chunk)
    with bar_factory(total=5 + len(usage_chunks), desc=f"seed {n:,}", unit="stage") as bar:

        def stage(name: str, sql: str | None = None, **extra) -> None:
            bar.set_postfix_str(name)
            started = time.perf_counter()
            if sql:
                with connection.cursor() as cursor:
                    cursor.execute(sql, {**params, **extra})
            figures.stages[name] = figures.stages.get(name, 0.0) + time.perf_counter() - started
            bar.update()

        started = time.perf_counter()
        wipe()
        figures.stages["wipe"] = time.perf_counter() - started
        bar.update()
        with transaction.atomic():
            # The rows are consistent by construction; checking 9M foreign keys one by
            # one would dominate the seeding. Needs a superuser: skipped when refused.
            try:
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute("SET LOCAL session_replication_role = replica")
                figures.fk_checks_skipped = True
            except DatabaseError:
                figures.fk_checks_skipped = False
            stage("customers", _SEED_CUSTOMERS)
            stage("namespaces", _SEED_NAMESPACES)
            stage("subscriptions", _SEED_SUBSCRIPTIONS)
            for first in usage_chunks:
                last = min(n, first + usage_chunk - 1)
                stage("usage reports", _SEED_USAGE, first=first, last=last)
            with connection.cursor() as cursor:
                for table in SEEDED_TABLES[:3]:
                    cursor.execute(
                        "SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", [table, n]
                    )
        started = time.perf_counter()
        bar.set_postfix_str("vacuum analyze")
        with connection.cursor() as cursor:
            # What autovacuum would have done on a live database before the night.
            cursor.execute(f"VACUUM (ANALYZE) {', '.join(SEEDED_TABLES)}")
            cursor.execute("ANALYZE")
        figures.stages["vacuum analyze"] = time.perf_counter() - started
        bar.update()
    return figures
