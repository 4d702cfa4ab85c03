"""Benchmark: the list pages at a million rows.

    .venv/bin/python bench/web.py [--subscriptions N] [--repeat R] [--reseed]
                                  [--database-url URL]

Builds (or reuses, when the database holds N subscriptions and N reconciliations) the
book of bench/web_seeding.py: N subscriptions and reconciliations (default 1,000,000),
N / 5 customers, N namespaces, N / 10 invoices with two lines each, and some approval
requests and suspensions. Then it requests every list page in the process, with
Django's test client, logged in as a superuser and as a sales manager who owns one
customer in a thousand: page 1, a deep page, searches and filters. For each it prints
the median server time of R requests (after one warm-up), the queries of one request
and the rows counted. The target: every page under 150 ms, and the same queries for
every page of a list.

The database is chosen as for bench/nightly.py (bench/setup.py): a name containing
"bench"; it is migrated, and emptied before a seeding.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.setup import configure_environment  # noqa: E402
from bench.web_seeding import OWNED_EVERY  # noqa: E402

TARGET_MS = 150.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Time the list pages at a million rows.")
    parser.add_argument("--subscriptions", "-n", type=int, default=1_000_000, metavar="N")
    parser.add_argument("--repeat", type=int, default=5, metavar="R")
    parser.add_argument("--reseed", action="store_true", help="seed even if the book exists")
    parser.add_argument(
        "--database-url", help="bench database when DATABASE_URL is set (name must contain 'bench')"
    )
    return parser.parse_args()


def md5(text: str, length: int) -> str:
    return hashlib.md5(text.encode()).hexdigest()[:length]  # names, not secrets


def cases(n: int) -> list[tuple[str, str, str]]:
    """(list, what, query string) for every page measured."""
    customers = max(1, n // 5)
    # A customer the sales manager owns, and a namespace of it: both users find them.
    c = max(OWNED_EVERY, customers // 2 // OWNED_EVERY * OWNED_EVERY)
    i = c + customers * (n // customers // 2)
    customer, namespace = md5(f"c{c}", 8), md5(f"n{i}", 12)
    email = f"billing-{md5(f'e{c}', 10)}"
    return [
        ("subscriptions/subscription", "page 1", ""),
        ("subscriptions/subscription", "page 200", "p=200"),
        ("subscriptions/subscription", "search customer", f"q={customer}"),
        ("subscriptions/subscription", "search namespace", f"q={namespace}"),
        ("subscriptions/subscription", "search email", f"q={email}"),
        ("subscriptions/subscription", "search id", f"q={i}"),
        ("subscriptions/subscription", "filter QSR paused", "qsr_state__exact=paused"),
        ("subscriptions/subscription", "filter term end 2024", "term_end__year=2024"),
        ("subscriptions/reconciliation", "page 1", ""),
        ("subscriptions/reconciliation", "page 200", "p=200"),
        ("subscriptions/reconciliation", "search customer", f"q={customer}"),
        ("subscriptions/reconciliation", "search namespace", f"q={namespace}"),
        ("subscriptions/reconciliation", "filter failed", "status__exact=failed"),
        ("subscriptions/reconciliation", "filter quarter 2", "quarter__exact=2"),
        (
            "subscriptions/reconciliation",
            "filter 2024-03",
            "reconciliation_date__year=2024&reconciliation_date__month=3",
        ),
        ("subscriptions/customer", "page 1", ""),
        ("subscriptions/customer", "page 200", "p=200"),
        ("subscriptions/customer", "search name", f"q={customer}"),
        ("subscriptions/customer", "search email", f"q={email}"),
        ("subscriptions/namespace", "page 1", ""),
        ("subscriptions/namespace", "page 200", "p=200"),
        ("subscriptions/namespace", "search name", f"q={namespace}"),
        ("subscriptions/invoice", "page 1", ""),
        ("subscriptions/invoice", "page 200", "p=200"),
        ("subscriptions/invoice", "search customer", f"q={customer}"),
        ("subscriptions/invoice", "filter credit memos", "type=credit_memo"),
        ("subscriptions/invoiceline", "page 1", ""),
        ("subscriptions/invoiceline", "page 200", "p=200"),
        ("subscriptions/invoiceline", "filter refund credits", "kind__exact=refund_credit"),
        ("subscriptions/suspension", "page 1", ""),
        ("subscriptions/suspension", "page 100", "p=100"),
        ("subscriptions/suspension", "filter active", "status__exact=active"),
        ("subscriptions/seatusagereport", "page 1", ""),
        ("subscriptions/qsrdisabledforbug", "page 1", ""),
        ("subscriptions/jobrun", "page 1", ""),
        ("approvals/approvalrequest", "page 1", ""),
        ("approvals/approvalrequest", "page 100", "p=100"),
        ("approvals/approvalrequest", "search customer", f"q={customer}"),
        ("approvals/approvalrequest", "filter pending", "status__exact=pending"),
        ("approvals/approvalrequest", "queue: my requests", "queue=mine"),
        ("approvals/approvaldecision", "page 1", ""),
        ("approvals/dispute", "page 1", ""),
    ]


SALES_LISTS = (
    "subscriptions/subscription",
    "subscriptions/reconciliation",
    "subscriptions/customer",
    "subscriptions/invoice",
    "approvals/approvalrequest",
)


def measure(client, url: str, repeat: int) -> tuple[float, int, float, int, int]:
    """(median ms, queries, their ms, status, rows counted) of GET `url`."""
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    reset_queries()  # each request empties the log: start from an empty one
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    # Read now: the log is emptied again by the next request.
    captured = queries.captured_queries
    db_ms = sum(float(q["time"]) for q in captured) * 1000
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        client.get(url)
        times.append((time.perf_counter() - started) * 1000)
    count = response.context["cl"].result_count if response.context else -1
    return statistics.median(times), len(captured), db_ms, response.status_code, count


def main() -> int:
    args = parse_args()
    where = configure_environment(args)
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment

    from bench import web_seeding

    print(f"bench/web.py on {where}")
    call_command("migrate", verbosity=0)
    setup_test_environment()  # the client then sees the pages' context (the count)
    n = args.subscriptions
    if args.reseed or web_seeding.book_size() != (n, n):
        print(f"seeding {n:,} subscriptions and reconciliations")
        started = time.perf_counter()
        web_seeding.seed(n, print)
        print(f"seeded in {time.perf_counter() - started:.0f} s")
    else:
        print(f"reusing the book of {n:,} subscriptions and reconciliations")
    admin, sales = web_seeding.users()
    clients = {}
    for label, user in (("superuser", admin), ("sales", sales)):
        clients[label] = Client()
        clients[label].force_login(user)
    rows = []
    for path, what, query in cases(n):
        users = ("superuser", "sales") if path in SALES_LISTS else ("superuser",)
        for label in users:
            if label == "sales" and what.startswith(("page", "filter")) and what != "page 1":
                continue
            url = f"/admin/{path}/" + (f"?{query}" if query else "")
            ms, queries, db_ms, status, count = measure(clients[label], url, args.repeat)
            rows.append((path.split("/")[1], what, label, ms, queries, db_ms, status, count))
            print(f"{rows[-1][0]:<18} {what:<22} {label:<9} {ms:7.1f} ms {queries:3d} q "
                  f"{db_ms:7.1f} ms SQL {status} {count:>9,}", flush=True)  # fmt: skip
    print()
    print(
        f"| list | page | user | median ms (of {args.repeat}) | queries | SQL ms | status | count |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for model, what, label, ms, queries, db_ms, status, count in rows:
        print(
            f"| {model} | {what} | {label} | {ms:.1f} | {queries} | {db_ms:.1f} | {status} "
            f"| {count:,} |"
        )
    slow = [r for r in rows if r[3] > TARGET_MS or r[6] != 200]
    worst = max(rows, key=lambda r: r[3])
    print(f"\nslowest: {worst[0]} {worst[1]} ({worst[2]}) {worst[3]:.1f} ms; "
          f"{len(slow)} of {len(rows)} pages over {TARGET_MS:.0f} ms or not 200")  # fmt: skip
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
