"""Celery tasks of the approvals app: thin wrappers that take ids."""

from __future__ import annotations

from celery import shared_task

from approvals.services.notifications import approval_emails_send


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=60, max_retries=5)
def send_approval_emails(event: str, record_id: int) -> int:
    return approval_emails_send(event=event, record_id=record_id)
