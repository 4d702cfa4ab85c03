"""Invariants of a suspension (subscriptions/models/suspensions.py; DOMAIN.md "Suspensions
and proration"): inside the term, no overlap with another live one.

Each rule is checked twice where the database can hold it: `full_clean()` (what a form or
the admin shows: the field at fault and why) and a write that skips validation (what a
job or a bug would do: the database refuses and nothing is stored)."""

from datetime import date

import pytest
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from subscriptions.models import Suspension
from tests.assertions import assert_db_rejects, assert_invalid
from tests.factories import SubscriptionFactory, SuspensionFactory
from tests.subscriptions.helpers import TERM_END

pytestmark = pytest.mark.django_db


# --- Suspensions ----------------------------------------------------------------------------


INSIDE_TERM = "Must lie inside the term (2026-01-01 to 2027-01-01)."
BY_TERM_END = "Must be no later than the term end (2027-01-01)."


@pytest.mark.parametrize(
    ("suspend_date", "resume_date", "field", "message"),
    [
        pytest.param(
            date(2025, 12, 1), date(2026, 1, 15), "suspend_date", INSIDE_TERM, id="starts-before"
        ),
        pytest.param(
            TERM_END, date(2027, 1, 10), "suspend_date", INSIDE_TERM, id="starts-on-term-end"
        ),
        pytest.param(
            date(2026, 12, 1), date(2027, 1, 2), "resume_date", BY_TERM_END, id="resumes-after"
        ),
    ],
)
def test_suspension_outside_the_term_is_rejected(suspend_date, resume_date, field, message):
    """A cross-record rule: validation holds it, no database constraint can."""
    subscription = SubscriptionFactory()

    suspension = SuspensionFactory.build(
        subscription=subscription, suspend_date=suspend_date, resume_date=resume_date
    )

    assert_invalid(suspension, field, message)


def test_suspension_resuming_on_the_term_end_is_valid():
    SuspensionFactory.build(
        subscription=SubscriptionFactory(), suspend_date=date(2026, 12, 1), resume_date=TERM_END
    ).full_clean()


@pytest.mark.parametrize("resume_date", [date(2026, 6, 1), date(2026, 5, 31)])
def test_suspension_resuming_on_or_before_its_start_is_rejected(resume_date):
    subscription = SubscriptionFactory()

    suspension = SuspensionFactory.build(
        subscription=subscription, suspend_date=date(2026, 6, 1), resume_date=resume_date
    )
    assert_invalid(suspension, "resume_date", "must be after the suspend date")
    assert_db_rejects(
        Suspension,
        lambda: SuspensionFactory(
            subscription=subscription, suspend_date=date(2026, 6, 1), resume_date=resume_date
        ),
        "suspension_resume_after_suspend",
    )


@pytest.mark.parametrize(
    ("suspend_date", "resume_date"),
    [
        pytest.param(date(2026, 6, 10), date(2026, 7, 10), id="starts-inside"),
        pytest.param(date(2026, 5, 1), date(2026, 6, 2), id="ends-inside"),
        pytest.param(date(2026, 5, 1), date(2026, 7, 1), id="encloses"),
        pytest.param(date(2026, 6, 1), date(2026, 6, 26), id="same-dates"),
    ],
)
def test_overlapping_suspension_of_the_same_subscription_is_rejected(suspend_date, resume_date):
    """Both dates together are at fault, so the error is the form's, not one field's."""
    existing = SuspensionFactory()  # 2026-06-01 to 2026-06-26

    overlapping = SuspensionFactory.build(
        subscription=existing.subscription, suspend_date=suspend_date, resume_date=resume_date
    )
    assert_invalid(
        overlapping, NON_FIELD_ERRORS, "This overlaps another suspension of the subscription."
    )
    assert_db_rejects(
        Suspension,
        lambda: SuspensionFactory(
            subscription=existing.subscription,
            suspend_date=suspend_date,
            resume_date=resume_date,
        ),
        "suspension_no_overlap",
    )


def test_suspension_may_overlap_a_cancelled_one():
    cancelled = SuspensionFactory(status=Suspension.Status.CANCELLED)

    replacement = SuspensionFactory.build(
        subscription=cancelled.subscription,
        suspend_date=date(2026, 6, 10),
        resume_date=date(2026, 7, 10),
    )
    replacement.full_clean()
    replacement.save()

    assert cancelled.subscription.suspensions.count() == 2


def test_reviving_a_cancelled_suspension_that_overlaps_is_rejected():
    cancelled = SuspensionFactory(status=Suspension.Status.CANCELLED)
    SuspensionFactory(subscription=cancelled.subscription, suspend_date=date(2026, 6, 10))

    cancelled.status = Suspension.Status.SCHEDULED
    assert_invalid(
        cancelled, NON_FIELD_ERRORS, "This overlaps another suspension of the subscription."
    )
    assert_db_rejects(
        Suspension,
        lambda: Suspension.objects.filter(pk=cancelled.pk).update(status="scheduled"),
        "suspension_no_overlap",
    )


def test_form_without_the_status_field_is_still_told_about_an_overlap():
    existing = SuspensionFactory()

    overlapping = SuspensionFactory.build(subscription=existing.subscription)

    with pytest.raises(ValidationError) as excinfo:
        overlapping.full_clean(exclude=["status"])
    assert excinfo.value.message_dict == {
        NON_FIELD_ERRORS: ["This overlaps another suspension of the subscription."]
    }


def test_back_to_back_suspensions_and_other_subscriptions_do_not_overlap():
    """The resume date is exclusive: the next suspension may start on it."""
    existing = SuspensionFactory()  # 2026-06-01 to 2026-06-26

    SuspensionFactory.build(
        subscription=existing.subscription,
        suspend_date=date(2026, 6, 26),
        resume_date=date(2026, 7, 1),
    ).full_clean()
    SuspensionFactory.build(subscription=SubscriptionFactory()).full_clean()


@pytest.mark.parametrize("mode", ["freeze", "free_period"])
def test_freeze_or_free_period_that_does_not_extend_the_term_is_rejected_by_the_database(mode):
    suspension = SuspensionFactory()

    assert_db_rejects(
        Suspension,
        lambda: Suspension.objects.filter(pk=suspension.pk).update(mode=mode, extend_term=False),
        "suspension_freeze_extends",
    )
