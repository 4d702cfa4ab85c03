"""Quarterly seat reconciliations (QSR): one row per subscription term and quarter, from
scheduled through notified to invoiced, refunded, skipped or failed."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from subscriptions.billing import CURRENCIES
from subscriptions.models.common import CURRENCY_CHOICES, MONEY, TimeStamped, in_choices
from subscriptions.models.subscriptions import Subscription


class ReconciliationStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    PENDING = "pending", "Pending (notified)"
    PROCESSED = "processed", "Processed"
    REFUNDED = "refunded", "Refunded"
    SKIPPED = "skipped", "Skipped"
    FAILED = "failed", "Failed"


class ReconciliationSkipReason(models.TextChoices):
    NONE = "", "—"
    DISABLED_FOR_BUG = "disabled_for_bug", "QSR disabled for a bug"
    PAUSED = "paused", "QSR paused"
    INELIGIBLE = "ineligible", "Not eligible for QSR"
    SUSPENDED = "suspended", "Subscription suspended"


class Reconciliation(TimeStamped):
    """One quarter-end reconciliation of one subscription term (quarters 1-3)."""

    Status = ReconciliationStatus
    SkipReason = ReconciliationSkipReason

    subscription = models.ForeignKey(
        Subscription, on_delete=models.PROTECT, related_name="reconciliations"
    )
    term_start = models.DateField()
    quarter = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(3)]
    )
    reconciliation_date = models.DateField()
    notify_date = models.DateField()
    invoice_date = models.DateField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SCHEDULED)
    skip_reason = models.CharField(
        max_length=20, choices=SkipReason.choices, blank=True, default=""
    )
    seats_paid = models.PositiveIntegerField(null=True, blank=True)
    max_seats_used = models.PositiveIntegerField(null=True, blank=True)
    overage_seats = models.PositiveIntegerField(null=True, blank=True)
    annual_unit_price = models.DecimalField(**MONEY, null=True, blank=True)
    remaining_quarters = models.PositiveSmallIntegerField(null=True, blank=True)
    amount = models.DecimalField(**MONEY, null=True, blank=True)
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    refunded_seats = models.PositiveIntegerField(default=0)
    failure_reason = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    notified_at = models.DateTimeField(null=True, blank=True)
    invoiced_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-reconciliation_date", "subscription_id"]
        indexes = [
            # The list's order (the admin adds the id), whole and within a status.
            models.Index(
                fields=["-reconciliation_date", "subscription", "-id"],
                name="reconciliation_list_order",
            ),
            models.Index(
                fields=["status", "-reconciliation_date", "subscription", "-id"],
                name="reconciliation_status_order",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "term_start", "quarter"],
                name="reconciliation_once_per_term_quarter",
                violation_error_message="This quarter of this term is reconciled already.",
            ),
            models.CheckConstraint(
                condition=Q(quarter__gte=1, quarter__lte=3), name="reconciliation_quarter_1_3"
            ),
            models.CheckConstraint(
                condition=Q(currency__in=CURRENCIES), name="reconciliation_currency"
            ),
            models.CheckConstraint(
                condition=in_choices("status", ReconciliationStatus), name="reconciliation_status"
            ),
            models.CheckConstraint(
                condition=in_choices("skip_reason", ReconciliationSkipReason),
                name="reconciliation_skip_reason",
            ),
            models.CheckConstraint(
                # A skipped reconciliation says why; nothing else carries a skip reason.
                condition=(Q(status="skipped") & ~Q(skip_reason=""))
                | (~Q(status="skipped") & Q(skip_reason="")),
                name="reconciliation_skip_has_reason",
                violation_error_message="A skipped reconciliation needs a reason, and only it.",
            ),
            models.CheckConstraint(
                condition=Q(amount__isnull=True) | Q(amount__gte=0),
                name="reconciliation_amount_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(annual_unit_price__isnull=True) | Q(annual_unit_price__gte=0),
                name="reconciliation_price_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(overage_seats__isnull=True)
                | Q(refunded_seats__lte=models.F("overage_seats")),
                name="reconciliation_refund_within_overage",
                violation_error_message="Cannot refund more seats than the overage.",
            ),
        ]

    def __str__(self) -> str:
        return f"Q{self.quarter} {self.reconciliation_date} · {self.subscription}"

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.status == self.Status.SKIPPED and not self.skip_reason:
            errors["skip_reason"] = "A skipped reconciliation needs a reason."
        elif self.status != self.Status.SKIPPED and self.skip_reason:
            errors["skip_reason"] = "Only a skipped reconciliation has a skip reason."
        if self.overage_seats is not None and self.refunded_seats > self.overage_seats:
            errors["refunded_seats"] = "Cannot refund more seats than the overage."
        if errors:
            raise ValidationError(errors)
