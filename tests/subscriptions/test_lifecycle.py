"""Amending and cancelling a subscription (subscriptions/services/lifecycle.py): who may,
what they must say, the model's own validation, the states that refuse, the money
effect both the confirmation page and the service use, and the history it leaves."""

import re
from contextlib import contextmanager
from datetime import date
from decimal import Decimal

import pytest
from django.core.validators import MaxValueValidator

from portal import policy
from portal.errors import DomainError
from portal.policy import NotAllowed
from subscriptions.models import Reconciliation, Subscription, Suspension
from subscriptions.services.lifecycle import (
    subscription_amend,
    subscription_amend_effect,
    subscription_cancel,
    subscription_cancel_effect,
)
from subscriptions.services.suspensions import suspensions_resume_due
from tests.factories import (
    CustomerFactory,
    ReconciliationFactory,
    SubscriptionFactory,
    SuspensionFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

TICKET = "https://tickets.example.com/1001"
WHY = "Bought through Acme Resellers."
# Inside the factories' term (2026-01-01 to 2027-01-01), before the Q1 reconciliation.
TODAY = date(2026, 3, 1)


@pytest.fixture
def ops():
    return UserFactory(roles=["sales_ops"])


@pytest.fixture
def sub():
    """100 seats at 100.00 a year, direct, 110 seats used at most: 10 over."""
    return SubscriptionFactory(namespace__seats_in_use=105, namespace__max_seats_used=110)


def amend(sub, actor, reason=WHY, ticket_url=TICKET, **values):
    return subscription_amend(
        subscription=sub, actor=actor, reason=reason, ticket_url=ticket_url, today=TODAY, **values
    )


def cancel(sub, actor, reason="The customer left.", ticket_url=TICKET):
    return subscription_cancel(subscription=sub, actor=actor, reason=reason, ticket_url=ticket_url)


def row(sub) -> dict:
    """The subscription's row as stored."""
    return Subscription.objects.filter(pk=sub.pk).values().get()


@contextmanager
def refused(field: str | None, fragment: str, sub):
    """Expect a DomainError on `field` saying `fragment`, with the row and its history
    left as they were."""
    before, history = row(sub), sub.history.count()
    with pytest.raises(DomainError, match=re.escape(fragment)) as excinfo:
        yield
    assert excinfo.value.field == field
    assert row(sub) == before
    assert sub.history.count() == history


# --- Amend ------------------------------------------------------------------------------


def test_amend_saves_the_changes_with_who_why_and_the_ticket(sub, ops):
    before = row(sub)

    result = amend(sub, ops, channel="reseller", seats=120, term_end=date(2027, 2, 1))

    after = row(sub)
    assert (result.channel, result.seats, result.term_end) == ("reseller", 120, date(2027, 2, 1))
    assert (after["channel"], after["seats"], after["term_end"]) == (
        "reseller",
        120,
        date(2027, 2, 1),
    )
    unchanged = {"channel", "seats", "term_end", "updated_at"}
    assert {k: v for k, v in after.items() if k not in unchanged} == {
        k: v for k, v in before.items() if k not in unchanged
    }
    latest = sub.history.latest()
    assert latest.history_user == ops
    assert latest.history_change_reason == f"amended: {WHY} · {TICKET}"


def test_amend_with_the_values_it_has_is_a_no_op(sub, ops):
    before, history = row(sub), sub.history.count()

    amend(sub, ops, channel="direct", seats=100, annual_unit_price=Decimal("100.0"), program="")

    assert row(sub) == before
    assert sub.history.count() == history


def test_amend_by_the_system_records_no_user(sub):
    amend(sub, policy.SYSTEM, payment_method="invoice")

    latest = sub.history.latest()
    assert latest.payment_method == "invoice"
    assert latest.history_user is None
    assert latest.history_change_reason == f"amended: {WHY} · {TICKET}"


@pytest.mark.parametrize(
    ("values", "field", "fragment"),
    [
        ({"term_end": date(2025, 12, 1)}, "term_end", "The term must end after it starts."),
        ({"channel": "distributor"}, "channel", "not a valid choice"),
        ({"program": "charity"}, "program", "not a valid choice"),
        ({"seats": -1}, "seats", "greater than or equal to 0"),
        ({"annual_unit_price": Decimal("-1.00")}, "annual_unit_price", "greater than or equal"),
        ({"annual_unit_price": Decimal("99.999")}, "annual_unit_price", "2 decimal places"),
        ({"term_months": 0}, "term_months", "at least one month"),
    ],
    ids=["term-end", "channel", "program", "seats", "negative-price", "price-decimals", "months"],
)
def test_amend_validates_with_the_models_rules(sub, ops, values, field, fragment):
    with refused(field, fragment, sub):
        amend(sub, ops, **values)


def test_amend_obeys_the_currencys_decimals(ops):
    sub = SubscriptionFactory(customer=CustomerFactory(currency="JPY"), annual_unit_price=14000)

    with refused("annual_unit_price", "JPY amounts have 0 decimal places", sub):
        amend(sub, ops, annual_unit_price=Decimal("14000.50"))


def test_amend_obeys_whatever_validators_the_field_carries(sub, ops, monkeypatch):
    """Ceilings live on the model's fields; the service asks the field, not a copy."""
    seats = Subscription._meta.get_field("seats")
    monkeypatch.setattr(seats, "validators", [*seats.validators, MaxValueValidator(150)])

    with refused("seats", "less than or equal to 150", sub):
        amend(sub, ops, seats=151)
    assert amend(sub, ops, seats=150).seats == 150


def test_amend_has_no_status(sub, ops):
    """Cancel is the only way to cancel; expired belongs to the nightly run."""
    with pytest.raises(TypeError):
        amend(sub, ops, status="expired")
    with pytest.raises(TypeError, match="not amendable: status"):
        subscription_amend_effect(subscription=sub, values={"status": "cancelled"}, today=TODAY)
    assert row(sub)["status"] == "active"


@pytest.mark.parametrize(
    ("status", "fragment"),
    [
        ("suspended", "suspended; amend it after it resumes"),
        ("cancelled", "cancelled; it changes no more"),
        ("expired", "expired; it changes no more"),
    ],
)
def test_amend_refuses_a_subscription_that_is_not_active(ops, status, fragment):
    sub = SubscriptionFactory(status=status)

    with refused(None, fragment, sub):
        amend(sub, ops, channel="reseller")


@pytest.mark.parametrize(
    ("reason", "ticket_url", "field", "fragment"),
    [
        ("  ", TICKET, "reason", "Say why"),
        (WHY, "", "ticket_url", "A link to the ticket is required."),
        (WHY, "ftp://tickets.example.com/1", "ticket_url", "valid http(s) link"),
        ("x" * 80, TICKET, "reason", "shorten the reason to"),
        (WHY, "https://tickets.example.com/" + "a" * 150, "ticket_url", "shorter link"),
    ],
    ids=["no-reason", "no-ticket", "ftp", "long-reason", "long-link"],
)
def test_amend_needs_a_reason_and_a_ticket_link(sub, ops, reason, ticket_url, field, fragment):
    with refused(field, fragment, sub):
        amend(sub, ops, reason=reason, ticket_url=ticket_url, channel="reseller")


def test_moving_the_start_of_a_reconciled_term_is_refused(sub, ops):
    ReconciliationFactory(subscription=sub, status=Reconciliation.Status.PROCESSED)

    with refused("term_start", "would reconcile its quarters again", sub):
        amend(sub, ops, term_start=date(2026, 1, 15))
    assert amend(sub, ops, term_end=date(2027, 1, 15)).term_end == date(2027, 1, 15)


def test_a_term_that_no_longer_holds_a_scheduled_suspension_is_refused(sub, ops):
    SuspensionFactory(
        subscription=sub, suspend_date=date(2026, 11, 1), resume_date=date(2026, 12, 1)
    )

    with refused("term_end", "would no longer fit the term", sub):
        amend(sub, ops, term_end=date(2026, 11, 15))


def test_amend_is_refused_for_a_role_without_the_action(sub):
    support = UserFactory(roles=["support"])
    before, history = row(sub), sub.history.count()

    with pytest.raises(NotAllowed, match=re.escape("Your role does not allow this.")):
        amend(sub, support, channel="reseller")

    assert row(sub) == before
    assert sub.history.count() == history


# --- The money effect -------------------------------------------------------------------


def test_the_effect_of_going_direct(ops):
    """Reseller -> direct puts the term on QSR: 10 seats over 100 cost 10 x 25.00 x 3 =
    750.00 at Q1 instead of 10 x 100.00 = 1,000.00 at the annual true-up."""
    sub = SubscriptionFactory(
        channel="reseller", namespace__seats_in_use=105, namespace__max_seats_used=110
    )

    effect = subscription_amend_effect(subscription=sub, values={"channel": "direct"}, today=TODAY)

    assert effect.changes == {"channel": ("reseller", "direct")}
    assert (effect.before.qsr, effect.after.qsr) == (
        "Ineligible: bought through a reseller",
        "Enabled",
    )
    assert effect.before.recurring == effect.after.recurring == Decimal("10000.00")
    assert (effect.before.next_charge.amount, effect.after.next_charge.amount) == (
        Decimal("1000.00"),
        Decimal("750.00"),
    )
    lines = effect.lines()
    assert "Channel: Reseller / channel → Direct." in lines
    assert "QSR: Ineligible: bought through a reseller → Enabled." in lines
    assert (
        "Recurring charge (seats × price a year, invoiced at each renewal): USD 10,000.00 "
        "(unchanged)." in lines
    )
    assert (
        "Next overage charge at today's usage (110 max seats used): 10 over 100 paid, the "
        "annual true-up at the term end (2027-01-01), USD 1,000.00 → 10 over 100 paid, the "
        "Q1 reconciliation on 2026-04-01, USD 750.00." in lines
    )
    assert row(sub)["channel"] == "reseller"  # the effect writes nothing


def test_the_effect_of_seats_and_price(sub):
    effect = subscription_amend_effect(
        subscription=sub,
        values={"seats": 110, "annual_unit_price": Decimal("120.00")},
        today=TODAY,
    )

    assert (effect.before.recurring, effect.after.recurring) == (
        Decimal("10000.00"),
        Decimal("13200.00"),
    )
    assert (effect.before.next_charge.amount, effect.after.next_charge.amount) == (
        Decimal("750.00"),
        Decimal("0.00"),
    )
    assert "Annual unit price: USD 100.00 → USD 120.00." in effect.lines()


def test_the_effect_says_when_qsr_would_skip_the_charge():
    sub = SubscriptionFactory(
        qsr_state="paused",
        qsr_paused_until=date(2026, 5, 1),
        namespace__seats_in_use=105,
        namespace__max_seats_used=110,
    )

    effect = subscription_amend_effect(subscription=sub, values={"seats": 105}, today=TODAY)

    assert effect.before.qsr == "Paused until 2026-05-01"
    assert effect.after.next_charge.skipped == "QSR paused"
    assert "USD 375.00 (skipped: QSR paused)" in effect.after.next_charge.describe("USD")


# --- Cancel -----------------------------------------------------------------------------


def test_cancel_cancels_the_subscription_and_its_scheduled_suspensions(sub, ops):
    scheduled = SuspensionFactory(subscription=sub)
    done = SuspensionFactory(
        subscription=sub,
        suspend_date=date(2026, 2, 1),
        resume_date=date(2026, 2, 10),
        status=Suspension.Status.RESUMED,
    )

    cancel(sub, ops)

    assert row(sub)["status"] == "cancelled"
    scheduled.refresh_from_db()
    done.refresh_from_db()
    assert (scheduled.status, done.status) == ("cancelled", "resumed")
    reason = f"cancelled: The customer left. · {TICKET}"
    for record in (sub, scheduled):
        latest = record.history.latest()
        assert (latest.history_user, latest.history_change_reason) == (ops, reason)
    assert done.history.count() == 1


def test_a_cancelled_subscription_refuses_amend_and_cancel(sub, ops):
    cancel(sub, ops)

    with refused(None, "cancelled; it changes no more", sub):
        amend(sub, ops, channel="reseller")
    with refused(None, "cancelled already", sub):
        cancel(sub, ops)


def test_a_suspended_subscription_cancelled_stays_cancelled_when_the_resume_day_comes(ops):
    sub = SubscriptionFactory(status="suspended")
    active = SuspensionFactory(subscription=sub, status=Suspension.Status.ACTIVE)

    cancel(sub, ops)
    suspensions_resume_due(run_date=active.resume_date, actor=policy.SYSTEM)

    active.refresh_from_db()
    assert (row(sub)["status"], active.status) == ("cancelled", "cancelled")
    assert not active.lines.exists()  # no recharge


def test_the_cancel_effect_names_what_stops(sub):
    SuspensionFactory(subscription=sub)
    ReconciliationFactory(
        subscription=sub, status=Reconciliation.Status.PENDING, amount=Decimal("750.00")
    )

    lines = subscription_cancel_effect(subscription=sub)

    assert lines[0].startswith("Status: Active → Cancelled.")
    assert "the recurring charge of USD 10,000.00 a year is not invoiced again" in lines[0]
    assert (
        "Reconciliations not invoiced yet (Q1 on 2026-04-01; priced so far: USD 750.00) "
        "will not be invoiced." in lines
    )
    assert (
        "The scheduled suspension (credit and recharge) from 2026-06-01 to 2026-06-26 is "
        "cancelled: it never starts." in lines
    )


def test_cancel_is_refused_for_a_role_without_the_action(sub):
    scheduled = SuspensionFactory(subscription=sub)

    with pytest.raises(NotAllowed):
        cancel(sub, UserFactory(roles=["finance"]))

    scheduled.refresh_from_db()
    assert (row(sub)["status"], scheduled.status) == ("active", "scheduled")
