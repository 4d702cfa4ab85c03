"""Subscriptions: a customer's paid seats on a namespace for a term, their choices
(status, QSR state, plan and the QSR eligibility attributes), and the proxy behind the
"QSR disabled for bugs" list."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from subscriptions.billing import CURRENCIES, MAX_ANNUAL_UNIT_PRICE, MAX_SEATS, days_between
from subscriptions.models.accounts import Customer, Namespace
from subscriptions.models.common import (
    CURRENCY_CHOICES,
    MONEY,
    TimeStamped,
    check_currency_decimals,
    in_choices,
)


class SubscriptionStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"


class SubscriptionQsrState(models.TextChoices):
    ENABLED = "enabled", "Enabled"
    DISABLED_FOR_BUG = "disabled_for_bug", "Disabled for bug"
    PAUSED = "paused", "Paused"


class SubscriptionPlan(models.TextChoices):
    PREMIUM = "premium", "Premium"
    ULTIMATE = "ultimate", "Ultimate"


class SubscriptionChannel(models.TextChoices):
    DIRECT = "direct", "Direct"
    RESELLER = "reseller", "Reseller / channel"


class SubscriptionPayment(models.TextChoices):
    CARD = "card", "Card"
    INVOICE = "invoice", "Invoice"
    PURCHASE_ORDER = "purchase_order", "Purchase order"


class SubscriptionProgram(models.TextChoices):
    NONE = "", "None"
    EDUCATION = "education", "Education"
    OPEN_SOURCE = "open_source", "Open source"
    STARTUP = "startup", "Startups"


class Subscription(TimeStamped):
    Status = SubscriptionStatus
    QsrState = SubscriptionQsrState
    Plan = SubscriptionPlan
    Channel = SubscriptionChannel
    Payment = SubscriptionPayment
    Program = SubscriptionProgram

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="subscriptions")
    namespace = models.ForeignKey(Namespace, on_delete=models.PROTECT, related_name="subscriptions")
    plan = models.CharField(max_length=16, choices=Plan.choices, default=Plan.PREMIUM)
    # Ceilings from billing.py "Bounds": seats x price always fits the money columns.
    seats = models.PositiveIntegerField(
        validators=[MaxValueValidator(MAX_SEATS)],
        help_text="Paid seats: purchased plus those added by reconciliations this term.",
    )
    annual_unit_price = models.DecimalField(
        **MONEY,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(MAX_ANNUAL_UNIT_PRICE)],
        help_text="Per seat per year.",
    )
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    term_start = models.DateField(help_text="Inclusive.")
    term_end = models.DateField(help_text="Exclusive.")
    term_months = models.PositiveSmallIntegerField(
        default=12, help_text="Length of the term as sold (extensions do not change it)."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)

    qsr_state = models.CharField(max_length=20, choices=QsrState.choices, default="enabled")
    qsr_paused_until = models.DateField(null=True, blank=True)
    qsr_bug_url = models.URLField(blank=True, help_text="Confirmed bug behind a QSR disable.")
    qsr_ticket_url = models.URLField(blank=True)
    qsr_changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    qsr_changed_at = models.DateTimeField(null=True, blank=True)

    # Eligibility attributes (DOMAIN.md "QSR": eligible).
    channel = models.CharField(max_length=16, choices=Channel.choices, default="direct")
    payment_method = models.CharField(max_length=16, choices=Payment.choices, default="card")
    program = models.CharField(max_length=16, choices=Program.choices, blank=True, default="")
    offline_license = models.BooleanField(default=False)

    history = HistoricalRecords()

    class Meta:
        ordering = ["customer__name", "term_start"]
        indexes = [
            # Within each customer (walked in name order), the list's order.
            models.Index(fields=["customer", "term_start", "-id"], name="subscription_list_order"),
            # The date hierarchy's bounds and drill-down.
            models.Index(fields=["term_end"], name="subscription_term_end"),
            # Paused and disabled for a bug: the few a QSR filter or list looks for.
            models.Index(
                fields=["qsr_state", "-qsr_changed_at"],
                condition=~Q(qsr_state="enabled"),
                name="subscription_qsr_not_enabled",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(annual_unit_price__gte=0),
                name="subscription_price_non_negative",
                violation_error_message="The unit price cannot be negative.",
            ),
            models.CheckConstraint(
                condition=Q(annual_unit_price__lte=MAX_ANNUAL_UNIT_PRICE),
                name="subscription_price_at_most_max",
                violation_error_message=f"The unit price is at most {MAX_ANNUAL_UNIT_PRICE:,}.",
            ),
            models.CheckConstraint(
                condition=Q(seats__lte=MAX_SEATS),
                name="subscription_seats_at_most_max",
                violation_error_message=f"A subscription has at most {MAX_SEATS:,} seats.",
            ),
            models.CheckConstraint(
                condition=Q(term_end__gt=models.F("term_start")),
                name="subscription_term_end_after_start",
                violation_error_message="The term must end after it starts.",
            ),
            models.CheckConstraint(
                condition=Q(currency__in=CURRENCIES), name="subscription_currency_known"
            ),
            models.CheckConstraint(
                condition=in_choices("status", SubscriptionStatus), name="subscription_status"
            ),
            models.CheckConstraint(
                condition=in_choices("plan", SubscriptionPlan), name="subscription_plan"
            ),
            models.CheckConstraint(
                condition=in_choices("qsr_state", SubscriptionQsrState), name="subscription_qsr"
            ),
            models.CheckConstraint(
                condition=in_choices("channel", SubscriptionChannel), name="subscription_channel"
            ),
            models.CheckConstraint(
                condition=in_choices("payment_method", SubscriptionPayment), name="sub_payment"
            ),
            models.CheckConstraint(
                condition=in_choices("program", SubscriptionProgram), name="subscription_program"
            ),
            models.CheckConstraint(
                condition=~Q(qsr_state="paused") | Q(qsr_paused_until__isnull=False),
                name="subscription_pause_has_end",
                violation_error_message="A QSR pause needs an end date.",
            ),
            models.CheckConstraint(
                condition=~Q(qsr_state="disabled_for_bug") | ~Q(qsr_bug_url=""),
                name="subscription_bug_disable_has_link",
                violation_error_message="QSR can only be disabled with a link to the bug.",
            ),
            models.UniqueConstraint(
                fields=["namespace"],
                condition=Q(status__in=["active", "suspended"]),
                name="subscription_one_live_per_namespace",
                violation_error_code="unique",
                violation_error_message="This namespace already has a live subscription.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer} · {self.namespace} ({self.term_start}–{self.term_end})"

    @property
    def term_days(self) -> int:
        return days_between(self.term_start, self.term_end)

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.term_start and self.term_end and self.term_end <= self.term_start:
            errors["term_end"] = "The term must end after it starts."
        if self.customer_id and self.currency and self.currency != self.customer.currency:
            errors["currency"] = f"The customer is billed in {self.customer.currency}."
        if (
            self.namespace_id
            and self.customer_id
            and self.namespace.customer_id != self.customer_id
        ):
            errors["namespace"] = "This namespace belongs to another customer."
        if self.qsr_state == self.QsrState.PAUSED and not self.qsr_paused_until:
            errors["qsr_paused_until"] = "A QSR pause needs an end date."
        if self.qsr_state == self.QsrState.DISABLED_FOR_BUG and not self.qsr_bug_url:
            errors["qsr_bug_url"] = "QSR can only be disabled with a link to the bug."
        if errors:
            raise ValidationError(errors)
        check_currency_decimals(self.annual_unit_price, self.currency, "annual_unit_price")


class QsrDisabledForBugManager(models.Manager):
    def get_queryset(self):
        return super().get_queryset().filter(qsr_state=SubscriptionQsrState.DISABLED_FOR_BUG)


class QsrDisabledForBug(Subscription):
    """The "QSR disabled for bugs" list: subscriptions support took off QSR for a bug,
    until someone re-enables it."""

    objects: ClassVar[QsrDisabledForBugManager] = QsrDisabledForBugManager()

    class Meta:
        proxy = True
        verbose_name = "QSR disabled for a bug"
        verbose_name_plural = "QSR disabled for bugs"
