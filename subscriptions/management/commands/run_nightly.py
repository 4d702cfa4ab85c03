"""`manage.py run_nightly [--date YYYY-MM-DD] [--until YYYY-MM-DD] [--dry-run]`

Runs the nightly steps in this process (the same code the Celery task runs), with a
progress bar and a summary. Like every run, it first catches up the nights missed since
the last completed one. `--until` backfills every date from --date to --until in order,
as if the job had run each night. No date may be after today.

Exit codes (README "Nightly jobs"): 0 every night ran without an error; 1 a night ran
but recorded errors (failed records or a failed step, listed on stderr and in the job
run); 2 the command was refused (a date after today, --until before --date); 3 another
nightly run holds the lock; 4 the database cannot be reached.
"""

from __future__ import annotations

from argparse import ArgumentTypeError
from datetime import date, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db import OperationalError
from django.utils import timezone
from tqdm import tqdm

from subscriptions.services.nightly import (
    NightlyAlreadyRunning,
    NightlyDateInFuture,
    NightlyResult,
    nightly_run,
)

EXIT_ERRORS_RECORDED = 1
EXIT_REFUSED = 2
EXIT_LOCKED = 3
EXIT_DATABASE = 4


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


class Command(BaseCommand):
    help = "Run the nightly reconciliation, suspension, renewal and expiry steps."

    def add_arguments(self, parser):
        parser.add_argument("--date", type=_date, help="Default: today (portal time zone).")
        parser.add_argument("--until", type=_date, help="Backfill to this date.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Write nothing; say what would happen."
        )
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **opts):
        today = timezone.localdate()
        first = opts["date"] or today
        last = opts["until"] or first
        if last < first:
            raise CommandError("--until must not be before --date.", returncode=EXIT_REFUSED)
        if last > today:
            raise CommandError(
                f"{last} is after today ({today}): a night is run on or after its date; "
                "nothing was written.",
                returncode=EXIT_REFUSED,
            )
        failed = False
        day = first
        try:
            while day <= last:
                failed |= self._run(day, dry_run=opts["dry_run"], quiet=opts["no_progress"])
                day += timedelta(days=1)
        except OperationalError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CommandError(
                f"the database cannot be reached ({reason}); nothing more was done, "
                "and the next run picks up from the last completed night.",
                returncode=EXIT_DATABASE,
            ) from None
        if failed:
            raise CommandError(
                "errors were recorded (see above and the job run); the failed records are "
                "retried by the next nights.",
                returncode=EXIT_ERRORS_RECORDED,
            )

    def _run(self, day: date, *, dry_run: bool, quiet: bool) -> bool:
        bar = tqdm(desc=f"{day}", unit=" records", disable=quiet)

        def progress(step: str, done: int) -> None:
            bar.set_postfix_str(step)
            bar.update(done)

        try:
            result = nightly_run(
                run_date=day, dry_run=dry_run, trigger="command", progress=progress
            )
        except NightlyAlreadyRunning as exc:
            raise CommandError(str(exc), returncode=EXIT_LOCKED) from None
        except NightlyDateInFuture as exc:
            raise CommandError(str(exc), returncode=EXIT_REFUSED) from None
        finally:
            bar.close()
        for night in result.nights:
            self._summary(night, dry_run=dry_run, caught_up=night is not result)
        return result.failed

    def _summary(self, night: NightlyResult, *, dry_run: bool, caught_up: bool) -> None:
        label = "Dry run (nothing written)" if dry_run else f"Job run {night.job_run_id}"
        missed = " (a missed night, caught up)" if caught_up else ""
        self.stdout.write(f"{label} for {night.run_date}{missed}:")
        for step, counts in night.counts.items():
            if caught_up and not counts:
                continue  # a quiet missed night takes one line
            summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing to do"
            self.stdout.write(f"  {step:<24} {summary}")
        for error in night.errors:
            self.stderr.write(f"  error in {error['step']}: {error}")
