"""QSR state changes and suspension scheduling (subscriptions/services/subscriptions.py):
the rules refused with the field at fault, repeats as no-ops, history with who and why
(no user when the portal itself acts)."""

import re
from contextlib import contextmanager
from datetime import date

import pytest

from portal import policy
from portal.errors import DomainError
from subscriptions.models import Namespace, Subscription, Suspension
from subscriptions.services.history import history_params, history_snapshot, update_with_history
from subscriptions.services.subscriptions import (
    subscription_qsr_disable_for_bug,
    subscription_qsr_enable,
    subscription_qsr_pause,
    suspension_schedule,
)
from tests.factories import SubscriptionFactory, SuspensionFactory, UserFactory

pytestmark = pytest.mark.django_db

BUG = "https://bugs.example.com/issues/123"
TICKET = "https://tickets.example.com/42"
TODAY = date(2026, 3, 1)  # inside the factories' term, 2026-01-01 to 2027-01-01


@pytest.fixture
def sub():
    return SubscriptionFactory()


@pytest.fixture
def actor():
    return UserFactory(roles=["support"])


def history_count(obj) -> int:
    return obj.history.count()


@contextmanager
def raises(field: str | None, fragment: str):
    """Expect a DomainError on `field` whose message contains `fragment`."""
    with pytest.raises(DomainError, match=re.escape(fragment)) as excinfo:
        yield
    assert excinfo.value.field == field


def disable(sub, actor, bug=BUG, ticket=TICKET):
    return subscription_qsr_disable_for_bug(
        subscription=sub, bug_url=bug, ticket_url=ticket, actor=actor
    )


def pause(sub, actor, until=None, today=TODAY):
    return subscription_qsr_pause(subscription=sub, until=until, actor=actor, today=today)


def schedule(sub, actor, start=date(2026, 6, 1), end=date(2026, 6, 26), mode="credit", **kw):
    kw.setdefault("extend_term", False)
    kw.setdefault("ticket_url", TICKET)
    return suspension_schedule(
        subscription=sub, suspend_date=start, resume_date=end, mode=mode, actor=actor, **kw
    )


# --- Disable for a bug, enable ---------------------------------------------------------------


def test_disable_for_bug_records_the_links_who_and_why(sub, actor):
    result = disable(sub, actor)

    sub.refresh_from_db()
    assert result == sub
    assert sub.qsr_state == Subscription.QsrState.DISABLED_FOR_BUG
    assert (sub.qsr_bug_url, sub.qsr_ticket_url) == (BUG, TICKET)
    assert sub.qsr_changed_by == actor and sub.qsr_changed_at is not None
    latest = sub.history.latest()
    assert (latest.history_user, latest.history_change_reason) == (actor, "QSR disabled for a bug")


def test_the_system_disables_qsr_with_no_user_on_the_record_or_its_history(sub):
    disable(sub, policy.SYSTEM)

    sub.refresh_from_db()
    assert sub.qsr_state == Subscription.QsrState.DISABLED_FOR_BUG
    assert sub.qsr_changed_by is None
    latest = sub.history.latest()
    assert (latest.history_user, latest.history_change_reason) == (None, "QSR disabled for a bug")


def test_set_based_history_rows_of_the_system_have_no_user(sub):
    """The writers the nightly steps use record no user for the portal itself."""
    namespace = sub.namespace
    assert history_params(reason="nightly", user=policy.SYSTEM)["history_user"] is None

    history_snapshot(Namespace, ids=[namespace.pk], reason="seat refresh", user=policy.SYSTEM)
    update_with_history(
        Subscription, pks=[sub.pk], values={"seats": [110]}, reason="nightly", user=policy.SYSTEM
    )

    # Dated by the database's transaction time, so found by their reason.
    snapshot = namespace.history.get(history_change_reason="seat refresh")
    updated = sub.history.get(history_change_reason="nightly")
    assert snapshot.history_user is None
    assert (updated.seats, updated.history_user) == (110, None)


def test_disable_again_with_the_same_bug_is_a_no_op(sub, actor):
    disable(sub, actor)
    rows = history_count(sub)

    disable(sub, UserFactory(roles=["support"]))

    sub.refresh_from_db()
    assert history_count(sub) == rows
    assert sub.qsr_changed_by == actor


def test_disable_for_another_bug_needs_a_re_enable_first(sub, actor):
    disable(sub, actor)

    with raises(None, "re-enable it first"):
        disable(sub, actor, bug="https://bugs.example.com/issues/999")


