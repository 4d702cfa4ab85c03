"""Admin for the nightly job runs: what each run did, how far it got, what failed."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from portal.admin_base import ViewOnly
from portal.admin_safety import UrlGuardMixin
from subscriptions.models import JobRun


@admin.register(JobRun)
class JobRunAdmin(UrlGuardMixin, ViewOnly, admin.ModelAdmin):
    list_display = ("run_date", "status", "trigger", "started_at", "finished_at", "step",
                    "progress_done", "heartbeat_at", "error_count")  # fmt: skip
    list_filter = ("status", "trigger")
    date_hierarchy = "run_date"
    readonly_fields = ("run_date", "status", "abandoned_reason", "trigger", "started_at",
                       "finished_at", "heartbeat_at", "step", "progress_done", "counts_table",
                       "errors_table")  # fmt: skip
    fields = readonly_fields

    @admin.display(description="errors")
    def error_count(self, run: JobRun) -> int:
        return len(run.errors)

    @admin.display(description="what each step did")
    def counts_table(self, run: JobRun) -> str:
        rows = (
            (step, ", ".join(f"{k}: {v}" for k, v in sorted(c.items())) or "nothing to do")
            for step, c in run.counts.items()
        )
        return format_html(
            "<table>{}</table>", format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows)
        )

    @admin.display(description="errors")
    def errors_table(self, run: JobRun) -> str:
        if not run.errors:
            return "none"
        rows = ((e.get("step"), e.get("subscription") or "—", e.get("error")) for e in run.errors)
        return format_html(
            "<table><tr><th>step</th><th>subscription</th><th>error</th></tr>{}</table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
        )
