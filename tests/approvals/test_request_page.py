"""An approval request's page gives the approver what they decide on: the seats now, the
value asked for, the money at stake, the account's usage chart and its other requests,
and only the fields of the request's kind. After Approve or Reject the approver lands on
the next request of the queue they came from, or on the queue once it is empty."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from approvals.models import ApprovalRequest
from tests.admin_buttons import change_url, do_url, text
from tests.approvals.helpers import account, free_period, pause, processed_q1, refund, reset

pytestmark = pytest.mark.django_db

Status = ApprovalRequest.Status
QUEUE = reverse("admin:approvals_approvalrequest_changelist")


def section(page: str, element_id: str) -> str:
    after = page.split(f'id="{element_id}"', 1)
    assert len(after) == 2, f"no #{element_id} on the page"
    return after[1].split('class="module', 1)[0]


def context_rows(page: str) -> dict[str, str]:
    """The decision context as label -> value."""
    rows = re.findall(
        r"<th scope=\"row\">(.*?)</th><td>(.*?)</td>", section(page, "decision-context")
    )
    return dict(rows)


def field_labels(page: str) -> set[str]:
    """The labels of the request's own fields."""
    return set(re.findall(r"<label[^>]*>([^<:]+):</label>", page))


# --- Decision context ----------------------------------------------------------------------


def test_a_pending_reset_shows_the_seats_and_the_value_asked_for(client, p, today):
    # 110 paid, 100 in use, 120 at most: lowering to 105 waives 15 seats, 10 above paid.
    _, sub = account(p.owner, seats=110, in_use=100, max_used=120)
    request = reset(sub, p.owner, today, new_max_seats=105)
    client.force_login(p.ops)

    page = text(client.get(change_url(request)))

    assert context_rows(page) == {
        "Seats in use today": "100",
        "Max seats used this term": "120",
        "Paid seats": "110",
        "Over the paid seats": "10",
        "Asks to lower max seats used to": "105",
        "Seats waived": "15",
        "Money at stake": "USD 500.00",  # 10 x 25.00 x 2 quarters left at Q2
    }
    assert "105 max seats used (asked for" in page  # "Reset to" is no longer "-"
    assert "<svg" in section(page, "usage-chart")


def test_a_pause_shows_until_when_and_the_deferred_charge(client, p, today):
    _, sub = account(p.owner, seats=100, in_use=110, max_used=110)
    request = pause(sub, p.owner, today)
    client.force_login(p.ops)

    rows = context_rows(text(client.get(change_url(request))))

    assert rows["QSR paused until"] == str(request.pause_until)
    assert rows["Overage deferred"] == "10 seats"
    assert rows["Money at stake"] == "USD 500.00"
    assert rows["Paid seats"] == "100"


def test_a_refund_shows_the_reconciliation_and_the_paid_seats_after(client, p, today):
    _, sub = account(p.owner, seats=110, in_use=100, max_used=110)
    request = refund(processed_q1(sub), p.owner, today, seats=4)
    client.force_login(p.ops)

    rows = context_rows(text(client.get(change_url(request))))

    assert rows["Reconciliation"].endswith(": USD 750.00")
    assert rows["Its overage seats"] == "10 (0 refunded)"
    assert rows["Seats refunded"] == "4"
    assert rows["Paid seats after"] == "106"
    assert rows["Money at stake"] == "USD 300.00"  # 4 x 75.00


# --- Only the fields of the kind -----------------------------------------------------------


def test_each_kind_shows_only_its_own_fields(client, p, today):
    _, sub = account(p.owner, seats=100, in_use=110, max_used=110)
    _, other = account(p.owner, seats=110, in_use=100, max_used=110)
    requests = {
        "pause": pause(sub, p.owner, today),
        "free": free_period(sub, p.owner, today, days=10),
        "refund": refund(processed_q1(other), p.owner, today, seats=4),
    }
    client.force_login(p.ops)

    labels = {k: field_labels(text(client.get(change_url(r)))) for k, r in requests.items()}

    assert "Pause until" in labels["pause"]
    assert (
        not {"Free from", "Free days", "Reset to", "Linked reset", "Executed at"} & labels["pause"]
    )
    assert {"Free from", "Free days"} <= labels["free"]
    assert not {"Pause until", "Reset to", "Reconciliation"} & labels["free"]
    assert {"Reconciliation", "Linked reset", "Executed at"} <= labels["refund"]
    assert not {"Pause until", "Free days"} & labels["refund"]


