"""The outbox for /metrics (portal/metrics.py): unsent emails by status, and how long
the oldest waiting one has waited. One query a scrape."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count, Min, Q
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from outbox.models import OutboxMessage

Status = OutboxMessage.Status
UNSENT = (Status.PENDING, Status.FAILED)


class OutboxCollector:
    def collect(self) -> Iterator[GaugeMetricFamily]:
        figures = OutboxMessage.objects.aggregate(
            **{status: Count("pk", filter=Q(status=status)) for status in UNSENT},
            oldest=Min("created_at", filter=Q(status=Status.PENDING)),
        )
        unsent = GaugeMetricFamily(
            "portal_outbox_unsent", "Emails not sent, by status.", labels=["status"]
        )
        for status in UNSENT:
            unsent.add_metric([status], figures[status])
        yield unsent
        oldest = figures["oldest"]
        yield GaugeMetricFamily(
            "portal_outbox_oldest_pending_age_seconds",
            "How long the oldest email waiting to be sent has waited (0: none waits).",
            value=(timezone.now() - oldest).total_seconds() if oldest else 0,
        )
