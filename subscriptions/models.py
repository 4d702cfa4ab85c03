"""Customers, namespaces, seat usage, subscriptions, reconciliations, suspensions and the
invoice ledger (DOMAIN.md "Core records").

Models hold data and invariants only. The database carries every invariant it can
express (constraints below); `clean()` repeats the ones a form must explain field by
field, and the cross-record rules a constraint cannot see. State changes belong to
services, never to `save()`.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import ArrayField, DateRangeField, RangeOperators
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q, Sum
from django.db.models.functions import Coalesce
from simple_history.models import HistoricalRecords

from subscriptions.billing import (
    CURRENCIES,
    CURRENCY_DECIMALS,
    MAX_ANNUAL_UNIT_PRICE,
    MAX_SEATS,
    days_between,
    qsr_ineligibility_reasons,
)

CURRENCY_CHOICES = [(code, code) for code in CURRENCIES]
MONEY = {"max_digits": 14, "decimal_places": 2}


def _in(field: str, choices: type[models.TextChoices]) -> Q:
    return Q(**{f"{field}__in": choices.values})


def check_currency_decimals(amount: Decimal | None, currency: str, field: str) -> None:
    """Reject an amount with more decimals than the currency has (e.g. JPY 10.50)."""
    if amount is None or currency not in CURRENCY_DECIMALS:
        return
    if amount != amount.quantize(Decimal(1).scaleb(-CURRENCY_DECIMALS[currency])):
        raise ValidationError(
            {field: f"{currency} amounts have {CURRENCY_DECIMALS[currency]} decimal places."}
        )


def qsr_ineligibility(record) -> tuple[str, ...]:
    """Why a subscription (or a row with its eligibility fields) is not on QSR."""
    return qsr_ineligibility_reasons(
        term_months=record.term_months,
        channel=record.channel,
        payment_method=record.payment_method,
        program=record.program,
        offline_license=record.offline_license,
    )


class DateRange(models.Func):
    """PostgreSQL daterange(lower, upper): half-open [lower, upper)."""

    function = "daterange"
    output_field = DateRangeField()


class TimeStamped(models.Model):
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Customer(TimeStamped):
    """A billing account."""

    name = models.CharField(max_length=200, unique=True)
    billing_email = models.EmailField()
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="owned_customers",
        help_text="The account's sales manager.",
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        # Held per customer through django-guardian by the account's sales manager.
        permissions = [("own_customer", "Owns the account (sales manager)")]
        constraints = [
            models.CheckConstraint(
                condition=Q(currency__in=CURRENCIES),
                name="customer_currency_known",
                violation_error_message="Unknown currency.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class NamespaceKind(models.TextChoices):
    SAAS = "saas", "SaaS group"
    SELF_MANAGED = "self_managed", "Self-managed instance"


class Namespace(TimeStamped):
    """Where seats are counted: a SaaS top-level group or a self-managed instance."""

    Kind = NamespaceKind

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="namespaces")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=200, help_text="Group path or instance host name.")
    license_key = models.CharField(
        max_length=64, blank=True, help_text="Self-managed only: the license the instance uses."
    )
    instance_id = models.CharField(max_length=64, blank=True)
    seats_in_use = models.PositiveIntegerField(default=0, help_text="Billable users today.")
    max_seats_used = models.PositiveIntegerField(
        default=0, help_text="Highest seats in use this term (a reset may lower it)."
    )
    max_seats_used_changed_at = models.DateTimeField(null=True, blank=True)
    usage_counted_from = models.DateField(
        null=True,
        blank=True,
        help_text="Seat refresh counts only reports from this day on (set by a term start "
        "or a max seats reset, so older reports cannot undo it).",
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=_in("kind", NamespaceKind), name="namespace_kind_valid"
            ),
            models.UniqueConstraint(
                fields=["name"],
                condition=Q(kind="saas"),
                name="namespace_saas_path_unique",
                violation_error_code="unique",
                violation_error_message="A SaaS group with this path exists already.",
            ),
            models.UniqueConstraint(
                fields=["license_key"],
                condition=Q(kind="self_managed"),
                name="namespace_license_key_unique",
                violation_error_code="unique",
                violation_error_message="An instance with this license key exists already.",
            ),
            models.CheckConstraint(
                condition=Q(kind="saas") | ~Q(license_key=""),
                name="namespace_self_managed_has_license",
                violation_error_message="A self-managed instance needs a license key.",
            ),
            models.CheckConstraint(
                condition=Q(max_seats_used__gte=models.F("seats_in_use")),
                name="namespace_max_at_least_in_use",
                violation_error_message="Max seats used cannot be below seats in use.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.kind == self.Kind.SELF_MANAGED and not self.license_key:
            raise ValidationError({"license_key": "A self-managed instance needs a license key."})
        if self.max_seats_used < self.seats_in_use:
            raise ValidationError(
                {"max_seats_used": "Max seats used cannot be below seats in use."}
            )


class SeatUsageReport(models.Model):
    """One day's billable users of a namespace. A re-sent day replaces the old row.

    A self-managed license reporting from several instances keeps one row a day: the
    ingestion keeps the highest count and the instance that reported it.
    """

    namespace = models.ForeignKey(Namespace, on_delete=models.PROTECT, related_name="usage")
    date = models.DateField()
    billable_users = models.PositiveIntegerField(validators=[MaxValueValidator(MAX_SEATS)])
    max_historical_user_count = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(MAX_SEATS)],
        help_text="Self-managed only.",
    )
    instance_id = models.CharField(max_length=64, blank=True)
    received_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["namespace", "date"]
        constraints = [
            models.UniqueConstraint(
                fields=["namespace", "date"],
                name="usage_one_report_per_namespace_day",
                violation_error_message="This namespace already has a report for this day.",
            ),
            # billing.py "Bounds": counts above MAX_SEATS, priced, could overflow the ledger.
            models.CheckConstraint(
                condition=Q(billable_users__lte=MAX_SEATS),
                name="usage_billable_users_at_most_max_seats",
                violation_error_message=f"At most {MAX_SEATS:,} billable users.",
            ),
            models.CheckConstraint(
                condition=Q(max_historical_user_count__isnull=True)
                | Q(max_historical_user_count__lte=MAX_SEATS),
                name="usage_max_historical_at_most_max_seats",
                violation_error_message=f"At most {MAX_SEATS:,} historical users.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.namespace} {self.date}: {self.billable_users}"


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
                condition=_in("status", SubscriptionStatus), name="subscription_status"
            ),
            models.CheckConstraint(
                condition=_in("plan", SubscriptionPlan), name="subscription_plan"
            ),
            models.CheckConstraint(
                condition=_in("qsr_state", SubscriptionQsrState), name="subscription_qsr"
            ),
            models.CheckConstraint(
                condition=_in("channel", SubscriptionChannel), name="subscription_channel"
            ),
            models.CheckConstraint(
                condition=_in("payment_method", SubscriptionPayment), name="sub_payment"
            ),
            models.CheckConstraint(
                condition=_in("program", SubscriptionProgram), name="subscription_program"
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

    objects = QsrDisabledForBugManager()

    class Meta:
        proxy = True
        verbose_name = "QSR disabled for a bug"
        verbose_name_plural = "QSR disabled for bugs"


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
                condition=_in("status", ReconciliationStatus), name="reconciliation_status"
            ),
            models.CheckConstraint(
                condition=_in("skip_reason", ReconciliationSkipReason),
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
        constraints = [
            models.CheckConstraint(
                condition=Q(resume_date__gt=models.F("suspend_date")),
                name="suspension_resume_after_suspend",
                violation_error_message="The resume date must be after the suspend date.",
            ),
            models.CheckConstraint(condition=_in("mode", SuspensionMode), name="suspension_mode"),
            models.CheckConstraint(
                condition=_in("status", SuspensionStatus), name="suspension_status"
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


class InvoiceQuerySet(models.QuerySet):
    def with_totals(self) -> InvoiceQuerySet:
        """Annotate `total`: the sum of the rounded lines (zero for an empty invoice)."""
        return self.annotate(
            total=Coalesce(Sum("lines__amount"), Decimal("0"), output_field=models.DecimalField())
        )


class Invoice(TimeStamped):
    """The portal's ledger. An invoice whose lines sum below zero is a credit memo."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    subscription = models.ForeignKey(
        Subscription, on_delete=models.PROTECT, related_name="invoices"
    )
    issue_date = models.DateField()
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    # What this invoice is for (e.g. "qsr:<reconciliation id>"): a retry finds the
    # invoice it wrote before instead of writing a second one.
    idempotency_key = models.CharField(max_length=100, unique=True)
    history = HistoricalRecords()

    objects = InvoiceQuerySet.as_manager()

    class Meta:
        ordering = ["-issue_date", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(currency__in=CURRENCIES), name="invoice_currency"),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def number(self) -> str:
        return f"INV-{self.pk:07d}" if self.pk else "INV-(new)"