# --- The account's other requests ----------------------------------------------------------


def test_the_account_s_other_requests_are_listed_and_linked(client, p, today):
    _, sub = account(p.owner, seats=100, in_use=110, max_used=110)
    earlier = free_period(sub, p.owner, today, days=10)
    request = pause(sub, p.owner, today)
    _, stranger = account(p.owner, seats=100, in_use=110, max_used=110)
    elsewhere = pause(stranger, p.owner, today)
    client.force_login(p.ops)

    panel = section(text(client.get(change_url(request))), "earlier-requests")

    assert f'href="{change_url(earlier)}"' in panel
    assert f'href="{change_url(request)}"' not in panel
    assert f'href="{change_url(elsewhere)}"' not in panel  # another account's


def test_another_sales_manager_sees_neither_the_request_nor_the_account_s_requests(
    client, p, today, user_with_role
):
    _, sub = account(p.owner, seats=100, in_use=110, max_used=110)
    request = pause(sub, p.owner, today)
    other = user_with_role("sales", username="other.sales")
    client.force_login(other)

    response = client.get(change_url(request))

    assert response.status_code in (302, 404)
    assert change_url(request) not in text(client.get(QUEUE))


# --- After a decision: the next request of the queue ---------------------------------------


def decide(client, request, name: str, *, queue: str | None = "awaiting_me", reason="Fair."):
    url = do_url(request, name) + (f"?queue={queue}" if queue else "")
    return client.post(url, {"reason": reason, "confirmed": "yes"})


@pytest.fixture
def two_waiting(p, today):
    """Two pauses waiting for sales ops; the queue lists the newest first."""
    first = pause(account(p.owner, seats=100, in_use=110, max_used=110)[1], p.owner, today)
    second = pause(account(p.owner, seats=100, in_use=110, max_used=110)[1], p.owner, today)
    return second, first


def test_approving_lands_on_the_next_request_of_the_queue_then_on_the_queue(client, p, two_waiting):
    newest, oldest = two_waiting
    client.force_login(p.ops)

    response = decide(client, newest, "approve")

    assert response.status_code == 302
    assert response.url == change_url(oldest) + "?_changelist_filters=" + quote("queue=awaiting_me")
    said = [str(m) for m in get_messages(response.wsgi_request)]
    # A pause applies on its last approval.
    assert said == [
        f"QSR pause #{newest.pk} for {newest.subscription.customer}: Approved. The request is "
        f"executed. Next in “Waiting for my approval”: #{oldest.pk}."
    ]
    assert ApprovalRequest.objects.get(pk=newest.pk).status == Status.EXECUTED

    # The next page's buttons carry the queue on.
    page = text(client.get(response.url))
    assert f'href="{do_url(oldest, "reject")}?queue=awaiting_me"' in page

    response = decide(client, oldest, "reject", reason="Not now.")

    assert response.url == f"{QUEUE}?queue=awaiting_me"
    said = [str(m) for m in get_messages(response.wsgi_request)][-1]
    assert said.endswith("Rejected. Nothing else in “Waiting for my approval”.")
    assert ApprovalRequest.objects.get(pk=oldest.pk).status == Status.REJECTED


def test_without_a_queue_the_approval_queue_is_where_a_decision_leads(client, p, two_waiting):
    newest, oldest = two_waiting
    client.force_login(p.ops)

    response = decide(client, newest, "approve", queue=None)

    assert response.url.startswith(change_url(oldest))


def test_the_queue_comes_from_the_list_the_request_was_opened_from(client, p, two_waiting):
    newest, _ = two_waiting
    client.force_login(p.ops)

    page = text(client.get(change_url(newest) + "?_changelist_filters=queue%3Dawaiting_me"))

    assert f'href="{do_url(newest, "approve")}?queue=awaiting_me"' in page


def test_an_unknown_queue_falls_back_to_the_approval_queue(client, p, two_waiting):
    newest, oldest = two_waiting
    client.force_login(p.ops)

    response = decide(client, newest, "approve", queue="nonsense")

    assert response.url.startswith(change_url(oldest))
