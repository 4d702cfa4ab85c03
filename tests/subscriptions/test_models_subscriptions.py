"""Invariants of a subscription (subscriptions/models/subscriptions.py; DOMAIN.md "Core
records", "Money"): seats, prices and currencies, the term, the QSR state, one live
subscription per namespace.

Each rule is checked twice where the database can hold it: `full_clean()` (what a form or
the admin shows: the field at fault and why) and a write that skips validation (what a
job or a bug would do: the database refuses and nothing is stored)."""

from datetime import date
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from subscriptions.models import Subscription
from tests.assertions import assert_db_rejects, assert_invalid
from tests.factories import CustomerFactory, NamespaceFactory, SubscriptionFactory
from tests.subscriptions.helpers import TERM_END, TERM_START, new_subscription, subscription_values

pytestmark = pytest.mark.django_db


# --- Seats, prices, currencies ------------------------------------------------------------


def test_negative_seats_are_rejected():
    assert_invalid(new_subscription(seats=-1), "seats", "greater than or equal to 0")
    assert_db_rejects(
        Subscription,
        lambda: Subscription.objects.create(**subscription_values(seats=-1)),
        "seats_check",
    )


def test_zero_seats_and_a_zero_price_are_allowed():
    subscription = new_subscription(seats=0, annual_unit_price=Decimal("0.00"))

    subscription.full_clean()
    subscription.save()
    assert Subscription.objects.filter(pk=subscription.pk).exists()


def test_negative_price_is_rejected():
    assert_invalid(
        new_subscription(annual_unit_price=Decimal("-0.01")),
        "annual_unit_price",
        "greater than or equal to 0",
    )
    assert_db_rejects(
        Subscription,
        lambda: Subscription.objects.create(
            **subscription_values(annual_unit_price=Decimal("-0.01"))
        ),
        "subscription_price_non_negative",
    )


@pytest.mark.parametrize(
    ("currency", "price", "message"),
    [
        ("JPY", Decimal("1200.50"), "JPY amounts have 0 decimal places"),
        ("JPY", Decimal("1200.5"), "JPY amounts have 0 decimal places"),
        ("USD", Decimal("100.005"), "no more than 2 decimal places"),
    ],
)
def test_price_with_more_decimals_than_the_currency_is_rejected(currency, price, message):
    customer = CustomerFactory(currency=currency)

    subscription = new_subscription(customer=customer, currency=currency, annual_unit_price=price)

    assert_invalid(subscription, "annual_unit_price", message)


@pytest.mark.parametrize("price", [Decimal("1200"), Decimal("1200.00")])
def test_whole_jpy_price_is_valid(price):
    customer = CustomerFactory(currency="JPY")

    new_subscription(customer=customer, currency="JPY", annual_unit_price=price).full_clean()


def test_subscription_currency_must_be_the_customers():
    customer = CustomerFactory(currency="EUR")

    subscription = new_subscription(customer=customer, currency="USD")

    assert_invalid(subscription, "currency", "The customer is billed in EUR.")


def test_subscription_namespace_must_belong_to_its_customer():
    other_customers_namespace = NamespaceFactory()

    subscription = new_subscription(namespace=other_customers_namespace)

    assert_invalid(subscription, "namespace", "belongs to another customer")


# --- Term -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "term_end",
    [pytest.param(TERM_START, id="equal-to-start"), pytest.param(date(2025, 12, 31), id="before")],
)
def test_term_ending_on_or_before_its_start_is_rejected(term_end):
    assert_invalid(
        new_subscription(term_start=TERM_START, term_end=term_end),
        "term_end",
        "The term must end after it starts.",
    )
    assert_db_rejects(
        Subscription,
        lambda: Subscription.objects.create(**subscription_values(term_end=term_end)),
        "subscription_term_end_after_start",
    )


def test_one_day_term_is_valid():
    new_subscription(term_start=TERM_START, term_end=date(2026, 1, 2)).full_clean()


# --- QSR state --------------------------------------------------------------------------


def test_qsr_pause_without_an_end_date_is_rejected():
    subscription = SubscriptionFactory()

    subscription.qsr_state = Subscription.QsrState.PAUSED
    assert_invalid(subscription, "qsr_paused_until", "A QSR pause needs an end date.")
    assert_db_rejects(
        Subscription,
        lambda: Subscription.objects.filter(pk=subscription.pk).update(qsr_state="paused"),
        "subscription_pause_has_end",
    )


def test_qsr_pause_with_an_end_date_is_valid():
    subscription = SubscriptionFactory(qsr_state="paused", qsr_paused_until=date(2026, 9, 1))

    subscription.full_clean()
    assert Subscription.objects.get(pk=subscription.pk).qsr_paused_until == date(2026, 9, 1)


def test_qsr_disabled_for_bug_without_a_bug_link_is_rejected():
    subscription = SubscriptionFactory()

    subscription.qsr_state = Subscription.QsrState.DISABLED_FOR_BUG
    assert_invalid(subscription, "qsr_bug_url", "QSR can only be disabled with a link to the bug")
    assert_db_rejects(
        Subscription,
        lambda: Subscription.objects.filter(pk=subscription.pk).update(
            qsr_state="disabled_for_bug"
        ),
        "subscription_bug_disable_has_link",
    )


def test_qsr_disabled_for_bug_with_a_bug_link_is_valid():
    subscription = SubscriptionFactory(
        qsr_state="disabled_for_bug", qsr_bug_url="https://bugs.example.com/42"
    )

    subscription.full_clean()
    assert Subscription.objects.get(pk=subscription.pk).qsr_bug_url.endswith("/42")


# --- One live subscription per namespace --------------------------------------------------


@pytest.mark.parametrize("live_status", ["active", "suspended"])
def test_second_live_subscription_on_a_namespace_fails_validation(live_status):
    live = SubscriptionFactory(status=live_status)

    second = new_subscription(customer=live.customer, namespace=live.namespace)

    assert_invalid(second, "namespace", "This namespace already has a live subscription.")


@pytest.mark.parametrize("live_status", ["active", "suspended"])
def test_second_live_subscription_on_a_namespace_is_rejected_by_the_database(live_status):
    live = SubscriptionFactory(status=live_status)

    assert_db_rejects(
        Subscription,
        lambda: SubscriptionFactory(customer=live.customer, namespace=live.namespace),
        "subscription_one_live_per_namespace",
    )
    with pytest.raises(ValidationError) as excinfo:
        new_subscription(customer=live.customer, namespace=live.namespace).full_clean()
    assert "This namespace already has a live subscription." in str(excinfo.value)


@pytest.mark.parametrize("ended_status", ["cancelled", "expired"])
def test_a_new_subscription_may_follow_an_ended_one_on_the_namespace(ended_status):
    ended = SubscriptionFactory(status=ended_status)

    renewal = new_subscription(
        customer=ended.customer,
        namespace=ended.namespace,
        term_start=TERM_END,
        term_end=date(2028, 1, 1),
    )
    renewal.full_clean()
    renewal.save()

    assert ended.namespace.subscriptions.count() == 2
