"""Import a daily seat usage CSV (SaaS or self-managed, told apart by the header).

A file with any bad line imports nothing: every bad line goes to stderr (the first
PROBLEMS_LISTED, and how many more) and the command exits with status 2. A count above
USAGE_MAX_BILLABLE_USERS is a bad line, and so is a byte that is not UTF-8 or a field over
the csv field limit, each on its own line. The file is streamed: memory does not grow with
its size. `--dry-run` validates and counts without writing.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from subscriptions.services.usage import UsageImportError, parse_usage_csv, usage_import

KIND_LABELS = {"saas": "SaaS", "self_managed": "self-managed"}


class Command(BaseCommand):
    help = (
        "Import daily seat usage from FILE.csv (SaaS: namespace,date,billable_users; "
        "self-managed: license_key,instance_id,date,billable_users,"
        "max_historical_user_count). A file with any bad line imports nothing; counts above "
        "USAGE_MAX_BILLABLE_USERS are bad lines."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", metavar="FILE.csv")
        parser.add_argument(
            "--dry-run", action="store_true", help="Validate and count; write nothing."
        )

    def handle(self, *args, file: str, dry_run: bool, **options):
        path = Path(file)
        try:
            with path.open("rb") as stream:
                kind, rows = parse_usage_csv(stream)
        except OSError as error:
            raise CommandError(f"Cannot read {path}: {error.strerror}", returncode=2) from error
        except UsageImportError as error:
            for line, reason in error.problems:
                self.stderr.write(f"{path.name}:{line}: {reason}")
            count, more = error.count, error.count - len(error.problems)
            if more:
                self.stderr.write(
                    f"{path.name}: {more} more bad line{'s' if more != 1 else ''} not listed"
                )
            raise CommandError(
                f"{path.name} was not imported: {count} bad line{'s' if count != 1 else ''}, "
                "nothing was written.",
                returncode=2,
            ) from error

        label = f"{path.name} ({KIND_LABELS.get(kind, kind)})"
        if not rows:
            self.stdout.write(f"{label}: the file has no usage rows, nothing imported.")
            return
        result = usage_import(rows=rows, kind=kind, source=path.name, dry_run=dry_run)
        if dry_run:
            self.stdout.write(
                f"Dry run, nothing written. {label}: {result.total} rows would create "
                f"{result.created}, replace {result.replaced}, leave {result.unchanged} "
                "unchanged."
            )
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Imported {label}: {result.total} rows, {result.created} created, "
                    f"{result.replaced} replaced, {result.unchanged} unchanged."
                )
            )
