"""The money columns cannot overflow from any value validation accepts (billing.py
"Bounds"): seats and prices have ceilings, usage counts a bound that may not exceed the
seat ceiling, and with all three at their largest every amount still fits numeric(14, 2).
"""

import io
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.checks import Error
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.core.validators import DecimalValidator
from django.db import IntegrityError

from subscriptions import billing
from subscriptions.billing import MAX_ANNUAL_UNIT_PRICE, MAX_SEATS, MONEY_LIMIT
from subscriptions.checks import check_usage_max_billable_users
from subscriptions.models import (
    MONEY,
    Invoice,
    InvoiceLine,
    Reconciliation,
    SeatUsageReport,
    Subscription,
)
from subscriptions.services.nightly import nightly_run
from subscriptions.services.usage import parse_usage_csv, usage_import, usage_max_billable_users
from tests.assertions import assert_db_rejects, assert_invalid
from tests.factories import (
    CustomerFactory,
    NamespaceFactory,
    SeatUsageReportFactory,
    SelfManagedNamespaceFactory,
    SubscriptionFactory,
)

# The largest price each kind of currency accepts: JPY has no minor unit.
TOP_PRICE = {"USD": MAX_ANNUAL_UNIT_PRICE, "JPY": Decimal(int(MAX_ANNUAL_UNIT_PRICE))}
fits_money_column = DecimalValidator(**MONEY)


def assert_fits(amount: Decimal) -> None:
    """`amount` is storable in a money column (raises ValidationError otherwise)."""
    fits_money_column(amount)
    assert abs(amount) < MONEY_LIMIT


def test_the_limit_is_the_money_columns_and_the_ceilings_stay_below_it():
    assert Decimal(10) ** (MONEY["max_digits"] - MONEY["decimal_places"]) == MONEY_LIMIT
    assert MAX_SEATS * MAX_ANNUAL_UNIT_PRICE < MONEY_LIMIT
    with pytest.raises(ValidationError):
        assert_fits(MONEY_LIMIT)  # the check itself catches an overflow


# --- The money functions at the ceilings -------------------------------------------------


@pytest.mark.parametrize("currency", ["USD", "JPY"])
def test_every_amount_fits_with_seats_price_and_usage_at_their_largest(currency):
    usage = usage_max_billable_users()
    assert usage == MAX_SEATS  # the default bound is the ceiling: nothing larger is priced
    price = TOP_PRICE[currency]
    charge = MAX_SEATS * price  # the recurring charge of a term
    amounts = {"recurring": billing.round_money(charge, currency)}
    for quarter in (1, 2, 3):
        qsr = billing.qsr_reconcile(
            quarter=quarter,
            max_seats_used=usage,
            paid_seats=0,
            annual_unit_price=price,
            currency=currency,
        )
        amounts[f"qsr Q{quarter}"] = qsr.amount
        amounts[f"refund Q{quarter}"] = billing.qsr_refund_amount(
            quarter=quarter,
            refunded_seats=qsr.overage,
            overage=qsr.overage,
            already_refunded=0,
            annual_unit_price=price,
            currency=currency,
        )
        amounts[f"waived Q{quarter}"] = billing.waived_amount(
            waived_seats=usage, annual_unit_price=price, currency=currency, quarter=quarter
        )
    amounts["true-up"] = billing.annual_true_up(
        max_seats_used=usage, paid_seats=0, annual_unit_price=price, currency=currency
    )
    amounts["waived true-up"] = billing.waived_amount(
        waived_seats=usage, annual_unit_price=price, currency=currency, quarter=None
    )
    # Suspended on the first day: the credit is the whole charge; resumed the next day
    # with the term extended, the charge is the whole charge again.
    term_start, term_end = date(2028, 1, 1), date(2029, 1, 1)
    for extend_term in (False, True):
        proration = billing.suspension_proration(
            mode="credit",
            charge=charge,
            currency=currency,
            term_start=term_start,
            term_end=term_end,
            start=term_start,
            end=term_start + timedelta(days=1),
            extend_term=extend_term,
        )
        for line in proration.lines:
            amounts[f"{line.kind} extend={extend_term}"] = line.amount

    for what, amount in amounts.items():
        try:
            assert_fits(amount)
        except ValidationError:
            pytest.fail(f"{what} {amount} does not fit numeric(14, 2)")
    assert amounts["true-up"] == amounts["recurring"] == charge
    assert amounts["proration_credit extend=False"] == -charge


