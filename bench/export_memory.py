"""Benchmark: the CSV export's memory at a million rows.

    .venv/bin/python bench/export_memory.py [--subscriptions N] [--database-url URL]

On the book of bench/web.py (seeded when the database does not hold N subscriptions
and N reconciliations; default 1,000,000), it exports, as a superuser through Django's
test client in this process, the reconciliations list filtered to one quarter (about a
third of the rows), then the whole list (N rows), and the invoices with their lines.
For each it prints the rows, the time, the rows per second and the peak of the
process's resident memory above what it held before the first export (`ru_maxrss`).
The export streams in constant memory when the peak does not grow with the rows: the
whole list must peak no higher than the third (plus 20 MB) and under 100 MB above the
start. Exit status 0 when it does.

The database is chosen as for bench/nightly.py (bench/setup.py).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.setup import configure_environment  # noqa: E402

LIMIT_MB = 100


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Peak memory of a CSV export of 1M rows.")
    parser.add_argument("--subscriptions", "-n", type=int, default=1_000_000, metavar="N")
    parser.add_argument(
        "--database-url", help="bench database when DATABASE_URL is set (name must contain 'bench')"
    )
    return parser.parse_args()


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def main() -> int:
    args = parse_args()
    where = configure_environment(args)
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment

    from bench import web_seeding

    print(f"bench/export_memory.py on {where}")
    call_command("migrate", verbosity=0)
    setup_test_environment()
    n = args.subscriptions
    if web_seeding.book_size() != (n, n):
        print(f"seeding {n:,} subscriptions and reconciliations")
        web_seeding.seed(n, print)
    admin, _ = web_seeding.users()
    client = Client()
    client.force_login(admin)
    reconciliations = "/admin/subscriptions/reconciliation/export.csv"
    exports = [
        ("reconciliations, quarter 2", f"{reconciliations}?quarter__exact=2"),
        ("reconciliations, all", reconciliations),
        ("invoices with their lines", "/admin/subscriptions/invoice/export.csv"),
    ]
    start = peak_mb()
    figures = []
    for name, url in exports:
        started = time.perf_counter()
        response = client.get(url)
        rows, size = -1, 0  # the header line is not a row
        for chunk in response.streaming_content:
            rows += chunk.count(b"\n")
            size += len(chunk)
        seconds = time.perf_counter() - started
        grown = peak_mb() - start
        figures.append((name, rows, seconds, grown))
        print(
            f"{name:<28} {rows:>10,} rows {size / 2**20:7.1f} MB of CSV {seconds:6.1f} s "
            f"{rows / seconds:>9,.0f} rows/s  peak RSS +{grown:.1f} MB",
            flush=True,
        )
    third, whole = figures[0][3], figures[1][3]
    ok = whole <= third + 20 and max(f[3] for f in figures) < LIMIT_MB
    print(
        f"\npeak resident memory above the start: {max(f[3] for f in figures):.1f} MB "
        f"(process peak {peak_mb():.0f} MB); "
        + ("constant in the rows" if ok else "GROWS with the rows or over the limit")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
