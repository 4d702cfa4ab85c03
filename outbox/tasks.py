"""Celery task: send what the outbox holds. Queued after each change that writes
emails, and by beat every few minutes (the sweep) for any whose request never ran."""

from __future__ import annotations

from celery import shared_task

from outbox.services import outbox_send_due


@shared_task(acks_late=True, soft_time_limit=540, time_limit=600)
def outbox_send() -> dict:
    # No retry of the task itself: each message keeps its own attempts and next time,
    # and a failed send is never a reason to resend the ones that went out.
    return dict(outbox_send_due())
