"""Benchmark: the nightly run and the usage import at production scale.

    .venv/bin/python bench/nightly.py [--subscriptions N] [--batch-size B [B ...]]
                                      [--usage-days D] [--check-subscriptions M]

Seeds N SaaS subscriptions that all reach the end of their first quarter on the same day
R (with D days of usage each), then times:

1. the nightly run on R (seat refresh, create + notify) and on R + 7 (invoice), step by
   step, as "subscriptions reconciled and invoiced per second" = N / (time R + time R+7);
2. the usage import of one day for every namespace (CSV built in memory, then the real
   `parse_usage_csv` + `usage_import`), in rows per second;
3. database queries per 1,000 subscriptions and per batch, and whether the queries per
   batch stay the same for a small N and other batch sizes (checked on M subscriptions).

It runs against its own database and wipes it first (see `configure_environment`), so
it never touches the demo data. bench/README.md has the targets.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import csv
import functools
import io
import os
import pstats
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_SUBS_PER_SECOND = 2_000
TARGET_USAGE_ROWS_PER_SECOND = 20_000
BENCH_DB_NAME = "portal_bench"


# -- environment (before django.setup) -------------------------------------------------


def configure_environment(args: argparse.Namespace) -> str:
    """Point Django at a database of the bench's own; return a description of it.

    Without DATABASE_URL the embedded server gets a separate database (PORTAL_DB_NAME).
    With DATABASE_URL set, the bench refuses to run unless told explicitly which
    database it may wipe (--database-url or BENCH_DATABASE_URL, whose name must contain
    "bench").
    """
    explicit = args.database_url or os.environ.get("BENCH_DATABASE_URL")
    if os.environ.get("DATABASE_URL") and not explicit:
        sys.exit(
            "bench: DATABASE_URL is set and the bench wipes the database it uses.\n"
            "Name a database for the bench explicitly with --database-url (or "
            "BENCH_DATABASE_URL), e.g. postgres://user@host:5432/portal_bench, or unset "
            "DATABASE_URL to use the embedded PostgreSQL."
        )
    if explicit:
        import dj_database_url

        name = dj_database_url.parse(explicit).get("NAME") or ""
        if "bench" not in name.lower():
            sys.exit(
                f"bench: refusing to wipe database {name!r}: the bench only runs on a "
                "database whose name contains 'bench'."
            )
        os.environ["DATABASE_URL"] = explicit
        where = f"database {name!r} ({'--database-url' if args.database_url else 'env'})"
    else:
        if "bench" not in os.environ.get("PORTAL_DB_NAME", "").lower():
            os.environ["PORTAL_DB_NAME"] = BENCH_DB_NAME
        where = f"embedded PostgreSQL, database {os.environ['PORTAL_DB_NAME']!r}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings.dev"
    # 100k notices must not be written as files, and DEBUG would keep every query.
    os.environ["EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
    os.environ["DEBUG"] = "0"
    if not getattr(args, "workers", None):
        # In-process nights need no broker; do not start the embedded Redis for nothing.
        os.environ.setdefault("CELERY_BROKER_URL", "memory://")
    from portal import embedded

    embedded.start_needed()  # what the environment names no server for
    return where


# -- measuring ---------------------------------------------------------------------------


_SPACES = re.compile(r"\s+")


class QueryMeter:
    """A connection.execute_wrapper that counts queries and the time spent in them."""

    def __init__(self) -> None:
        self.queries = 0
        self.db_seconds = 0.0
        self.by_statement: dict[str, list[float]] = {}

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed = time.perf_counter() - started
            self.queries += 1
            self.db_seconds += elapsed
            key = _SPACES.sub(" ", sql.strip())[:90]
            entry = self.by_statement.setdefault(key, [0, 0.0])
            entry[0] += 1
            entry[1] += elapsed

    def mark(self) -> tuple[int, float]:
        return self.queries, self.db_seconds


@dataclass
class StepFigures:
    seconds: float = 0.0
    queries: int = 0
    db_seconds: float = 0.0
    items: int = 0
    batch_queries: list[int] = field(default_factory=list)
    _mark: int = 0

    @property
    def steady_batch_queries(self) -> list[int]:
        """Queries of each batch but the first, which also carries the step's queries
        that select the work."""
        return self.batch_queries[1:]

    @property
    def per_batch(self) -> int | None:
        """Median queries of a batch; None with fewer than two batches."""
        qs = self.steady_batch_queries
        return int(statistics.median(qs)) if qs else None

    def describe_batches(self) -> str:
        if not self.batch_queries:
            return "—"
        first, rest = self.batch_queries[0], sorted(set(self.steady_batch_queries))
        if not rest:
            return f"{first} (1 batch)"
        spread = str(rest[0]) if len(rest) == 1 else f"{rest[0]}–{rest[-1]}"
        return f"{first}, then {spread}"


@dataclass
class NightFigures:
    run_date: date
    batch_size: int
    seconds: float = 0.0
    queries: int = 0
    db_seconds: float = 0.0
    counts: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)
    steps: dict[str, StepFigures] = field(default_factory=dict)
    emails: int = 0
    email_seconds: float = 0.0
    job_run_id: int | None = None
    job_run_seconds: float | None = None
    top_statements: list = field(default_factory=list)


@dataclass
class UsageFigures:
    day: date
    rows: int = 0
    build_seconds: float = 0.0
    parse_seconds: float = 0.0
    import_seconds: float = 0.0
    queries: int = 0
    result: object = None

    @property
    def rows_per_second(self) -> float:
        return self.rows / max(self.parse_seconds + self.import_seconds, 1e-9)


@dataclass
class SeedFigures:
    subscriptions: int
    usage_rows: int = 0
    stages: dict[str, float] = field(default_factory=dict)
    fk_checks_skipped: bool = False

    @property
    def seconds(self) -> float:
        return sum(self.stages.values())


@dataclass
class Run:
    """One seeded book and its two nights."""

    subscriptions: int
    batch_size: int
    seed: SeedFigures
    nights: list[NightFigures]
    # R+1 .. R+6, run in between so that R+7 has no missed nights to catch up.
    quiet_seconds: float = 0.0
    quiet_nights: int = 0

    @property
    def nights_seconds(self) -> float:
        return sum(n.seconds for n in self.nights)

    @property
    def subs_per_second(self) -> float:
        return self.subscriptions / max(self.nights_seconds, 1e-9)

    @property
    def queries(self) -> int:
        return sum(n.queries for n in self.nights)

    def per_batch(self) -> dict[str, int]:
        out = {}
        for night in self.nights:
            for step, fig in night.steps.items():
                if fig.per_batch is not None:
                    out[step] = fig.per_batch
        return out


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


# -- the nightly run ---------------------------------------------------------------------


@contextlib.contextmanager
def instrumented(meter: QueryMeter, night: NightFigures, batch_size: int) -> Iterator[None]:
    """Wrap each nightly step's service in a timer, and make the reconciliation steps
    use `batch_size`: the engine has no setting for it, so for the run the bench sets
    `batches.BATCH_SIZE` and swaps `batches.chunks` for one whose default
    size is `batch_size` (no file changes; explicit sizes, as renewals pass, are kept)."""
    from subscriptions.services import batches, nightly
    from subscriptions.services import reconciliations as recon

    patches: list[tuple[object, str, object]] = []

    def patch(module, name: str, value) -> None:
        patches.append((module, name, getattr(module, name)))
        setattr(module, name, value)

    def timed(step: str, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            fig = night.steps.setdefault(step, StepFigures())
            queries, db_seconds = meter.mark()
            fig._mark = queries
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                fig.seconds += time.perf_counter() - started
                fig.queries += meter.queries - queries
                fig.db_seconds += meter.db_seconds - db_seconds

        return wrapper

    step_services = {
        "seat_refresh": (nightly, "seats_refresh"),
        "reconciliation_create": (recon, "reconciliations_create_due"),
        "reconciliation_notify": (recon, "reconciliations_notify_due"),
        "reconciliation_invoice": (recon, "reconciliations_invoice_due"),
        "suspension_start": (nightly, "suspensions_start_due"),
        "suspension_resume": (nightly, "suspensions_resume_due"),
        "renewal": (nightly, "subscriptions_renew_due"),
    }
    for step, (module, name) in step_services.items():
        if hasattr(module, name):
            patch(module, name, timed(step, getattr(module, name)))
        else:
            print(f"bench: {module.__name__}.{name} not found; step {step} is not timed")
    # The steps other apps register (expiry: approvals): their registered function is timed.
    registered = {step: nightly.registered_step(step) for step in nightly.REGISTERED_STEPS}
    for step, function in registered.items():
        nightly.register_step(step, timed(step, function))

    chunks = batches.chunks

    def sized_chunks(ids, size=None):
        return chunks(ids, size or batch_size)

    patch(batches, "chunks", sized_chunks)
    patch(batches, "BATCH_SIZE", batch_size)
    try:
        yield
    finally:
        for module, name, original in reversed(patches):
            setattr(module, name, original)
        for step, function in registered.items():
            nightly.register_step(step, function)


def run_night(*, run_date: date, batch_size: int, bar_factory, profile=None) -> NightFigures:
    from django.core import mail
    from django.db import connection

    from subscriptions.models import JobRun
    from subscriptions.services.nightly import nightly_run

    night = NightFigures(run_date=run_date, batch_size=batch_size)
    meter = QueryMeter()

    def drain_outbox() -> None:
        outbox = getattr(mail, "outbox", None)
        if outbox:
            night.emails += len(outbox)
            outbox.clear()  # 100k kept messages would only measure memory

    with bar_factory(desc=f"night {run_date}", unit="rec") as bar:

        def progress(step: str, done: int) -> None:
            fig = night.steps.setdefault(step, StepFigures())
            fig.batch_queries.append(meter.queries - fig._mark)
            fig._mark = meter.queries
            fig.items += done
            drain_outbox()
            bar.set_postfix_str(step, refresh=False)
            bar.update(done)

        with instrumented(meter, night, batch_size), connection.execute_wrapper(meter):
            started = time.perf_counter()
            if profile is not None:
                profile.enable()
            try:
                result = nightly_run(run_date=run_date, trigger="bench", progress=progress)
            finally:
                if profile is not None:
                    profile.disable()
            night.seconds = time.perf_counter() - started
    drain_outbox()
    night.queries, night.db_seconds = meter.queries, meter.db_seconds
    night.counts, night.errors, night.job_run_id = result.counts, result.errors, result.job_run_id
    job = JobRun.objects.filter(pk=result.job_run_id).first()
    if job and job.finished_at:
        night.job_run_seconds = (job.finished_at - job.started_at).total_seconds()
    night.top_statements = sorted(
        meter.by_statement.items(), key=lambda kv: kv[1][1], reverse=True
    )[:10]
    return night


def run_book(*, n: int, batch_size: int, args, r: date, bar_factory, profile=None) -> Run:
    from subscriptions.services.nightly import nightly_run

    seed_figures = seed(n=n, usage_days=args.usage_days, r=r, bar_factory=bar_factory)

    def night(day: date) -> NightFigures:
        return run_night(
            run_date=day, batch_size=batch_size, bar_factory=bar_factory, profile=profile
        )

    first = night(r)
    # The nights in between are run too (a run catches up missed nights first, so
    # skipping them would time them inside R+7): timed apart, not part of the target.
    started = time.perf_counter()
    for offset in range(1, 7):
        nightly_run(run_date=r + timedelta(days=offset), trigger="bench")
    quiet = time.perf_counter() - started
    return Run(
        subscriptions=n,
        batch_size=batch_size,
        seed=seed_figures,
        nights=[first, night(r + timedelta(days=7))],
        quiet_seconds=quiet,
        quiet_nights=6,
    )


# -- usage ingestion ---------------------------------------------------------------------


def run_usage_import(*, day: date) -> UsageFigures:
    from django.db import connection
    from django.utils import timezone

    from subscriptions.models import Namespace
    from subscriptions.services.usage import parse_usage_csv, usage_import

    figures = UsageFigures(day=day)
    started = time.perf_counter()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["namespace", "date", "billable_users"])
    for pk, name, in_use in (
        Namespace.objects.filter(kind=Namespace.Kind.SAAS)
        .order_by("pk")
        .values_list("pk", "name", "seats_in_use")
        .iterator(chunk_size=20_000)
    ):
        writer.writerow([name, day.isoformat(), in_use + pk % 3])  # some grow a little
        figures.rows += 1
    payload = buffer.getvalue().encode()
    figures.build_seconds = time.perf_counter() - started

    meter = QueryMeter()
    with connection.execute_wrapper(meter):
        started = time.perf_counter()
        kind, rows = parse_usage_csv(io.BytesIO(payload), today=max(timezone.localdate(), day))
        figures.parse_seconds = time.perf_counter() - started
        started = time.perf_counter()
        figures.result = usage_import(rows=rows, kind=kind, source="bench.csv")
        figures.import_seconds = time.perf_counter() - started
    figures.queries = meter.queries
    return figures


# -- report ------------------------------------------------------------------------------


def table(rows: list[list[object]], header: list[str], left: tuple[int, ...] = (0,)) -> str:
    """Plain-text table: numbers right-aligned, text and the `left` columns left."""
    cells = [[str(c) for c in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i in left or not _numeric(c) else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in cells[1:]]
    return "\n".join("  " + row for row in out)


def _numeric(text: str) -> bool:
    return bool(re.fullmatch(r"[-+]?[\d,]*\.?\d+[a-z%/]*|—", text))


def _counts(counts: dict) -> str:
    return ", ".join(f"{k}={v:,}" for k, v in sorted(counts.items())) or "—"


def night_table(night: NightFigures) -> str:
    rows = []
    for step, fig in night.steps.items():
        rows.append(
            [
                step,
                f"{fig.items:,}" if fig.batch_queries else "—",
                len(fig.batch_queries) or "—",
                f"{fig.seconds:.2f}",
                f"{fig.db_seconds:.2f}",
                f"{fig.seconds - fig.db_seconds:.2f}",
                f"{fig.queries:,}",
                fig.describe_batches(),
                _counts(night.counts.get(step, {})),
            ]
        )
    in_steps = sum(f.seconds for f in night.steps.values())
    rows.append(
        [
            "(lock, JobRun bookkeeping)",
            "",
            "",
            f"{night.seconds - in_steps:.2f}",
            "",
            "",
            f"{night.queries - sum(f.queries for f in night.steps.values()):,}",
            "",
            "",
        ]
    )
    rows.append(
        [
            "night total",
            "",
            "",
            f"{night.seconds:.2f}",
            f"{night.db_seconds:.2f}",
            f"{night.seconds - night.db_seconds:.2f}",
            f"{night.queries:,}",
            "",
            "",
        ]
    )
    header = [
        "step",
        "records",
        "batches",
        "wall s",
        "db s",
        "python s",
        "queries",
        "queries/batch",
        "JobRun.counts",
    ]
    return table(rows, header, left=(0, len(header) - 1))


def report(
    *,
    args,
    where: str,
    r: date,
    main: Run,
    checks: list[Run],
    usage: UsageFigures,
) -> bool:
    n = main.subscriptions
    print()
    print("=" * 100)
    print(
        f"Nightly benchmark: {n:,} subscriptions, batch size {main.batch_size}, "
        f"{args.usage_days} days of usage, R = {r}  [{where}]"
    )
    print("=" * 100)

    s = main.seed
    print(
        f"\nSeeding (not part of the targets): {s.seconds:.1f} s"
        f"{'' if s.fk_checks_skipped else ' (foreign-key checks on: not a superuser)'}"
    )
    print(table([[k, f"{v:.2f}"] for k, v in s.stages.items()], ["stage", "seconds"]))
    usage_s = s.stages.get("usage reports", 0.0)
    print(
        f"  usage reports: {s.usage_rows:,} rows, {s.usage_rows / max(usage_s, 1e-9):,.0f} rows/s"
    )

    for label, night in zip(("R (create + notify)", "R+7 (invoice)"), main.nights, strict=True):
        print(
            f"\nNight {label}: {night.run_date}, JobRun #{night.job_run_id}, "
            f"{night.seconds:.2f} s (JobRun: {night.job_run_seconds or 0:.2f} s), "
            f"{n / max(night.seconds, 1e-9):,.0f} subscriptions/s"
        )
        print(night_table(night))
        if night.emails:
            print(
                f"  notices sent after commit (locmem): {night.emails:,}, "
                f"{night.email_seconds:.2f} s of the night"
            )
        if night.errors:
            print(f"  ERRORS: {len(night.errors)}; first: {night.errors[0]}")

    if main.quiet_nights:
        print(
            f"\nNights R+1 .. R+6 (nothing due; seat refresh and selections only): "
            f"{main.quiet_seconds:.2f} s, {main.quiet_seconds / main.quiet_nights:.2f} s a night"
        )

    print("\nTop statements by database time (both nights of the main run)")
    merged: dict[str, list[float]] = {}
    for night in main.nights:
        for key, (count, secs) in night.top_statements:
            entry = merged.setdefault(key, [0, 0.0])
            entry[0] += count
            entry[1] += secs
    top = sorted(merged.items(), key=lambda kv: kv[1][1], reverse=True)[:8]
    print(table([[k, f"{c:,}", f"{t:.2f}"] for k, (c, t) in top], ["statement", "calls", "s"]))

    res = usage.result
    print(
        f"\nUsage ingestion, day {usage.day}: {usage.rows:,} rows "
        f"(CSV built in {usage.build_seconds:.2f} s, not counted)"
    )
    print(
        table(
            [
                ["parse_usage_csv", f"{usage.parse_seconds:.2f}"],
                ["usage_import", f"{usage.import_seconds:.2f}"],
                ["total", f"{usage.parse_seconds + usage.import_seconds:.2f}"],
            ],
            ["stage", "seconds"],
        )
    )
    print(
        f"  {usage.rows_per_second:,.0f} rows/s, {usage.queries} queries; created "
        f"{res.created:,}, replaced {res.replaced:,}, unchanged {res.unchanged:,}"
    )

    runs = [*checks, main]
    steps = sorted({step for run in runs for step in run.per_batch()})
    print("\nQueries per batch (median of each step's batches after the first; — with one batch)")
    print(
        table(
            [[step, *[run.per_batch().get(step, "—") for run in runs]] for step in steps],
            ["step", *[f"N={run.subscriptions:,} B={run.batch_size}" for run in runs]],
        )
    )
    # Each step's figure must be the same in every run that had two batches or more,
    # and at least two runs (two N or two batch sizes) must be there to compare.
    compared = {
        step: [run.per_batch()[step] for run in runs if step in run.per_batch()] for step in steps
    }
    comparable = bool(steps) and all(len(values) >= 2 for values in compared.values())
    constant_across = all(len(set(values)) == 1 for values in compared.values())
    constant_within = all(
        len(set(fig.steady_batch_queries)) <= 1
        for run in runs
        for night in run.nights
        for fig in night.steps.values()
    )
    constant = comparable and constant_across and constant_within
    verdict = ("yes" if constant else "no") if comparable else "too few batches to compare"
    per_1000 = main.queries / n * 1000
    print(
        f"  queries per 1,000 subscriptions (both nights): {per_1000:,.1f}  "
        f"({main.queries:,} queries for {n:,})"
    )
    for run in checks:
        print(
            f"  check N={run.subscriptions:,} B={run.batch_size}: "
            f"{run.queries / run.subscriptions * 1000:,.1f} per 1,000, "
            f"{run.subs_per_second:,.0f} subscriptions/s"
        )

    expected_notified = n - n // 5
    r_counts, r7_counts = main.nights[0].counts, main.nights[1].counts
    sane = (
        r_counts.get("reconciliation_create", {}).get("created") == n
        and r_counts.get("reconciliation_notify", {}).get("notified") == expected_notified
        and r7_counts.get("reconciliation_invoice", {}).get("invoiced") == expected_notified
        and not any(night.errors for night in main.nights)
    )
    subs_per_second = main.subs_per_second
    results = [
        [
            "subscriptions reconciled and invoiced / s",
            f">= {TARGET_SUBS_PER_SECOND:,}",
            f"{subs_per_second:,.0f}",
            "met" if subs_per_second >= TARGET_SUBS_PER_SECOND else "NOT MET",
        ],
        [
            "usage rows ingested / s",
            f">= {TARGET_USAGE_ROWS_PER_SECOND:,}",
            f"{usage.rows_per_second:,.0f}",
            "met" if usage.rows_per_second >= TARGET_USAGE_ROWS_PER_SECOND else "NOT MET",
        ],
        [
            "queries per batch constant (N, batch size)",
            "same in every run",
            verdict,
            "met" if constant else "NOT MET",
        ],
    ]
    print(
        f"\nResults for N = {n:,}: night R {main.nights[0].seconds:.2f} s + night R+7 "
        f"{main.nights[1].seconds:.2f} s = {main.nights_seconds:.2f} s"
    )
    print(table(results, ["figure", "target", "measured", "result"]))
    print(
        f"  outcome check (created {n:,}, notified and invoiced {expected_notified:,}, "
        f"no errors): {'ok' if sane else 'MISMATCH: ' + repr((r_counts, r7_counts))}"
    )
    return all(row[3] == "met" for row in results) and sane


# -- main --------------------------------------------------------------------------------


def default_reconciliation_date() -> date:
    """The first of a month at least 8 days ago: R, R+1 (the ingested day) and R+7 are
    not in the future, and R - 3 months + 3 months = R (no month-end clamping)."""
    anchor = date.today() - timedelta(days=8)
    return anchor.replace(day=1)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time the nightly run (reconcile + invoice) and the usage import.",
    )
    parser.add_argument("--subscriptions", "-n", type=int, default=100_000, metavar="N")
    parser.add_argument(
        "--batch-size",
        type=int,
        nargs="+",
        metavar="B",
        help="batch size of the reconciliation steps for the main run (the first) and "
        "the query checks (all); default: the engine's BATCH_SIZE and a quarter of it",
    )
    parser.add_argument("--usage-days", type=int, default=90, metavar="D")
    parser.add_argument(
        "--check-subscriptions",
        type=int,
        default=2_000,
        metavar="M",
        help="book size of the query-count checks run first, one per batch size "
        "(0: skip; default 2000)",
    )
    parser.add_argument("--date", type=date.fromisoformat, help="reconciliation date R")
    parser.add_argument(
        "--database-url", help="bench database when DATABASE_URL is set (name must contain 'bench')"
    )
    parser.add_argument(
        "--profile", metavar="FILE", help="cProfile the main run's nights into FILE (slower)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        metavar="W",
        help="run the nights on W real Celery workers over the configured broker "
        "(CELERY_BROKER_URL, else the embedded Redis), a fresh book for each W given",
    )
    args = parser.parse_args()
    if args.subscriptions < 1 or args.usage_days < 1:
        parser.error("--subscriptions and --usage-days must be at least 1")
    return args


def main() -> int:
    args = parse_args()
    where = configure_environment(args)

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from tqdm import tqdm

    from subscriptions import billing
    from subscriptions.services import batches

    assert not settings.DEBUG, "DEBUG must be off: it keeps every query in memory"
    r = args.date or default_reconciliation_date()
    if billing.add_months(billing.add_months(r, -3), 3) != r:
        sys.exit(f"bench: choose a reconciliation date on day 1-28 of a month, not {r}")
    batch_sizes = args.batch_size or [batches.BATCH_SIZE, max(1, batches.BATCH_SIZE // 4)]
    bar_factory = functools.partial(tqdm, file=sys.stderr, mininterval=0.5, dynamic_ncols=True)

    print(f"bench: {where}; migrating", file=sys.stderr)
    call_command("migrate", verbosity=0, interactive=False)

    if args.workers:
        import tempfile

        import workers

        log_dir = Path(tempfile.mkdtemp(prefix="bench-workers-"))
        seed_book = functools.partial(
            seed, n=args.subscriptions, usage_days=args.usage_days, r=r, bar_factory=bar_factory
        )
        runs = [
            workers.run_book_on_workers(
                n=args.subscriptions, workers=count, r=r, seed_book=seed_book, log_dir=log_dir
            )
            for count in args.workers
        ]
        print(f"\n{args.subscriptions:,} subscriptions, R = {r}; worker logs in {log_dir}")
        workers.report(runs)
        return 0 if all(n.status == "succeeded" for run in runs for n in run.nights) else 1

    checks = []
    if args.check_subscriptions:
        for size in batch_sizes:
            checks.append(
                run_book(
                    n=args.check_subscriptions,
                    batch_size=size,
                    args=args,
                    r=r,
                    bar_factory=bar_factory,
                )
            )

    profile = cProfile.Profile() if args.profile else None
    main_run = run_book(
        n=args.subscriptions,
        batch_size=batch_sizes[0],
        args=args,
        r=r,
        bar_factory=bar_factory,
        profile=profile,
    )
    usage = run_usage_import(day=r + timedelta(days=1))

    ok = report(args=args, where=where, r=r, main=main_run, checks=checks, usage=usage)
    if profile is not None:
        profile.dump_stats(args.profile)
        print(f"\nProfile of the two nights in {args.profile}; top functions by own time:")
        pstats.Stats(profile, stream=sys.stdout).sort_stats("tottime").print_stats(25)
    print(f"\nfinished {datetime.now():%Y-%m-%d %H:%M:%S}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
