"""Expiry of stale requests (a nightly step): pending for 30 days, or approved and not
executed within 14. An expired request cannot be approved or executed any more."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

from django.db import transaction
from django.db.models import Q

from approvals.models import ApprovalRequest
from subscriptions.services.history import save_with_reason

PENDING_EXPIRES_AFTER = timedelta(days=30)
APPROVED_EXPIRES_AFTER = timedelta(days=14)


def approval_requests_expire(*, run_date: date, actor=None, only=None) -> Counter:
    """Expire requests pending for 30 days and approved ones not executed within 14."""
    counts: Counter = Counter()
    stale = Q(
        status=ApprovalRequest.Status.PENDING,
        created_at__date__lte=run_date - PENDING_EXPIRES_AFTER,
    ) | Q(
        status=ApprovalRequest.Status.APPROVED,
        decided_at__date__lte=run_date - APPROVED_EXPIRES_AFTER,
    )
    # A reset whose refund deal desk processed waits for support, however long: dropping
    # it would charge the refunded seats again.
    processed_refunds = ApprovalRequest.objects.filter(
        kind=ApprovalRequest.Kind.QSR_REFUND, status=ApprovalRequest.Status.EXECUTED
    )
    requests = ApprovalRequest.objects.filter(stale).exclude(
        pk__in=processed_refunds.values("linked_reset_id")
    )
    if only is not None:
        requests = requests.filter(subscription_id__in=only)
    with transaction.atomic():
        for request in requests.select_for_update(skip_locked=True):
            was = request.status
            request.status = ApprovalRequest.Status.EXPIRED
            save_with_reason(request, ["status"], reason=f"expired ({was} too long)", actor=actor)
            counts[f"expired:{was}"] += 1
    return counts
