"""What a sales manager sees (portal/policy.py `visible`, DOMAIN.md "Who uses the
portal"): only the accounts they own, at a query cost that does not grow with the rows."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from approvals.models import ApprovalRequest
from portal import policy
from subscriptions.models import Customer, Reconciliation, Subscription
from tests.approvals.helpers import fresh, own
from tests.factories import (
    ApprovalRequestFactory,
    CustomerFactory,
    ReconciliationFactory,
    SubscriptionFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


# --- What a sales manager sees ----------------------------------------------------------

VISIBLE = {
    Customer: ("pk", lambda c: c),
    Subscription: ("customer", lambda c: SubscriptionFactory(customer=c)),
    Reconciliation: (
        "subscription__customer",
        lambda c: ReconciliationFactory(subscription=SubscriptionFactory(customer=c)),
    ),
    ApprovalRequest: (
        "subscription__customer",
        lambda c: ApprovalRequestFactory(subscription=SubscriptionFactory(customer=c)),
    ),
}


def _rows(model, customers) -> set[int]:
    make = VISIBLE[model][1]
    return {make(c).pk for c in customers}


@pytest.mark.parametrize("model", list(VISIBLE), ids=lambda m: m.__name__)
def test_sales_see_only_the_accounts_they_own(model):
    manager = UserFactory(roles=["sales"])
    mine, theirs = CustomerFactory.create_batch(2), CustomerFactory.create_batch(2)
    for customer in mine:
        own(customer, manager)
    own(theirs[0], UserFactory(roles=["sales"]))
    own_rows, other_rows = _rows(model, mine), _rows(model, theirs)
    path = VISIBLE[model][0]

    def seen(user) -> set[int]:
        qs = policy.visible(model.objects.all(), fresh(user), customer_path=path)
        return set(qs.values_list("pk", flat=True))

    assert seen(manager) == own_rows
    assert seen(UserFactory(roles=["support"])) == own_rows | other_rows
    assert seen(UserFactory(roles=["finance"])) == own_rows | other_rows
    assert seen(UserFactory()) == set()
    # Another role besides sales opens every account.
    assert seen(UserFactory(roles=["sales", "sales_ops"])) == own_rows | other_rows


@pytest.mark.parametrize("model", list(VISIBLE), ids=lambda m: m.__name__)
def test_filtering_to_owned_accounts_costs_the_same_queries_for_any_number_of_rows(
    model, django_assert_max_num_queries
):
    manager = UserFactory(roles=["sales"])
    path = VISIBLE[model][0]

    def grow(n):
        customers = CustomerFactory.create_batch(n)
        for customer in customers[: n // 2]:
            own(customer, manager)
        _rows(model, customers)

    def listing():
        user = fresh(manager)
        return list(policy.visible(model.objects.all(), user, customer_path=path))

    grow(2)
    listing()  # warm per-process caches (content types)
    with CaptureQueriesContext(connection) as few:
        assert len(listing()) == 1
    grow(30)
    # The user (as a request loads it), their roles, then the rows, with the owned
    # accounts as a subquery.
    with django_assert_max_num_queries(3) as many:
        assert len(listing()) == 16
    assert len(many) == len(few)


def test_visible_customers_of_a_manager_are_the_owned_ones():
    manager = UserFactory(roles=["sales"])
    mine = CustomerFactory()
    CustomerFactory()
    own(mine, manager)

    assert list(policy.visible_customers(fresh(manager))) == [mine]
