"""Approval requests for money-moving overrides and the decisions on them.

The workflows (who may request, approve and execute, and when) live in the approvals
services and policy; these models carry the records and the invariants a database can
hold: one decision per slot, one slot per person, valid states.
"""

from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from subscriptions.billing import CURRENCIES
from subscriptions.models import CURRENCY_CHOICES, MONEY, Reconciliation, Subscription, TimeStamped


class ApprovalKind(models.TextChoices):
    QSR_PAUSE = "qsr_pause", "QSR pause"
    MAX_SEATS_RESET = "max_seats_reset", "Max seats reset (waived true-up)"
    QSR_REFUND = "qsr_refund", "QSR refund"
    FREE_PERIOD = "free_period", "Free-period extension"


class ApprovalStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"
    EXECUTED = "executed", "Executed"


class ApprovalRequest(TimeStamped):
    Kind = ApprovalKind
    Status = ApprovalStatus

    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="approval_requests"
    )
    subscription = models.ForeignKey(
        Subscription, on_delete=models.PROTECT, related_name="approval_requests"
    )
    reconciliation = models.ForeignKey(
        Reconciliation,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="approval_requests",
        help_text="QSR refunds: the reconciliation refunded.",
    )
    linked_reset = models.OneToOneField(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="refund",
        help_text="QSR refunds: the max seats reset of the same namespace.",
    )
    justification = models.TextField()
    ticket_url = models.URLField()
    # What is at stake, computed by the services from the records, never typed in.
    seats_at_stake = models.PositiveIntegerField(default=0)
    amount_at_stake = models.DecimalField(
        **MONEY, default=Decimal("0"), validators=[MinValueValidator(Decimal("0"))]
    )
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    pause_until = models.DateField(null=True, blank=True, help_text="QSR pauses; empty = term end.")
    free_from = models.DateField(null=True, blank=True, help_text="Free periods: the first day.")
    free_days = models.PositiveIntegerField(null=True, blank=True)
    reset_to = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Max seats resets: the value asked for, then the one support set on execution.",
    )
    required_slots = ArrayField(
        models.CharField(max_length=32), default=list, help_text="Roles that must each approve."
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    executed_at = models.DateTimeField(null=True, blank=True)
    executed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="executed_requests",
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["-created_at", "-id"], name="approval_list_order")]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=ApprovalKind.values), name="approval_kind"),
            models.CheckConstraint(
                condition=Q(status__in=ApprovalStatus.values), name="approval_status"
            ),
            models.CheckConstraint(
                condition=Q(amount_at_stake__gte=0), name="approval_amount_non_negative"
            ),
            models.CheckConstraint(condition=Q(currency__in=CURRENCIES), name="approval_currency"),
            models.CheckConstraint(
                condition=~Q(kind="qsr_refund") | Q(reconciliation__isnull=False),
                name="approval_refund_names_reconciliation",
                violation_error_message="A refund request names the reconciliation refunded.",
            ),
            models.CheckConstraint(
                condition=~Q(kind="free_period") | Q(free_days__isnull=False, free_days__gt=0),
                name="approval_free_period_has_days",
                violation_error_message="A free period needs a number of days.",
            ),
            models.CheckConstraint(
                condition=~Q(status="executed")
                | Q(executed_at__isnull=False, executed_by__isnull=False),
                name="approval_executed_says_by_whom",
            ),
            models.CheckConstraint(
                condition=Q(executed_by__isnull=True) | ~Q(executed_by=models.F("requester")),
                name="approval_executor_is_not_requester",
                violation_error_message="Whoever executes a request did not request it.",
            ),
            models.CheckConstraint(
                condition=Q(kind="qsr_refund", linked_reset__isnull=False)
                | (~Q(kind="qsr_refund") & Q(linked_reset__isnull=True)),
                name="approval_refund_links_reset",
                violation_error_message="Only a refund is linked to a max seats reset, and it is.",
            ),
            # A double submit or two people at once cannot open the same request twice.
            models.UniqueConstraint(
                fields=["subscription", "kind"],
                condition=Q(status__in=["pending", "approved"]) & ~Q(kind="qsr_refund"),
                name="approval_one_open_request_per_kind",
                violation_error_message="A request of this kind is open for the subscription.",
            ),
            models.UniqueConstraint(
                fields=["reconciliation"],
                condition=Q(status__in=["pending", "approved"], kind="qsr_refund"),
                name="approval_one_open_refund_per_reconciliation",
                violation_error_message="A refund of this reconciliation is open already.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.get_status_display()})"

    @property
    def is_open(self) -> bool:
        return self.status in (ApprovalStatus.PENDING, ApprovalStatus.APPROVED)

    @property
    def refund_complete(self) -> bool | None:
        """Refunds: done only when the refund is processed and its reset executed."""
        if self.kind != ApprovalKind.QSR_REFUND:
            return None
        return (
            self.status == ApprovalStatus.EXECUTED
            # The approval_refund_links_reset constraint: a refund always has its reset.
            and self.linked_reset.status == ApprovalStatus.EXECUTED  # type: ignore[union-attr]
        )

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.executed_by_id and self.executed_by_id == self.requester_id:
            errors["executed_by"] = "Whoever executes a request did not request it."
        if self.status == ApprovalStatus.EXECUTED:
            if not self.executed_by_id:
                errors["executed_by"] = "An executed request records who executed it."
            if not self.executed_at:
                errors["executed_at"] = "An executed request records when it was executed."
        if self.kind == ApprovalKind.QSR_REFUND and not self.reconciliation_id:
            errors["reconciliation"] = "A refund request names the reconciliation refunded."
        if self.kind == ApprovalKind.QSR_REFUND and not self.linked_reset_id:
            errors["linked_reset"] = "A refund is linked to a max seats reset of the namespace."
        if self.kind != ApprovalKind.QSR_REFUND and self.linked_reset_id:
            errors["linked_reset"] = "Only a refund is linked to a max seats reset."
        if self.kind == ApprovalKind.FREE_PERIOD and not self.free_days:
            errors["free_days"] = "A free period needs a number of days."
        if errors:
            raise ValidationError(errors)


class ApprovalDecision(models.Model):
    class Decision(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Reject"

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="decisions")
    slot = models.CharField(max_length=32, help_text="The role whose approval this fills.")
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="approval_decisions"
    )
    # The request's requester, copied so the database itself refuses a self-approval.
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    decision = models.CharField(max_length=8, choices=Decision.choices)
    reason = models.TextField(blank=True)
    decided_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["decided_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(decision__in=["approve", "reject"]), name="approval_decision_valid"
            ),
            models.UniqueConstraint(
                fields=["request", "slot"],
                name="approval_one_decision_per_slot",
                violation_error_message="This approval slot is filled already.",
            ),
            models.UniqueConstraint(
                fields=["request", "approver"],
                name="approval_one_slot_per_person",
                violation_error_message="You have already decided on this request.",
            ),
            models.CheckConstraint(
                condition=~Q(approver=models.F("requester")),
                name="approval_not_own_request",
                violation_error_message="Nobody approves their own request.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_decision_display()} ({self.slot}) by {self.approver}"


class DisputeStatus(models.TextChoices):
    ROUTED = "routed", "Routed to sales"
    RESOLVED = "resolved", "Resolved"


class Dispute(TimeStamped):
    """A customer's dispute of a reconciliation, recorded by support and routed to the
    account's sales manager. Support's ticket is closed when it is routed; what follows
    (a pause request, a reset, nothing) is sales' call."""

    Status = DisputeStatus

    reconciliation = models.ForeignKey(
        Reconciliation, on_delete=models.PROTECT, related_name="disputes"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ROUTED)
    reason = models.TextField(help_text="What the customer disputes.")
    ticket_url = models.URLField(help_text="Support's ticket, closed as routed.")
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="disputes_recorded"
    )
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="disputes_assigned",
        help_text="The account's sales manager.",
    )
    ticket_closed_at = models.DateTimeField(help_text="When support's ticket was routed.")
    resolution = models.TextField(blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=DisputeStatus.values), name="dispute_status"
            ),
            models.UniqueConstraint(
                fields=["reconciliation"],
                condition=Q(status="routed"),
                name="dispute_one_open_per_reconciliation",
                violation_error_message="This reconciliation is disputed already.",
            ),
            models.CheckConstraint(
                condition=~Q(status="resolved") | Q(resolved_at__isnull=False),
                name="dispute_resolved_says_when",
            ),
        ]

    def __str__(self) -> str:
        return f"Dispute #{self.pk} of {self.reconciliation}"
