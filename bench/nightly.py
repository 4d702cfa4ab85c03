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

This module holds the command line and `main()`; the rest is in bench/setup.py (the
environment and database), bench/seeding.py (the book), bench/measure.py (query
meters, figures, timing the nights and the usage import) and bench/report.py (the
report and the targets). `--workers` runs the nights with bench/workers.py.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import pstats
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.measure import run_book, run_usage_import  # noqa: E402
from bench.report import report  # noqa: E402
from bench.seeding import seed  # noqa: E402
from bench.setup import configure_environment  # noqa: E402

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

        from bench import workers

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
