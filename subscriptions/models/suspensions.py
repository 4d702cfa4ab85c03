"""Suspensions: stretches of time a subscription is suspended (credit and recharge, or
freeze) or given for free, never overlapping another of the same subscription."""

from __future__ import annotations

from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import RangeOperators
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from subscriptions.billing import days_between
from subscriptions.models.common import DateRange, TimeStamped, in_choices
from subscriptions.models.subscriptions import Subscription


class SuspensionMode(models.TextChoices):
    CREDIT = "credit", "Credit and recharge"
    FREEZE = "freeze", "Freeze (extend the term, no lines)"
    FREE_PERIOD = "free_period", "Free period (service continues)"


class SuspensionStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    ACTIVE = "active", "Active"
    RESUMED = "resumed", "Resumed"
    CANCELLED = "cancelled", "Cancelled"


class Suspension(TimeStamped):
    """A stretch of time a subscription is suspended, or (free_period) given for free."""

    Mode = SuspensionMode
    Status = SuspensionStatus

    subscription = models.ForeignKey(
        Subscription, on_delete=models.PROTECT, related_name="suspensions"
    )
    suspend_date = models.DateField()
    resume_date = models.DateField()
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.CREDIT)
    extend_term = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SCHEDULED)
    ticket_url = models.URLField(help_text="Ticket that asked for this change.")
    reason = models.TextField(blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-suspend_date"]
        indexes = [models.Index(fields=["-suspend_date", "-id"], name="suspension_list_order")]
        constraints = [
            models.CheckConstraint(
                condition=Q(resume_date__gt=models.F("suspend_date")),
                name="suspension_resume_after_suspend",
                violation_error_message="The resume date must be after the suspend date.",
            ),
            models.CheckConstraint(
                condition=in_choices("mode", SuspensionMode), name="suspension_mode"
            ),
            models.CheckConstraint(
                condition=in_choices("status", SuspensionStatus), name="suspension_status"
            ),
            models.CheckConstraint(
                condition=~Q(mode__in=["freeze", "free_period"]) | Q(extend_term=True),
                name="suspension_freeze_extends",
                violation_error_message="Freezes and free periods always extend the term.",
            ),
            ExclusionConstraint(
                name="suspension_no_overlap",
                expressions=[
                    ("subscription", RangeOperators.EQUAL),
                    (DateRange("suspend_date", "resume_date"), RangeOperators.OVERLAPS),
                ],
                condition=~Q(status="cancelled"),
                violation_error_message="This overlaps another suspension of the subscription.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_mode_display()} {self.suspend_date}–{self.resume_date}"

    @property
    def days(self) -> int:
        return days_between(self.suspend_date, self.resume_date)

    def validate_constraints(self, exclude=None):
        # Django 5.2 raises FieldError instead of validating when a field of an
        # ExclusionConstraint's condition is excluded (ticket #36222).
        exclude = set(exclude or ())
        if "status" in exclude:
            if self.status in self.Status.values:
                exclude.discard("status")  # still tell a status-less form about an overlap
            else:
                exclude |= {"suspend_date", "resume_date"}  # clean_fields reported the status
        super().validate_constraints(exclude=exclude)

    def clean(self) -> None:
        if self.mode in (self.Mode.FREEZE, self.Mode.FREE_PERIOD):
            self.extend_term = True
        if not (self.suspend_date and self.resume_date):
            return
        if self.resume_date <= self.suspend_date:
            raise ValidationError(
                {"resume_date": "The resume date must be after the suspend date."}
            )
        if not self.subscription_id:
            return
        sub = self.subscription
        if not sub.term_start <= self.suspend_date < sub.term_end:
            raise ValidationError(
                {"suspend_date": f"Must lie inside the term ({sub.term_start} to {sub.term_end})."}
            )
        if self.mode != self.Mode.FREE_PERIOD and self.resume_date > sub.term_end:
            raise ValidationError(
                {"resume_date": f"Must be no later than the term end ({sub.term_end})."}
            )
