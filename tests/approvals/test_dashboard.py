"""The home page's work queues: each role sees the queues it works, with the count and the
age of the oldest item, limited to a sales manager's own accounts; and the page costs
the same number of queries whatever the number of records."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from approvals.models import ApprovalRequest
from approvals.services import dispute_record
from subscriptions.models import Subscription
from tests.approvals.dashboard_page import home, logged_in, person, queues, section
from tests.approvals.helpers import (
    TICKET,
    account,
    approve_both,
    pause,
    processed_q1,
    refund,
    reset,
)

pytestmark = pytest.mark.django_db


def days_ago(n: int):
    return timezone.now() - timedelta(days=n)


@pytest.fixture
def work(p, today):
    """A pause filed 3 days ago, a reset big enough for executive and finance, and a
    refund with its reset approved 2 days ago (support executes the reset, deal desk
    processes the refund), all on `p.owner`'s accounts; a dispute routed to the owner."""
    _, sub = account(p.owner, name="Paused Ltd")
    paused = pause(sub, p.owner, today)
    ApprovalRequest.objects.filter(pk=paused.pk).update(created_at=days_ago(3))
    _, big = account(p.owner, seats=100, in_use=100, max_used=400, name="Big Waiver Inc")
    large = reset(big, p.owner, today)
    assert large.required_slots == ["sales_ops", "executive", "finance"]
    recon = processed_q1(account(p.owner, name="Refund Co")[1])
    refunded = approve_both(refund(recon, p.owner, today, seats=4), p)
    ApprovalRequest.objects.filter(pk__in=[refunded.pk, refunded.linked_reset_id]).update(
        decided_at=days_ago(2)
    )
    dispute_record(reconciliation=recon, reason="Counted bots.", ticket_url=TICKET, actor=p.support)
    return refunded


EXPECTED = {
    # role: {queue: (count, age)}
    "support": {
        "to_execute": "1 oldest 2 days",
        "mine": "0 nothing waiting",
        "qsr_bugs": "0 nothing waiting",
    },
    "support_manager": {
        "awaiting_me": "0 nothing waiting",
        "to_execute": "1 oldest 2 days",
        "mine": "0 nothing waiting",
        "qsr_bugs": "0 nothing waiting",
    },
    "sales": {"mine": "4 oldest 3 days", "disputes": "1 oldest today"},
    "sales_ops": {"awaiting_me": "2 oldest 3 days"},
    "deal_desk": {"to_execute": "1 oldest 2 days"},
    "executive": {"awaiting_me": "1 oldest today"},
    "finance": {"awaiting_me": "1 oldest today"},
}
OWNER = {"sales": "owner", "sales_ops": "ops", "deal_desk": "desk", "support_manager": "manager"}


@pytest.mark.parametrize("role", EXPECTED)
def test_each_role_sees_the_queues_it_works_with_counts_and_ages(p, work, role):
    page = home(getattr(p, OWNER.get(role, role)))

    shown = queues(page)

    assert set(shown) == set(EXPECTED[role])
    for key, figures in EXPECTED[role].items():
        assert figures in shown[key], (key, shown[key])


def test_each_queue_links_to_the_list_it_counts(p, work, client):
    client.force_login(p.owner)
    page = home(p.owner)
    assert (
        'href="/admin/approvals/approvalrequest/?queue=mine&amp;status__in=pending%2Capproved"'
        in page
    )

    listed = client.get(reverse("admin:approvals_approvalrequest_changelist"),
                        {"queue": "mine", "status__in": "pending,approved"})  # fmt: skip

    assert listed.status_code == 200
    assert listed.context["cl"].result_count == 4


def test_support_sees_how_long_qsr_has_been_off_for_each_bug(p):
    _, sub = account(p.owner, name="Bugged GmbH")
    Subscription.objects.filter(pk=sub.pk).update(
        qsr_state=Subscription.QsrState.DISABLED_FOR_BUG,
        qsr_bug_url="https://bugs.example.com/1",
        qsr_changed_at=days_ago(12),
    )

    page = home(p.support)

    assert queues(page)["qsr_bugs"] == (
        "QSR disabled for bugs To re-enable once the bug is fixed; oldest by when QSR was "
        "disabled 1 oldest 12 days"
    )
    bugs = section(page, "portal-bugs")
    assert f"QSR disabled for bugs (1) Bugged GmbH · {sub.namespace.name} 12 days" in bugs
    assert reverse("admin:subscriptions_subscription_change", args=[sub.pk]) in page


def test_a_sales_manager_counts_only_their_own_accounts(p, today):
    other = person("sales", "other-sales")
    _, theirs = account(other, name="Not Yours plc")
    pause(theirs, other, today)
    dispute_record(
        reconciliation=processed_q1(theirs), reason="x", ticket_url=TICKET, actor=p.support
    )
    Subscription.objects.filter(pk=theirs.pk).update(
        qsr_state=Subscription.QsrState.DISABLED_FOR_BUG,
        qsr_bug_url="https://bugs.example.com/2",
        qsr_changed_at=days_ago(1),
    )
    _, mine = account(p.owner, name="Mine Ltd")
    pause(mine, p.owner, today)

    owner_page, ops_page = home(p.owner), home(p.ops)

    assert "1 oldest today" in queues(owner_page)["mine"]
    assert "0 nothing waiting" in queues(owner_page)["disputes"]
    assert "QSR disabled for bugs (0)" in section(owner_page, "portal-bugs")
    assert "Not Yours plc" not in owner_page
    # Sales ops sees every account.
    assert "2 oldest today" in queues(ops_page)["awaiting_me"]
    assert "Not Yours plc" in section(ops_page, "portal-bugs")


def test_someone_without_a_role_sees_no_dashboard():
    nobody = person("support", "nobody")
    nobody.groups.clear()

    page = home(nobody)

    assert 'id="portal-queues"' not in page


# --- Queries ---------------------------------------------------------------------------


def book(p, today, n: int) -> None:
    """n accounts of every kind the dashboard counts (see the figures tests)."""
    from tests.approvals.test_dashboard_figures import due_account, invoiced, night

    for i in range(n):
        _, sub = account(p.owner, name=f"Book {n}-{i}")
        pause(sub, p.owner, today)
        recon = processed_q1(sub)
        invoiced(recon, timezone.now())
        approve_both(refund(recon, p.owner, today, seats=1), p)
        dispute_record(reconciliation=recon, reason="x", ticket_url=TICKET, actor=p.support)
        due_account(p.owner, days=5, currency=("USD", "EUR", "JPY")[i % 3])
        _, bugged = account(p.owner, name=f"Bug {n}-{i}")
        Subscription.objects.filter(pk=bugged.pk).update(
            qsr_state=Subscription.QsrState.DISABLED_FOR_BUG,
            qsr_bug_url="https://bugs.example.com/3",
            qsr_changed_at=days_ago(i),
        )
        night(today - timedelta(days=i), "failed", errors=[{"step": "renewal", "error": "x"}])


def queries_of(user) -> int:
    client = logged_in(user)
    with CaptureQueriesContext(connection) as captured:
        home(user, client)
    return len(captured)


@pytest.mark.parametrize("role", ["owner", "support", "ops", "finance", "desk"])
def test_the_home_page_costs_the_same_queries_for_5_and_50_records(p, today, role):
    user = getattr(p, role)
    book(p, today, 5)
    few = queries_of(user)

    book(p, today, 45)
    many = queries_of(user)

    assert many == few, f"{few} queries for 5 records, {many} for 50"
    assert few <= 20
