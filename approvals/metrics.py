"""The approval queues for /metrics (portal/metrics.py): pending requests waiting on
each approval slot, and approved requests waiting to be executed, by kind. Two queries
a scrape."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count, Exists, OuterRef, Q
from prometheus_client.core import GaugeMetricFamily

from approvals.models import ApprovalDecision, ApprovalRequest
from portal import policy

Status = ApprovalRequest.Status


def pending_per_slot() -> dict[str, int]:
    """Pending requests with each slot still open (required and not yet filled)."""
    open_slot = {
        slot: Count(
            "pk",
            filter=Q(required_slots__contains=[slot])
            & ~Q(Exists(ApprovalDecision.objects.filter(request=OuterRef("pk"), slot=slot))),
        )
        for slot in policy.SLOTS
    }
    return ApprovalRequest.objects.filter(status=Status.PENDING).aggregate(**open_slot)


class ApprovalQueueCollector:
    def collect(self) -> Iterator[GaugeMetricFamily]:
        pending = GaugeMetricFamily(
            "portal_approvals_pending",
            "Pending approval requests waiting on each approval slot.",
            labels=["slot"],
        )
        for slot, count in pending_per_slot().items():
            pending.add_metric([slot], count)
        yield pending

        approved = dict(
            ApprovalRequest.objects.filter(status=Status.APPROVED)
            .values_list("kind")
            .annotate(n=Count("pk"))
            .order_by()
        )
        to_execute = GaugeMetricFamily(
            "portal_approvals_approved_unexecuted",
            "Approved requests not executed yet, by kind.",
            labels=["kind"],
        )
        for kind in ApprovalRequest.Kind.values:
            to_execute.add_metric([kind], approved.get(kind, 0))
        yield to_execute
