"""Bench report: the figures as plain-text tables, and the targets.

`report` prints the seeding, each night step by step, the top statements, the usage
ingestion, the queries per batch of every run, and the table of the targets; it returns
whether all are met and the outcome check passes.
"""

from __future__ import annotations

import re
from datetime import date

from bench.measure import NightFigures, Run, UsageFigures

TARGET_SUBS_PER_SECOND = 2_000
TARGET_USAGE_ROWS_PER_SECOND = 20_000


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
