"""The nightly run for /metrics (portal/metrics.py), from its job runs: when it last
succeeded, what its latest finished run did and how long each step took, and how many
runs failed or were abandoned. Three queries a scrape."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from subscriptions.models import JobRun

Status = JobRun.Status
FINISHED = (Status.SUCCEEDED, Status.FAILED)


class NightlyCollector:
    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        runs = JobRun.objects.exclude(trigger="simulation")
        last_success = (
            runs.filter(status=Status.SUCCEEDED, finished_at__isnull=False)
            .order_by("-finished_at")
            .values_list("finished_at", flat=True)
            .first()
        )
        yield GaugeMetricFamily(
            "portal_nightly_last_success_timestamp_seconds",
            "When the last nightly run that recorded no error finished (Unix time; 0: never).",
            value=last_success.timestamp() if last_success else 0,
        )

        latest = (
            runs.filter(status__in=FINISHED, finished_at__isnull=False)
            .order_by("-finished_at")
            .values("started_at", "finished_at", "counts", "errors", "step_seconds")
            .first()
        )
        duration = GaugeMetricFamily(
            "portal_nightly_last_run_duration_seconds",
            "How long the latest finished nightly run took.",
        )
        step_seconds = GaugeMetricFamily(
            "portal_nightly_step_duration_seconds",
            "How long each step of the latest finished nightly run took.",
            labels=["step"],
        )
        rows = GaugeMetricFamily(
            "portal_nightly_step_rows",
            "What each step of the latest finished nightly run did, by outcome.",
            labels=["step", "outcome"],
        )
        errors = GaugeMetricFamily(
            "portal_nightly_last_run_errors",
            "Errors the latest finished nightly run recorded (records it could not do).",
        )
        if latest and latest["finished_at"]:
            duration.add_metric([], (latest["finished_at"] - latest["started_at"]).total_seconds())
            for step, seconds in latest["step_seconds"].items():
                step_seconds.add_metric([step], seconds)
            for step, outcomes in latest["counts"].items():
                for outcome, count in outcomes.items():
                    rows.add_metric([step, outcome], count)
            errors.add_metric([], len(latest["errors"]))
        yield from (duration, step_seconds, rows, errors)

        by_status = dict(runs.values_list("status").annotate(n=Count("pk")).order_by())
        total = CounterMetricFamily(
            "portal_nightly_runs", "Nightly runs recorded, by how they ended.", labels=["status"]
        )
        for status in Status.values:
            total.add_metric([status], by_status.get(status, 0))
        yield total
