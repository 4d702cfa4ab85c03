"""Invariants of a reconciliation (subscriptions/models/reconciliations.py): one per
subscription, term and quarter; a skip has a reason; amounts and seats stay in range.

Each rule is checked twice where the database can hold it: `full_clean()` (what a form or
the admin shows: the field at fault and why) and a write that skips validation (what a
job or a bug would do: the database refuses and nothing is stored)."""

import pytest
from django.core.exceptions import NON_FIELD_ERRORS

from subscriptions.models import Reconciliation
from tests.assertions import assert_db_rejects, assert_invalid
from tests.factories import ReconciliationFactory
from tests.subscriptions.helpers import TERM_END

pytestmark = pytest.mark.django_db


# --- Reconciliations ------------------------------------------------------------------------


def test_second_reconciliation_for_the_same_subscription_term_and_quarter_is_rejected():
    """Three fields together are at fault, so the error is the form's, not one field's."""
    first = ReconciliationFactory()

    second = ReconciliationFactory.build(subscription=first.subscription)
    assert_invalid(second, NON_FIELD_ERRORS, "This quarter of this term is reconciled already.")
    assert_db_rejects(
        Reconciliation,
        lambda: ReconciliationFactory(subscription=first.subscription),
        "reconciliation_once_per_term_quarter",
    )


def test_other_quarters_and_terms_of_the_subscription_may_be_reconciled():
    first = ReconciliationFactory()

    ReconciliationFactory.build(subscription=first.subscription, quarter=2).full_clean()
    ReconciliationFactory.build(subscription=first.subscription, term_start=TERM_END).full_clean()


def test_skipped_reconciliation_without_a_reason_fails_validation_on_skip_reason():
    reconciliation = ReconciliationFactory()

    reconciliation.status = Reconciliation.Status.SKIPPED
    assert_invalid(reconciliation, "skip_reason", "needs a reason")


def test_skipped_reconciliation_without_a_reason_is_rejected_by_the_database():
    reconciliation = ReconciliationFactory()

    assert_db_rejects(
        Reconciliation,
        lambda: Reconciliation.objects.filter(pk=reconciliation.pk).update(status="skipped"),
        "reconciliation_skip_has_reason",
    )


def test_skip_reason_on_a_reconciliation_that_was_not_skipped_is_rejected_by_the_database():
    reconciliation = ReconciliationFactory()

    assert_db_rejects(
        Reconciliation,
        lambda: Reconciliation.objects.filter(pk=reconciliation.pk).update(skip_reason="paused"),
        "reconciliation_skip_has_reason",
    )


def test_skipped_reconciliation_with_a_reason_is_valid():
    reconciliation = ReconciliationFactory(status="skipped", skip_reason="paused")

    reconciliation.full_clean()
    assert reconciliation.get_skip_reason_display() == "QSR paused"


@pytest.mark.parametrize(
    ("changes", "field", "constraint"),
    [
        ({"quarter": 4}, "quarter", "reconciliation_quarter_1_3"),
        ({"quarter": 0}, "quarter", "reconciliation_quarter_1_3"),
        (
            {"overage_seats": 5, "refunded_seats": 6},
            "refunded_seats",
            "reconciliation_refund_within_overage",
        ),
    ],
)
def test_reconciliation_range_rules_are_held_by_the_database(changes, field, constraint):
    reconciliation = ReconciliationFactory()

    assert_db_rejects(
        Reconciliation,
        lambda: Reconciliation.objects.filter(pk=reconciliation.pk).update(**changes),
        constraint,
    )


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"quarter": 4}, "quarter", "less than or equal to 3"),
        ({"overage_seats": 5, "refunded_seats": 6}, "refunded_seats", "more seats than"),
    ],
)
def test_reconciliation_range_rules_fail_validation_on_their_field(changes, field, fragment):
    reconciliation = ReconciliationFactory()

    for name, value in changes.items():
        setattr(reconciliation, name, value)
    assert_invalid(reconciliation, field, fragment)