@pytest.mark.parametrize(
    ("bug", "ticket", "field", "fragment"),
    [
        ("", TICKET, "bug_url", "A link to the bug report is required"),
        ("bug 123", TICKET, "bug_url", "valid http"),
        ("javascript:alert(1)", TICKET, "bug_url", "valid http"),
        ("ftp://bugs.example.com/1", TICKET, "bug_url", "valid http"),
        ("https://bugs.example.com/" + "x" * 200, TICKET, "bug_url", "longer than 200"),
        (BUG, "", "ticket_url", "A link to the ticket is required"),
        (BUG, "TICKET-42", "ticket_url", "valid http"),
    ],
)
def test_disable_needs_valid_links(sub, actor, bug, ticket, field, fragment):
    with raises(field, fragment):
        disable(sub, actor, bug=bug, ticket=ticket)

    sub.refresh_from_db()
    assert sub.qsr_state == Subscription.QsrState.ENABLED
    assert history_count(sub) == 1  # the creation only


def test_disable_does_not_replace_an_approved_pause(sub, actor):
    pause(sub, actor, until=date(2026, 5, 1))

    with raises(None, "paused until 2026-05-01"):
        disable(sub, actor)


@pytest.mark.parametrize("status", ["cancelled", "expired"])
def test_qsr_of_a_dead_subscription_does_not_change(actor, status):
    sub = SubscriptionFactory(status=status)

    with raises(None, f"The subscription is {status}"):
        disable(sub, actor)
    with raises(None, f"The subscription is {status}"):
        pause(sub, actor)


def test_enable_clears_the_bug_and_records_who(sub, actor):
    disable(sub, actor)
    other = UserFactory(roles=["support"])

    subscription_qsr_enable(subscription=sub, actor=other)

    sub.refresh_from_db()
    assert sub.qsr_state == Subscription.QsrState.ENABLED
    assert (sub.qsr_bug_url, sub.qsr_ticket_url) == ("", "")
    assert sub.qsr_changed_by == other
    latest = sub.history.latest()
    assert latest.history_user == other
    assert latest.history_change_reason == "QSR re-enabled (was disabled for a bug)"
    # The history still shows which bug it was.
    assert sub.history.filter(qsr_bug_url=BUG).exists()


def test_enable_ends_a_pause(sub, actor):
    pause(sub, actor)

    subscription_qsr_enable(subscription=sub, actor=UserFactory(roles=["sales_ops"]))

    sub.refresh_from_db()
    assert (sub.qsr_state, sub.qsr_paused_until) == (Subscription.QsrState.ENABLED, None)


def test_enable_when_enabled_is_a_no_op(sub, actor):
    subscription_qsr_enable(subscription=sub, actor=actor)

    sub.refresh_from_db()
    assert history_count(sub) == 1
    assert sub.qsr_changed_by is None


# --- Pause ------------------------------------------------------------------------------------


def test_pause_without_a_date_lasts_to_the_last_day_of_the_term(sub, actor):
    pause(sub, actor)

    sub.refresh_from_db()
    assert sub.qsr_state == Subscription.QsrState.PAUSED
    assert sub.qsr_paused_until == date(2026, 12, 31)
    assert sub.history.latest().history_change_reason == "QSR paused until 2026-12-31"


def test_pause_again_moves_the_end_and_the_same_pause_is_a_no_op(sub, actor):
    pause(sub, actor, until=date(2026, 5, 1))
    pause(sub, actor, until=date(2026, 5, 1))
    rows = history_count(sub)

    pause(sub, actor, until=date(2026, 8, 1))

    sub.refresh_from_db()
    assert sub.qsr_paused_until == date(2026, 8, 1)
    assert history_count(sub) == rows + 1 == 3


@pytest.mark.parametrize(
    ("until", "today", "fragment"),
    [
        (date(2027, 1, 1), TODAY, "within the term (2026-01-01 to 2026-12-31)"),
        (date(2025, 12, 31), date(2025, 12, 1), "within the term"),
        (date(2026, 2, 1), TODAY, "cannot end before today (2026-03-01)"),
    ],
)
def test_pause_must_end_within_the_term_and_not_in_the_past(sub, actor, until, today, fragment):
    with raises("until", fragment):
        pause(sub, actor, until=until, today=today)

    sub.refresh_from_db()
    assert sub.qsr_state == Subscription.QsrState.ENABLED


def test_pause_until_today_is_allowed(sub, actor):
    pause(sub, actor, until=TODAY)

    sub.refresh_from_db()
    assert sub.qsr_paused_until == TODAY


