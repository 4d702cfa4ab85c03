"""What the record modules share: the timestamps base, the money column shape, the
currency choices, the `daterange` expression, and the checks several records repeat.

`DateRange` is referenced by dotted path from migrations (`subscriptions.models.DateRange`):
the package re-exports it under that name, and it deconstructs to that name.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TypedDict

from django.contrib.postgres.fields import DateRangeField
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils.deconstruct import deconstructible

from subscriptions.billing import CURRENCIES, CURRENCY_DECIMALS, qsr_ineligibility_reasons

CURRENCY_CHOICES = [(code, code) for code in CURRENCIES]


class _MoneyColumn(TypedDict):
    max_digits: int
    decimal_places: int


MONEY: _MoneyColumn = {"max_digits": 14, "decimal_places": 2}


def in_choices(field: str, choices: type[models.TextChoices]) -> Q:
    """The check that `field` holds one of the values of `choices`."""
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


# Migrations name it by this path (0001_initial): new ones keep writing the package's name
# for it rather than this module's.
@deconstructible(path="subscriptions.models.DateRange")
class DateRange(models.Func):
    """PostgreSQL daterange(lower, upper): half-open [lower, upper)."""

    function = "daterange"
    output_field = DateRangeField()


class TimeStamped(models.Model):
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
