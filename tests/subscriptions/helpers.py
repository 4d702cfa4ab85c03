"""Helpers shared by the subscriptions tests."""

from datetime import date
from decimal import Decimal

from subscriptions.billing import minor_unit
from subscriptions.models import Subscription
from tests.factories import CustomerFactory, NamespaceFactory, SubscriptionFactory

# The default subscription's term (tests/factories.py).
TERM_START = date(2026, 1, 1)
TERM_END = date(2027, 1, 1)


def new_subscription(**kwargs) -> Subscription:
    """An unsaved subscription on a fresh namespace of a saved customer."""
    customer = kwargs.pop("customer", None) or CustomerFactory()
    namespace = kwargs.pop("namespace", None) or NamespaceFactory(customer=customer)
    return SubscriptionFactory.build(customer=customer, namespace=namespace, **kwargs)


def subscription_values(**kwargs) -> dict:
    """Field values for `Subscription.objects.create()` on a fresh namespace."""
    customer = CustomerFactory()
    values = {
        "customer": customer,
        "namespace": NamespaceFactory(customer=customer),
        "seats": 100,
        "annual_unit_price": Decimal("100.00"),
        "currency": "USD",
        "term_start": TERM_START,
        "term_end": TERM_END,
    }
    return values | kwargs


# The money math (subscriptions/billing.py).
TERM_2017 = {"term_start": date(2017, 1, 1), "term_end": date(2018, 1, 1)}
CHARGE_12K = Decimal("12000.00")  # DOMAIN.md: 10 seats at 1,200.00, prepaid for the year


def one_minor_unit(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_unit(currency))
