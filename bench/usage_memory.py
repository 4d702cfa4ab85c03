"""Benchmark: peak memory and speed of the usage import on a large file.

    .venv/bin/python bench/usage_memory.py [--size-mb S] [--namespaces N]
                                           [--database-url URL] [--keep DIR]

Seeds N SaaS namespaces (default 100,000), writes usage CSVs of about S MB (default 200)
in a temporary directory: one valid, and two that are rejected by one bad line near the
end (a negative count; a byte that is not UTF-8). Each file is imported by the real
command, `manage.py import_seat_usage FILE`, in a child process; the script prints the
child's peak RSS (from wait4) and rows per second (wall time of the child, Django's
start included), and checks that the rejected files wrote nothing and reported the
right line. Database: as bench/nightly.py (a database whose name contains "bench",
migrated and emptied first). bench/README.md has the target.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.setup import configure_environment  # noqa: E402

TARGET_PEAK_RSS_MB = 300
HEADER = "namespace,date,billable_users\n"
BAD_LINE_FROM_END = 2  # the bad line: the last but one

_SEED = """
INSERT INTO subscriptions_customer (id, created_at, updated_at, name, billing_email, currency,
                                    owner_id)
SELECT i, now(), now(), 'Usage bench customer ' || lpad(i::text, 7, '0'),
       'usage+' || i || '@bench.example', 'USD', NULL
FROM generate_series(1, %(n)s) AS i;
INSERT INTO subscriptions_namespace (id, created_at, updated_at, customer_id, kind, name,
    license_key, instance_id, seats_in_use, max_seats_used, max_seats_used_changed_at,
    usage_counted_from)
SELECT i, now(), now(), i, 'saas', 'usage-bench-' || lpad(i::text, 7, '0'), '', '',
       0, 0, NULL, NULL
FROM generate_series(1, %(n)s) AS i;
"""


def name(i: int) -> str:
    return f"usage-bench-{i:07d}"


# -- children (run with Django set up) -----------------------------------------------------


def child_setup(namespaces: int) -> None:
    """Migrate, empty the billing tables, seed the namespaces."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from bench.seeding import wipe

    call_command("migrate", verbosity=0, interactive=False)
    wipe()
    with connection.cursor() as cursor:
        for statement in filter(str.strip, _SEED.split(";")):
            cursor.execute(statement, {"n": namespaces})


def child_count() -> None:
    import django

    django.setup()
    from subscriptions.models import SeatUsageReport

    print(SeatUsageReport.objects.count(), SeatUsageReport.history.count())


def run_child(*argv: str) -> None:
    subprocess.run([sys.executable, __file__, *argv], check=True, cwd=ROOT)


# -- the files ----------------------------------------------------------------------------


