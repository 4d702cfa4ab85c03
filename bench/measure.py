"""Bench measuring: query meters, the figures, and timing the nights and the usage import.

`QueryMeter` counts queries and database time; `instrumented` times each nightly step
and sets the batch size for a run; `run_night` times one nightly run, `run_book` seeds a
book and times its nights R and R+7 (`Run`); `run_usage_import` times the ingestion of
one day of usage (`UsageFigures`).
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import re
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

from bench.seeding import SeedFigures, seed

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
