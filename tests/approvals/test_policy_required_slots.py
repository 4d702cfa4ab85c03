"""Who must approve (portal/policy.py `required_slots`): the approval slots a request
needs follow the seat, money and day thresholds, as the services compute them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from approvals.services import approval_request_free_period, approval_request_refund
from portal import policy
from tests.approvals.helpers import TICKET, WHY, account

pytestmark = pytest.mark.django_db


# --- Who must approve -------------------------------------------------------------------

SMALL, OPS, EXEC, FIN = "sales_ops_or_support_manager", "sales_ops", "executive", "finance"


@pytest.mark.parametrize(
    ("kind", "seats", "amount", "currency", "days", "slots"),
    [
        # Max seats reset: 10 seats or fewer, one approval; more, sales ops and executive.
        ("max_seats_reset", 9, "100.00", "USD", None, [SMALL]),
        ("max_seats_reset", 10, "100.00", "USD", None, [SMALL]),
        ("max_seats_reset", 11, "100.00", "USD", None, [OPS, EXEC]),
        # At or above the currency's finance threshold, finance too.
        ("max_seats_reset", 5, "9999.99", "USD", None, [SMALL]),
        ("max_seats_reset", 5, "10000.00", "USD", None, [SMALL, FIN]),
        ("max_seats_reset", 11, "10000.00", "USD", None, [OPS, EXEC, FIN]),
        ("max_seats_reset", 5, "1499999", "JPY", None, [SMALL]),
        ("max_seats_reset", 5, "1500000", "JPY", None, [SMALL, FIN]),
        # 10,000 is a small amount in yen.
        ("max_seats_reset", 5, "10000", "JPY", None, [SMALL]),
        # QSR refund: sales ops, and finance at or above the threshold.
        ("qsr_refund", 4, "9999.99", "USD", None, [OPS]),
        ("qsr_refund", 4, "10000.00", "USD", None, [OPS, FIN]),
        ("qsr_refund", 4, "1499999", "JPY", None, [OPS]),
        ("qsr_refund", 4, "1500000", "JPY", None, [OPS, FIN]),
        # Free period: sales ops; executive as well above 30 days.
        ("free_period", 100, "100.00", "USD", 30, [OPS]),
        ("free_period", 100, "100.00", "USD", 31, [OPS, EXEC]),
        ("qsr_pause", 10, "750.00", "USD", None, [OPS]),
    ],
)
def test_required_slots(kind, seats, amount, currency, days, slots):
    assert (
        policy.required_slots(
            kind, seats=seats, amount=Decimal(amount), currency=currency, days=days
        )
        == slots
    )


def test_the_thresholds_come_from_the_settings(settings):
    settings.APPROVAL_SEAT_THRESHOLD = 5
    settings.APPROVAL_FINANCE_THRESHOLD = {**settings.APPROVAL_FINANCE_THRESHOLD, "USD": 500}

    assert policy.required_slots(
        "max_seats_reset", seats=6, amount=Decimal("500.00"), currency="USD"
    ) == [OPS, EXEC, FIN]


@pytest.mark.parametrize(
    ("price", "slots"),
    [("299999", [SMALL]), ("300000", [SMALL, FIN])],
    ids=["just-under", "at-threshold"],
)
def test_a_yen_reset_is_routed_by_what_the_service_computes(world, price, slots):
    """10 seats waived before the Q2 reconciliation: 10 x price / 4 x 2 remaining
    quarters, JPY 1,499,995 just under and 1,500,000 at the threshold."""
    _, sub = account(world.owner, seats=100, price=price, in_use=100, max_used=110, currency="JPY")

    request = world.reset(sub)

    assert request.seats_at_stake == 10
    assert request.amount_at_stake == 5 * Decimal(price)
    assert request.required_slots == slots


@pytest.mark.parametrize(("days", "slots"), [(30, [OPS]), (31, [OPS, EXEC])])
def test_a_free_period_longer_than_30_days_needs_an_executive(world, days, slots):
    request = approval_request_free_period(
        subscription=world.sub, start=world.today, days=days, justification=WHY,
        ticket_url=TICKET, actor=world.owner, today=world.today,
    )  # fmt: skip

    assert request.required_slots == slots


@pytest.mark.parametrize("seats", [4, 10], ids=["part", "all-overage"])
def test_a_refund_under_the_threshold_needs_sales_ops_only(world, seats):
    world.sub.namespace.seats_in_use = 90
    world.sub.namespace.save()

    refund = approval_request_refund(
        reconciliation=world.recon, seats=seats, justification=WHY, ticket_url=TICKET,
        actor=world.owner, today=world.today,
    )  # fmt: skip

    assert refund.required_slots == [OPS]
    assert refund.amount_at_stake == seats * Decimal("75.00")


def test_a_refund_at_the_threshold_needs_finance(world, settings):
    settings.APPROVAL_FINANCE_THRESHOLD = {
        **settings.APPROVAL_FINANCE_THRESHOLD,
        "USD": Decimal("300.00"),
    }

    refund = approval_request_refund(
        reconciliation=world.recon, seats=4, justification=WHY, ticket_url=TICKET,
        actor=world.owner, today=world.today,
    )  # fmt: skip

    assert refund.amount_at_stake == Decimal("300.00")
    assert refund.required_slots == [OPS, FIN]
