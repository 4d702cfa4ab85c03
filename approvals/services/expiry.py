"""Expiry of stale requests (a nightly step): pending for 30 days, or approved and not
executed within 14. An expired request cannot be approved or executed any more.

Expiry is an end like a rejection or a cancel, and goes through the same moves: the
transition table allows it, the history says why, a refund linked to an expiring max
seats reset ends with it, and the requester is emailed once the change commits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date, timedelta

from django.db import transaction
from django.db.models import Q, QuerySet

from approvals.models import ApprovalRequest
from approvals.services.decisions import end_linked_refund, lock, move
from approvals.services.notifications import notify_on_commit
from portal.policy import Actor
from subscriptions.services.batches import Errors, each_batch

PENDING_EXPIRES_AFTER = timedelta(days=30)
APPROVED_EXPIRES_AFTER = timedelta(days=14)
Status = ApprovalRequest.Status


def _stale(run_date: date, only: Sequence[int] | None) -> QuerySet[ApprovalRequest]:
    stale = Q(
        status=Status.PENDING,
        created_at__date__lte=run_date - PENDING_EXPIRES_AFTER,
    ) | Q(
        status=Status.APPROVED,
        decided_at__date__lte=run_date - APPROVED_EXPIRES_AFTER,
    )
    # A reset whose refund deal desk processed waits for support, however long: dropping
    # it would charge the refunded seats again.
    processed_refunds = ApprovalRequest.objects.filter(
        kind=ApprovalRequest.Kind.QSR_REFUND, status=Status.EXECUTED
    )
    requests = ApprovalRequest.objects.filter(stale).exclude(
        pk__in=processed_refunds.values("linked_reset_id")
    )
    if only is not None:
        requests = requests.filter(subscription_id__in=only)
    return requests


def approval_requests_expire(
    *, run_date: date, actor: Actor, errors: Errors = None, only: Sequence[int] | None = None
) -> Counter[str]:
    """Expire requests pending for 30 days and approved ones not executed within 14.
    One that fails is listed in `errors` and tried again the next night."""
    ids = list(_stale(run_date, only).order_by("pk").values_list("pk", flat=True))

    def work(batch: Sequence[int]) -> Counter[str]:
        counts: Counter[str] = Counter()
        with transaction.atomic():
            for pk in batch:
                # Locked one by one, in id order; one a person is deciding right now is
                # left to them, and its state is read again under the lock.
                req = lock(ApprovalRequest(pk=pk))
                if not _stale(run_date, only).filter(pk=req.pk).exists():
                    continue
                was = req.status
                move(req, Status.EXPIRED, actor=actor, reason=f"expired ({was} too long)")
                end_linked_refund(req, actor=actor, why="its max seats reset expired")
                notify_on_commit("decided", req.pk)
                counts[f"expired:{was}"] += 1
        return counts

    def fail(pk: int, exc: Exception) -> None:
        if errors is not None:
            errors.append({"step": "expiry", "request": pk, "error": str(exc)[:2000]})

    return each_batch(ids, work, fail=fail, size=200)
