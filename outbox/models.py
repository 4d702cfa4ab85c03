"""The outbox: every email the portal sends is first a row here, written in the same
transaction as the change that causes it. A rolled-back change leaves no row, so it
mails nobody; a committed change always leaves one, so a process killed before it
could hand the message to a worker loses nothing: the sweep sends it.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q


class OutboxStatus(models.TextChoices):
    PENDING = "pending", "Waiting to be sent"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed (gave up)"


class OutboxMessage(models.Model):
    """One email: who it goes to, what it says, and where it stands."""

    Status = OutboxStatus

    key = models.CharField(
        max_length=200,
        unique=True,
        help_text="What caused it (e.g. qsr-notice:<reconciliation>): the same cause "
        "never writes a second message.",
    )
    kind = models.CharField(max_length=32, help_text="reconciliation_notice, approval, dispute")
    # Either the text itself, or the record it is about, whose text the kind's renderer
    # (settings.OUTBOX_RENDERERS) writes when it is sent: a nightly batch records
    # thousands of notices by reference, in one statement.
    object_id = models.BigIntegerField(null=True, blank=True)
    subject = models.CharField(max_length=300, blank=True)
    body = models.TextField(blank=True)
    from_email = models.CharField(max_length=254, blank=True)
    to = ArrayField(models.CharField(max_length=254))
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # A sender holds a message until this time; one that died holding it lets it go.
    claimed_until = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "email"
        verbose_name_plural = "emails (outbox)"
        indexes = [
            models.Index(fields=["id"], name="outbox_pending", condition=Q(status="pending")),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=OutboxStatus.values), name="outbox_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status="sent") | Q(sent_at__isnull=False),
                name="outbox_sent_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subject} → {', '.join(self.to)}"