class InvoiceLineKind(models.TextChoices):
    RECURRING = "recurring", "Recurring"
    QSR_OVERAGE = "qsr_overage", "QSR overage"
    ANNUAL_TRUE_UP = "annual_true_up", "Annual true-up"
    PRORATION_CREDIT = "proration_credit", "Proration credit"
    PRORATION_CHARGE = "proration_charge", "Proration charge"
    REFUND_CREDIT = "refund_credit", "Refund credit"


class InvoiceLine(models.Model):
    Kind = InvoiceLineKind

    CREDIT_KINDS = (Kind.PRORATION_CREDIT, Kind.REFUND_CREDIT)

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="lines")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    description = models.CharField(max_length=200, blank=True)
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(**MONEY, validators=[MinValueValidator(Decimal("0"))])
    period_start = models.DateField()
    period_end = models.DateField()
    amount = models.DecimalField(**MONEY)
    reconciliation = models.ForeignKey(
        Reconciliation, on_delete=models.PROTECT, null=True, blank=True, related_name="lines"
    )
    suspension = models.ForeignKey(
        Suspension, on_delete=models.PROTECT, null=True, blank=True, related_name="lines"
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["invoice", "id"]
        constraints = [
            models.CheckConstraint(
                condition=_in("kind", InvoiceLineKind), name="invoice_line_kind"
            ),
            models.CheckConstraint(
                condition=Q(unit_price__gte=0), name="invoice_line_price_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(period_end__gt=models.F("period_start")),
                name="invoice_line_period",
                violation_error_message="The service period must end after it starts.",
            ),
            models.CheckConstraint(
                # Credits never add to what the customer owes; charges never subtract.
                condition=(Q(kind__in=["proration_credit", "refund_credit"]) & Q(amount__lte=0))
                | (~Q(kind__in=["proration_credit", "refund_credit"]) & Q(amount__gte=0)),
                name="invoice_line_sign_matches_kind",
                violation_error_message="Credit lines are negative and charge lines positive.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} × {self.quantity}: {self.amount}"

    def clean(self) -> None:
        if self.period_start and self.period_end and self.period_end <= self.period_start:
            raise ValidationError({"period_end": "The service period must end after it starts."})
        if self.amount is not None and self.kind:
            credit = self.kind in self.CREDIT_KINDS
            if (credit and self.amount > 0) or (not credit and self.amount < 0):
                raise ValidationError(
                    {"amount": "Credit lines are negative and charge lines positive."}
                )
        if self.invoice_id:
            check_currency_decimals(self.amount, self.invoice.currency, "amount")


class JobRunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    ABANDONED = "abandoned", "Abandoned (its process stopped)"


class JobRun(models.Model):
    """One nightly run for one date: when, what each step did, what went wrong."""

    Status = JobRunStatus

    run_date = models.DateField(help_text="The date the run was for.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    trigger = models.CharField(max_length=32, default="beat", help_text="beat, command, ...")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life of the process running it."
    )
    abandoned_reason = models.TextField(blank=True)
    step = models.CharField(max_length=32, blank=True, help_text="The step running now.")
    progress_done = models.PositiveIntegerField(
        default=0, help_text="Records the running step has worked through so far."
    )
    counts = models.JSONField(default=dict, help_text="Per step: what it did, by outcome.")
    errors = models.JSONField(default=list, help_text="[{step, subscription, error}]")

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.CheckConstraint(condition=_in("status", JobRunStatus), name="jobrun_status"),
        ]

    def __str__(self) -> str:
        return f"Nightly run for {self.run_date} ({self.get_status_display()})"


class NightBatchStatus(models.TextChoices):
    PENDING = "pending", "Waiting for a worker"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class NightBatch(models.Model):
    """One batch of one step of a nightly run, for any worker to take (the run fans its
    steps out across workers). A worker claims it for a while; one that dies leaves it
    to the next once the claim runs out."""

    Status = NightBatchStatus

    job_run = models.ForeignKey(JobRun, on_delete=models.CASCADE, related_name="batches")
    step = models.CharField(max_length=32)
    seq = models.PositiveIntegerField()
    ids = ArrayField(models.BigIntegerField())
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_until = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(default=dict)
    errors = models.JSONField(default=list)

    class Meta:
        ordering = ["job_run", "step", "seq"]
        constraints = [
            models.UniqueConstraint(
                fields=["job_run", "step", "seq"], name="nightbatch_once_per_step_seq"
            ),
            models.CheckConstraint(
                condition=_in("status", NightBatchStatus), name="nightbatch_status"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.step} batch {self.seq} of {self.job_run}"
