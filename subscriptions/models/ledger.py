"""The invoice ledger: invoices (a credit memo when their lines sum below zero), their
lines, and the queryset that totals them."""

from __future__ import annotations

from decimal import Decimal

from django.contrib.postgres.indexes import GinIndex, OpClass
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q, Sum
from django.db.models.functions import Coalesce, Upper
from simple_history.models import HistoricalRecords

from subscriptions.billing import CURRENCIES
from subscriptions.models.accounts import Customer
from subscriptions.models.common import (
    CURRENCY_CHOICES,
    MONEY,
    TimeStamped,
    check_currency_decimals,
    in_choices,
)
from subscriptions.models.reconciliations import Reconciliation
from subscriptions.models.subscriptions import Subscription
from subscriptions.models.suspensions import Suspension


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
        indexes = [models.Index(fields=["-issue_date", "-id"], name="invoice_list_order")]
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
        indexes = [
            # The lines list (newest invoice first) and its date hierarchy.
            models.Index(fields=["-invoice", "id"], name="invoiceline_list_order"),
            models.Index(fields=["period_start"], name="invoiceline_period_start"),
            GinIndex(
                OpClass(Upper("description"), name="gin_trgm_ops"),
                name="invoiceline_description_trgm",
            ),
            # Credit lines: the few invoices that can be credit memos.
            models.Index(
                fields=["invoice"], condition=Q(amount__lt=0), name="invoiceline_credit_invoice"
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=in_choices("kind", InvoiceLineKind), name="invoice_line_kind"
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
