"""The subscriptions app's buttons in the admin (subscriptions/admin_actions.py), one walk
through each: form -> confirmation page with its effect (nothing changed yet) -> service.
(DOMAIN.md "Disabling, pausing and disputing QSR".)"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from subscriptions.models import QsrDisabledForBug
from tests.admin_buttons import BUG, TICKET, QsrState, fresh, live_subscription, walk
from tests.assertions import admin_url, shown

pytestmark = pytest.mark.django_db


# --- One walk through each action: form -> confirmation with the effect -> done ----------


def test_support_disables_qsr_for_a_confirmed_bug(client, portal):
    sub = live_subscription(portal)
    support = portal.users["support"]
    client.force_login(support)

    review = walk(client, sub, "disable-qsr-for-bug", {"bug_url": BUG, "ticket_url": TICKET})

    assert f"goes from enabled to disabled for the bug {BUG} (ticket {TICKET})" in review
    assert "skipped with the reason “QSR disabled for a bug”" in review
    sub = fresh(sub)
    assert (sub.qsr_state, sub.qsr_bug_url, sub.qsr_ticket_url) == (
        QsrState.DISABLED_FOR_BUG,
        BUG,
        TICKET,
    )
    assert sub.qsr_changed_by == support
    assert sub.history.first().history_user == support
    listed = client.get(admin_url(QsrDisabledForBug))
    assert shown(listed) == {sub.pk}
    assert BUG in listed.text


def test_support_re_enables_qsr_after_the_fix(client, portal):
    sub = live_subscription(
        portal, qsr_state=QsrState.DISABLED_FOR_BUG, qsr_bug_url=BUG, qsr_ticket_url=TICKET
    )
    client.force_login(portal.users["support"])

    review = walk(client, sub, "enable-qsr", {})

    assert "goes from disabled for a bug back to enabled" in review
    assert "the next reconciliation charges the overage as usual" in review
    sub = fresh(sub)
    assert (sub.qsr_state, sub.qsr_bug_url) == (QsrState.ENABLED, "")
    assert shown(client.get(admin_url(QsrDisabledForBug))) == set()


def test_sales_ops_ends_a_pause_early(client, portal):
    sub = live_subscription(
        portal, qsr_state=QsrState.PAUSED, qsr_paused_until=timezone.localdate() + timedelta(30)
    )
    client.force_login(portal.users["sales_ops"])

    review = walk(client, sub, "enable-qsr", {})

    assert "back to enabled" in review
    sub = fresh(sub)
    assert (sub.qsr_state, sub.qsr_paused_until) == (QsrState.ENABLED, None)


def test_sales_ops_hands_an_account_to_another_sales_manager(client, portal):
    other = portal.users["sales_other"]
    client.force_login(portal.users["sales_ops"])

    review = walk(client, portal.customer, "assign-owner", {"owner": other.pk})

    assert "Acme Corp is owned by sales.other (was sales.owner)" in review
    assert fresh(portal.customer).owner == other
    assert other.has_perm("subscriptions.own_customer", portal.customer)
    owner = type(portal.owner).objects.get(pk=portal.owner.pk)  # no cached permissions
    assert not owner.has_perm("subscriptions.own_customer", portal.customer)