# --- Through the database: the nightly run at the ceilings --------------------------------


def ceiling_subscription(currency: str, **kwargs) -> Subscription:
    """A valid subscription of no paid seats at the top price, whose namespace reports on
    `usage_day`, through the usage import, the largest count the import accepts."""
    usage_day = kwargs.pop("usage_day")
    sub = SubscriptionFactory(
        customer=CustomerFactory(currency=currency),
        seats=0,
        annual_unit_price=TOP_PRICE[currency],
        **kwargs,
    )
    sub.full_clean()  # what validation accepts, not only what the database takes
    line = f"{sub.namespace.name},{usage_day},{usage_max_billable_users()}"
    kind, rows = parse_usage_csv(io.StringIO(f"namespace,date,billable_users\n{line}\n"))
    assert usage_import(rows=rows, kind=kind).created == 1
    return sub


def run_nights(*days: date) -> None:
    for day in days:
        result = nightly_run(run_date=day)
        assert [error for night in result.nights for error in night.errors] == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("currency", "amount"),
    [
        # 1,000,000 x 999,999.99 / 4 x 3
        ("USD", Decimal("749999992500.00")),
        # 1,000,000 x 999,999 / 4 x 3
        ("JPY", Decimal("749999250000")),
    ],
)
def test_a_qsr_overage_at_the_ceilings_is_invoiced_without_overflow(currency, amount):
    sub = ceiling_subscription(currency, usage_day=date(2026, 3, 31))

    run_nights(date(2026, 4, 1), date(2026, 4, 8))

    recon = Reconciliation.objects.get(subscription=sub)
    assert (recon.status, recon.overage_seats, recon.amount) == ("processed", MAX_SEATS, amount)
    line = InvoiceLine.objects.get(reconciliation=recon)
    assert (line.kind, line.quantity, line.amount) == ("qsr_overage", MAX_SEATS, amount)
    assert Invoice.objects.with_totals().get(pk=line.invoice_id).total == amount
    sub.refresh_from_db()
    assert sub.seats == MAX_SEATS  # grown by the overage to the ceiling, not past it


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("currency", "amount"),
    [
        # 1,000,000 x 999,999.99: the largest amount the portal computes
        ("USD", Decimal("999999990000.00")),
        ("JPY", Decimal("999999000000")),
    ],
)
def test_a_true_up_and_renewal_at_the_ceilings_are_invoiced_without_overflow(currency, amount):
    # A reseller subscription is trued up annually: a full year for every seat over.
    sub = ceiling_subscription(
        currency,
        channel=Subscription.Channel.RESELLER,
        term_start=date(2025, 1, 1),
        term_end=date(2026, 1, 1),
        usage_day=date(2025, 12, 31),
    )

    run_nights(date(2026, 1, 1))

    lines = InvoiceLine.objects.filter(invoice__subscription=sub)
    assert sorted(lines.values_list("kind", "quantity", "amount")) == [
        ("annual_true_up", MAX_SEATS, amount),
        ("recurring", MAX_SEATS, amount),  # the new term, at the ceilings
    ]
    sub.refresh_from_db()
    assert (sub.seats, sub.term_start) == (MAX_SEATS, date(2026, 1, 1))


# --- The ceilings on the models --------------------------------------------------------


def new_subscription(currency: str = "USD", **kwargs) -> Subscription:
    customer = CustomerFactory(currency=currency)
    namespace = NamespaceFactory(customer=customer)
    return SubscriptionFactory.build(customer=customer, namespace=namespace, **kwargs)


