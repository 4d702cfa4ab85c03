"""Who is billed and where seats are counted: customers, their namespaces (SaaS groups
and self-managed instances), and the namespaces' daily seat usage reports."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper
from simple_history.models import HistoricalRecords

from subscriptions.billing import CURRENCIES, MAX_SEATS
from subscriptions.models.common import CURRENCY_CHOICES, TimeStamped, in_choices


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
        # The list's search: trigram indexes serve `icontains` (UPPER(...) LIKE) on both.
        indexes = [
            GinIndex(OpClass(Upper("name"), name="gin_trgm_ops"), name="customer_name_trgm"),
            GinIndex(
                OpClass(Upper("billing_email"), name="gin_trgm_ops"), name="customer_email_trgm"
            ),
        ]
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
        indexes = [
            # The list's order (the admin adds the id to make it total) and its search.
            models.Index(fields=["name", "-id"], name="namespace_list_order"),
            GinIndex(OpClass(Upper("name"), name="gin_trgm_ops"), name="namespace_name_trgm"),
            GinIndex(
                OpClass(Upper("license_key"), name="gin_trgm_ops"), name="namespace_license_trgm"
            ),
            GinIndex(
                OpClass(Upper("instance_id"), name="gin_trgm_ops"), name="namespace_instance_trgm"
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=in_choices("kind", NamespaceKind), name="namespace_kind_valid"
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
        # The list shows the newest days first.
        indexes = [models.Index(fields=["-date", "-id"], name="usage_list_order")]
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