def test_pause_while_disabled_for_a_bug_is_refused(sub, actor):
    disable(sub, actor)

    with raises(None, "disabled for the bug"):
        pause(sub, actor)


# --- Suspension scheduling ------------------------------------------------------------------


def test_schedule_creates_a_scheduled_suspension_with_who_and_why(sub, actor):
    suspension = schedule(sub, actor, reason="Customer asked to pause over summer.")

    assert suspension.status == Suspension.Status.SCHEDULED
    assert (suspension.suspend_date, suspension.resume_date) == (
        date(2026, 6, 1),
        date(2026, 6, 26),
    )
    assert (suspension.ticket_url, suspension.reason) == (
        TICKET,
        "Customer asked to pause over summer.",
    )
    created = suspension.history.get()
    assert (created.history_user, created.history_change_reason) == (actor, "suspension scheduled")
    sub.refresh_from_db()
    assert (sub.status, sub.term_end) == ("active", date(2027, 1, 1))  # the nightly acts


def test_scheduling_the_same_suspension_again_is_a_no_op(sub, actor):
    first = schedule(sub, actor)

    again = schedule(sub, UserFactory())

    assert again == first
    assert Suspension.objects.count() == 1
    assert first.history.count() == 1


def test_a_freeze_always_extends_the_term(sub, actor):
    suspension = schedule(sub, actor, mode="freeze", extend_term=False)

    assert suspension.extend_term is True


@pytest.mark.parametrize(
    ("start", "end", "field", "fragment"),
    [
        (date(2025, 12, 1), date(2026, 1, 10), "suspend_date", "outside the term"),
        (date(2027, 1, 1), date(2027, 2, 1), "suspend_date", "outside the term"),
        (date(2026, 6, 1), date(2026, 6, 1), "resume_date", "must be after its start"),
        (date(2026, 6, 1), date(2026, 5, 1), "resume_date", "must be after its start"),
        (date(2026, 12, 1), date(2027, 1, 2), "resume_date", "after the term end"),
    ],
)
def test_suspension_dates_follow_the_proration_rules(sub, actor, start, end, field, fragment):
    with raises(field, fragment):
        schedule(sub, actor, start=start, end=end)

    assert not Suspension.objects.exists()


def test_resuming_on_the_term_end_is_allowed(sub, actor):
    suspension = schedule(sub, actor, start=date(2026, 12, 1), end=date(2027, 1, 1))

    assert suspension.resume_date == sub.term_end


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (date(2026, 6, 10), date(2026, 7, 10)),  # starts inside
        (date(2026, 5, 1), date(2026, 6, 2)),  # ends inside
        (date(2026, 5, 1), date(2026, 7, 1)),  # covers it
        (date(2026, 6, 1), date(2026, 6, 20)),  # same start, other end
    ],
)
def test_overlapping_suspensions_are_refused(sub, actor, start, end):
    schedule(sub, actor)

    with raises("suspend_date", "Overlaps the scheduled suspension from 2026-06-01 to 2026-06-26"):
        schedule(sub, actor, start=start, end=end)

    assert Suspension.objects.count() == 1


def test_adjacent_and_cancelled_suspensions_do_not_overlap(sub, actor):
    schedule(sub, actor)
    SuspensionFactory(
        subscription=sub,
        suspend_date=date(2026, 8, 1),
        resume_date=date(2026, 9, 1),
        status=Suspension.Status.CANCELLED,
    )

    schedule(sub, actor, start=date(2026, 6, 26), end=date(2026, 7, 1))  # the day it resumes
    schedule(sub, actor, start=date(2026, 8, 10), end=date(2026, 8, 20))

    assert Suspension.objects.exclude(status="cancelled").count() == 3


@pytest.mark.parametrize("status", ["cancelled", "expired"])
def test_no_suspension_of_a_dead_subscription(actor, status):
    sub = SubscriptionFactory(status=status)

    with raises(None, f"The subscription is {status}"):
        schedule(sub, actor)


@pytest.mark.parametrize(
    ("kwargs", "field", "fragment"),
    [
        ({"mode": "holiday"}, "mode", "Unknown suspension mode 'holiday'"),
        ({"ticket_url": ""}, "ticket_url", "A link to the ticket is required"),
        ({"ticket_url": "see ticket 42"}, "ticket_url", "valid http"),
    ],
)
def test_schedule_needs_a_known_mode_and_a_ticket(sub, actor, kwargs, field, fragment):
    with raises(field, fragment):
        schedule(sub, actor, **kwargs)