def subscription_values(**kwargs) -> dict:
    sub = new_subscription()
    return {
        "customer": sub.customer,
        "namespace": sub.namespace,
        "seats": sub.seats,
        "annual_unit_price": sub.annual_unit_price,
        "currency": sub.currency,
        "term_start": sub.term_start,
        "term_end": sub.term_end,
    } | kwargs


@pytest.mark.django_db
@pytest.mark.parametrize("currency", ["USD", "JPY"])
def test_a_subscription_at_the_ceilings_is_valid_and_stored(currency):
    sub = new_subscription(currency, seats=MAX_SEATS, annual_unit_price=TOP_PRICE[currency])

    sub.full_clean()
    sub.save()

    assert Subscription.objects.filter(pk=sub.pk, seats=MAX_SEATS).exists()


@pytest.mark.django_db
def test_seats_above_the_ceiling_are_refused_by_validation_and_the_database():
    assert_invalid(new_subscription(seats=MAX_SEATS + 1), "seats", "less than or equal to 1000000")
    assert_db_rejects(
        Subscription,
        lambda: Subscription.objects.create(**subscription_values(seats=MAX_SEATS + 1)),
        "subscription_seats_at_most_max",
    )
    # An update skips validation; the database still refuses.
    sub = SubscriptionFactory()
    with pytest.raises(IntegrityError, match="subscription_seats_at_most_max"):
        Subscription.objects.filter(pk=sub.pk).update(seats=MAX_SEATS + 1)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("currency", "price"),
    [("USD", MAX_ANNUAL_UNIT_PRICE + Decimal("0.01")), ("JPY", Decimal("1000000"))],
)
def test_a_price_above_the_ceiling_is_refused_by_validation_and_the_database(currency, price):
    assert_invalid(
        new_subscription(currency, annual_unit_price=price),
        "annual_unit_price",
        "less than or equal to 999999.99",
    )
    assert_db_rejects(
        Subscription,
        lambda: Subscription.objects.create(**subscription_values(annual_unit_price=price)),
        "subscription_price_at_most_max",
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "constraint"),
    [
        ("billable_users", "usage_billable_users_at_most_max_seats"),
        ("max_historical_user_count", "usage_max_historical_at_most_max_seats"),
    ],
)
def test_usage_counts_above_the_seat_ceiling_are_refused(field, constraint):
    namespace = SelfManagedNamespaceFactory()
    at_ceiling = {"billable_users": MAX_SEATS, "max_historical_user_count": MAX_SEATS}
    SeatUsageReportFactory.build(namespace=namespace, **at_ceiling).full_clean()

    above = at_ceiling | {field: MAX_SEATS + 1}
    report = SeatUsageReportFactory.build(namespace=namespace, **above)
    assert_invalid(report, field, "less than or equal to 1000000")
    assert_db_rejects(
        SeatUsageReport, lambda: SeatUsageReportFactory(namespace=namespace, **above), constraint
    )


# --- The usage bound cannot reopen the overflow --------------------------------------------


@pytest.mark.parametrize("value", [MAX_SEATS + 1, 0, "1000", None, True])
def test_a_usage_bound_above_the_seat_ceiling_or_not_a_count_fails_the_system_check(
    settings, value
):
    settings.USAGE_MAX_BILLABLE_USERS = value

    [error] = check_usage_max_billable_users()

    assert isinstance(error, Error) and error.id == "subscriptions.E001"
    assert "USAGE_MAX_BILLABLE_USERS" in error.msg
    # Registered: `manage.py check` (and every command run from the shell) refuses to start.
    with pytest.raises(SystemCheckError, match=r"subscriptions\.E001"):
        call_command("check")
    # And the import refuses to run on it even where the checks were skipped.
    with pytest.raises(ImproperlyConfigured, match="USAGE_MAX_BILLABLE_USERS"):
        parse_usage_csv(io.StringIO("namespace,date,billable_users\n"))


@pytest.mark.parametrize("value", [1, MAX_SEATS])
def test_a_usage_bound_up_to_the_seat_ceiling_passes_the_system_check(settings, value):
    settings.USAGE_MAX_BILLABLE_USERS = value

    assert check_usage_max_billable_users() == []
    assert usage_max_billable_users() == value