def write_files(directory: Path, *, size_mb: int, namespaces: int) -> tuple[int, dict]:
    """Write valid.csv, bad-count.csv and bad-byte.csv: the same lines, bar the last but
    one in the bad ones. Returns (data lines, {file: path}); days go back from yesterday."""
    line_bytes = len(f"{name(1)},2026-01-01,123\n")
    days = max(1, -(-size_mb * 1_000_000 // (namespaces * line_bytes)))
    rows = days * namespaces
    bad_line = rows + 1 - BAD_LINE_FROM_END + 1  # header = line 1
    paths = {kind: directory / f"{kind}.csv" for kind in ("valid", "bad-count", "bad-byte")}
    files = {kind: path.open("wb") for kind, path in paths.items()}
    yesterday = date.today() - timedelta(days=1)
    try:
        for out in files.values():
            out.write(HEADER.encode())
        line = 1
        for d in range(days):
            day = (yesterday - timedelta(days=days - 1 - d)).isoformat()
            block = "".join(f"{name(i)},{day},{i % 997}\n" for i in range(1, namespaces + 1))
            first = line + 1
            line += namespaces
            if first <= bad_line <= line:
                lines = block.splitlines(keepends=True)
                at = bad_line - first
                good = lines[at]
                head, tail = "".join(lines[:at]), "".join(lines[at + 1 :])
                ns, _, _ = good.rstrip("\n").split(",")
                variants = {
                    "valid": good.encode(),
                    "bad-count": f"{ns},{day},-1\n".encode(),
                    "bad-byte": f"{ns},{day},12".encode() + b"\xe9\n",
                }
                for kind, out in files.items():
                    out.write(head.encode() + variants[kind] + tail.encode())
            else:
                data = block.encode()
                for out in files.values():
                    out.write(data)
    finally:
        for out in files.values():
            out.close()
    return rows, {"bad_line": bad_line, **paths}


# -- measuring ----------------------------------------------------------------------------


def import_file(path: Path, log: Path) -> dict:
    """Run the import command on `path` in a child; its exit code, wall time, peak RSS."""
    with log.open("wb") as out:
        started = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "manage.py", "import_seat_usage", str(path)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        # wait4, not wait(): the rusage of this child alone (RUSAGE_CHILDREN keeps the
        # maximum of every child so far).
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
    return {
        "exit": child.returncode,
        "seconds": seconds,
        "peak_rss_mb": usage.ru_maxrss / 1024,  # KiB on Linux
        "output": log.read_text(errors="replace").strip().splitlines(),
    }


def counts() -> tuple[int, int]:
    out = subprocess.run(
        [sys.executable, __file__, "--child-count"],
        check=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.split()
    return int(out[0]), int(out[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=200, metavar="S")
    parser.add_argument("--namespaces", type=int, default=100_000, metavar="N")
    parser.add_argument(
        "--database-url", help="bench database when DATABASE_URL is set (name must contain 'bench')"
    )
    parser.add_argument("--keep", metavar="DIR", help="write the files to DIR and keep them")
    parser.add_argument("--child-setup", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-count", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child_setup is not None or args.child_count:
        # Children inherit the environment the parent configured.
        if args.child_count:
            child_count()
        else:
            child_setup(args.child_setup)
        return 0

    where = configure_environment(args)  # refuses a database without "bench" in its name
    print(f"bench: {where}; migrating, seeding {args.namespaces:,} namespaces", file=sys.stderr)
    run_child("--child-setup", str(args.namespaces))

    with tempfile.TemporaryDirectory(prefix="usage-bench-") as tmp:
        directory = Path(args.keep or tmp)
        directory.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        rows, files = write_files(directory, size_mb=args.size_mb, namespaces=args.namespaces)
        bad_line = files.pop("bad_line")
        print(
            f"bench: {rows:,} rows a file, built in {time.perf_counter() - started:.1f} s; "
            f"bad line {bad_line:,}",
            file=sys.stderr,
        )
        results = {}
        # The rejected files first, on an empty table: they must leave it empty.
        for kind in ("bad-count", "bad-byte", "valid"):
            print(f"bench: importing {kind}.csv", file=sys.stderr)
            results[kind] = import_file(files[kind], directory / f"{kind}.log")
            results[kind]["written"] = counts()
        sizes = {kind: files[kind].stat().st_size for kind in files}

    expected = {
        "bad-count": f"{bad_line}: negative billable_users -1",
        "bad-byte": f"{bad_line}: unreadable: is not UTF-8 text (byte 0xE9",
    }
    print(f"\nUsage import memory: {args.namespaces:,} namespaces, {rows:,} rows a file  [{where}]")
    header = ["file", "MB", "exit", "seconds", "rows/s", "peak RSS MB", "reports after"]
    print("  " + "  ".join(f"{h:>12}" for h in header))
    ok = True
    for kind, result in results.items():
        print(
            "  "
            + "  ".join(
                f"{v:>12}"
                for v in (
                    f"{kind}.csv",
                    f"{sizes[kind] / 1e6:.0f}",
                    result["exit"],
                    f"{result['seconds']:.1f}",
                    f"{rows / result['seconds']:,.0f}",
                    f"{result['peak_rss_mb']:.0f}",
                    f"{result['written'][0]:,}",
                )
            )
        )
        print("      " + "\n      ".join(result["output"][:3]))
        if kind == "valid":
            ok &= result["exit"] == 0 and result["written"][0] == rows
        else:
            ok &= (
                result["exit"] == 2
                and result["written"] == (0, 0)
                and any(expected[kind] in line for line in result["output"])
            )
        ok &= result["peak_rss_mb"] < TARGET_PEAK_RSS_MB
    print(
        f"\nPeak RSS under {TARGET_PEAK_RSS_MB} MB for every file, rejected files write nothing "
        f"and name their bad line: {'met' if ok else 'NOT MET'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
