"""What the subscriptions admins share: amounts shown with their currency (`money`) and
the customer and namespace columns of records that hang off a subscription
(`SubscriptionColumns`)."""

from __future__ import annotations

from decimal import Decimal

from django.contrib import admin

from portal.formats import EMPTY
from subscriptions.billing import format_money
from subscriptions.models import Customer, Namespace


def money(amount: Decimal | None, currency: str) -> str:
    """An amount with its currency, as every page and email writes it ("USD 1,000.00",
    "USD -594.00"); the empty marker while a record has no amount yet."""
    return EMPTY if amount is None else format_money(amount, currency)


class SubscriptionColumns:
    """Customer and namespace columns for records that hang off a subscription."""

    @admin.display(description="Customer", ordering="subscription__customer__name")
    def customer(self, obj) -> Customer:
        return obj.subscription.customer

    @admin.display(description="Namespace", ordering="subscription__namespace__name")
    def namespace(self, obj) -> Namespace:
        return obj.subscription.namespace
