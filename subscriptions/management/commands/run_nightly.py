"""`manage.py run_nightly [--date YYYY-MM-DD] [--until YYYY-MM-DD] [--dry-run]`

Runs the nightly steps in this process (the same code the Celery task runs), with a
progress bar and a summary. `--until` backfills every date from --date to --until in
order, as if the job had run each night.
"""

from __future__ import annotations

from datetime import date, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from subscriptions.services.nightly import NightlyAlreadyRunning, nightly_run


class Command(BaseCommand):
    help = "Run the nightly reconciliation, suspension, renewal and expiry steps."

    def add_arguments(self, parser):
        parser.add_argument("--date", type=date.fromisoformat, help="Default: today.")
        parser.add_argument("--until", type=date.fromisoformat, help="Backfill to this date.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Write nothing; say what would happen."
        )
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **opts):
        first = opts["date"] or timezone.localdate()
        last = opts["until"] or first
        if last < first:
            raise CommandError("--until must not be before --date.")
        day = first
        while day <= last:
            self._run(day, dry_run=opts["dry_run"], quiet=opts["no_progress"])
            day += timedelta(days=1)

    def _run(self, day: date, *, dry_run: bool, quiet: bool) -> None:
        bar = tqdm(desc=f"{day}", unit=" records", disable=quiet)

        def progress(step: str, done: int) -> None:
            bar.set_postfix_str(step)
            bar.update(done)

        try:
            result = nightly_run(
                run_date=day, dry_run=dry_run, trigger="command", progress=progress
            )
        except NightlyAlreadyRunning as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bar.close()
        label = "Dry run (nothing written)" if dry_run else f"Job run {result.job_run_id}"
        self.stdout.write(f"{label} for {day}:")
        for step, counts in result.counts.items():
            summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing to do"
            self.stdout.write(f"  {step:<24} {summary}")
        for error in result.errors:
            self.stderr.write(f"  error in {error['step']}: {error}")
