"""The action buttons of the admin through HTTP (portal/admin_actions.py), as each role
uses them (DOMAIN.md "Who uses the portal"): a button shows exactly when the role may
use it; a forged POST of a role that may not is refused with nothing changed; bad input
comes back as an error on the form with nothing saved; a stale or refused action says
why."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from portal.policy import SYSTEM
from subscriptions.services.customers import customer_assign_owner
from tests.admin_buttons import (
    ALLOWED,
    BUG,
    CASE,
    CASES,
    DENIED,
    EVERY_PAIR,
    TICKET,
    QsrState,
    change_url,
    do_url,
    fresh,
    live_subscription,
    pair_id,
    processed_reconciliation,
    snapshot,
    text,
)
from tests.factories import ApprovalRequestFactory

pytestmark = pytest.mark.django_db


# --- Who sees which button ---------------------------------------------------------------


@pytest.mark.parametrize(("case", "role"), EVERY_PAIR, ids=pair_id)
def test_button_is_on_the_change_page_exactly_when_the_role_may_use_it(client, portal, case, role):
    obj = case.target(portal)
    client.force_login(portal.users[role])

    page = client.get(change_url(obj))

    if role == "sales_other":
        # Not their account: the record is not found at all, button or no button.
        assert page.status_code != 200
        assert do_url(obj, case.name) not in page.text
        return
    assert page.status_code == 200
    assert (f'href="{do_url(obj, case.name)}"' in page.text) == (role in case.allowed)


@pytest.mark.parametrize(("case", "role"), DENIED, ids=pair_id)
def test_a_forged_post_of_a_role_that_may_not_is_refused_and_changes_nothing(
    client, portal, case, role
):
    obj = case.target(portal)
    client.force_login(portal.users[role])
    url = do_url(obj, case.name)
    refused = 404 if role == "sales_other" else 403  # another manager's account: not found
    before = snapshot()

    assert client.get(url).status_code == refused
    assert client.post(url, case.data(portal, obj)).status_code == refused
    response = client.post(url, {**case.data(portal, obj), "confirmed": "yes"})

    assert response.status_code == refused
    assert snapshot() == before


@pytest.mark.parametrize(("case", "role"), ALLOWED, ids=pair_id)
def test_a_role_that_may_use_the_button_gets_it_done(client, portal, case, role):
    obj = case.target(portal)
    user = portal.users[role]
    client.force_login(user)

    response = client.post(do_url(obj, case.name), {**case.data(portal, obj), "confirmed": "yes"})

    assert response.status_code == 302
    if case.name in ("approve", "reject"):
        # A decision leads on to the approver's queue (tests/approvals/test_request_page.py).
        assert response.url.startswith(reverse("admin:approvals_approvalrequest_changelist"))
    else:
        assert response.url == change_url(obj)
    assert case.done(portal, obj, user)


def test_the_matrix_covers_every_action_button(portal):
    from django.contrib import admin

    buttons = {
        (model._meta.label, action.name)
        for model, model_admin in admin.site._registry.items()
        for action in getattr(model_admin, "object_actions", ())
    }
    covered = {(type(case.target(portal))._meta.label, case.name) for case in CASES}

    assert covered == buttons


# --- Bad input comes back on the form; nothing is saved ------------------------------------

BAD_INPUT = [
    ("disable-qsr-for-bug", "support", {"ticket_url": "not a link"}, "Enter a valid URL."),
    (
        "disable-qsr-for-bug",
        "support",
        {"ticket_url": "ftp://tickets.example.com/1"},
        "Enter a valid URL.",
    ),
    ("disable-qsr-for-bug", "support", {"bug_url": ""}, "This field is required."),
    ("disable-qsr-for-bug", "support", {"bug_url": "bug 42"}, "Enter a valid URL."),
    ("request-pause", "sales_owner", {"ticket_url": "TICKET-1001"}, "Enter a valid URL."),
    ("request-reset", "support", {"ticket_url": ""}, "This field is required."),
    ("record-dispute", "support", {"ticket_url": "see the ticket"}, "Enter a valid URL."),
    ("request-refund", "sales_owner", {"ticket_url": "not a link"}, "Enter a valid URL."),
    (
        "request-reset",
        "sales_owner",
        {"new_max_seats": 99},
        "The new max seats used must lie between the seats in use (100) and the current max "
        "seats used (120).",
    ),
    (
        "request-reset",
        "support",
        {"new_max_seats": 121},
        "The new max seats used must lie between the seats in use (100) and the current max "
        "seats used (120).",
    ),
    (
        "request-reset",
        "support",
        {"new_max_seats": 120},
        "Max seats used is 120 already; there is nothing to waive.",
    ),
    (
        "execute-reset",
        "support",
        {"new_max_seats": 99},
        "Enter a value between the seats in use (100) and the max seats used (120).",
    ),
    (
        "execute-reset",
        "support",
        {"new_max_seats": 111},
        "The approval waives 8 seats: the value cannot go below 112.",
    ),
    (
        "request-refund",
        "sales_owner",
        {"seats": 11},
        "Only 10 of the reconciliation's 10 overage seats are left to refund; 11 is more than "
        "was reconciled.",
    ),
    (
        "request-refund",
        "support",
        {"seats": 0},
        "Ensure this value is greater than or equal to 1.",
    ),
    (
        "request-free-period",
        "sales_owner",
        {"start": "2020-01-01"},
        "The free period cannot start before today",
    ),
]


@pytest.mark.parametrize("confirmed", [False, True], ids=["review", "confirmed"])
@pytest.mark.parametrize(
    ("case_id", "role", "bad", "message"),
    BAD_INPUT,
    ids=[f"{c}-{'-'.join(map(str, b.values())) or 'empty'}" for c, _, b, _ in BAD_INPUT],
)
def test_bad_input_is_an_error_on_the_form_and_saves_nothing(
    client, portal, case_id, role, bad, message, confirmed
):
    case = CASE[case_id]
    obj = case.target(portal)
    client.force_login(portal.users[role])
    data = {**case.data(portal, obj), **bad}
    if confirmed:  # a forged or stale confirmation is checked all the same
        data["confirmed"] = "yes"
    before = snapshot()

    response = client.post(do_url(obj, case.name), data)

    assert response.status_code == 200
    assert message in text(response)
    assert "Please confirm" not in response.text
    assert 'class="errornote"' in response.text
    assert snapshot() == before


@pytest.mark.parametrize("confirmed", [False, True], ids=["review", "confirmed"])
def test_a_dispute_of_an_account_without_a_sales_manager_is_refused_at_review(
    client, portal, confirmed
):
    """Nobody to route it to: no confirmation page promises a routing; the user is sent
    back to the reconciliation with the reason."""
    recon = processed_reconciliation(portal)
    customer_assign_owner(customer=portal.customer, owner=None, actor=SYSTEM)
    client.force_login(portal.users["support"])
    data = CASE["record-dispute"].data(portal, recon)
    if confirmed:
        data["confirmed"] = "yes"
    before = snapshot()

    response = client.post(do_url(recon, "record-dispute"), data, follow=True)

    assert response.redirect_chain == [(change_url(recon), 302)]
    assert "Please confirm" not in response.text
    assert "Acme Corp has no active sales manager to route the dispute to" in text(response)
    assert snapshot() == before


# --- CSRF --------------------------------------------------------------------------------


def test_a_post_without_the_csrf_token_is_refused(portal):
    sub = live_subscription(portal)
    client = Client(enforce_csrf_checks=True)
    client.force_login(portal.users["support"])
    url = do_url(sub, "disable-qsr-for-bug")
    data = {"bug_url": BUG, "ticket_url": TICKET, "confirmed": "yes"}
    before = snapshot()

    response = client.post(url, data)

    assert response.status_code == 403
    assert "CSRF" in response.text
    assert snapshot() == before
    # The same POST with the token of the form page goes through: the 403 was the token.
    client.get(url)
    token = client.cookies["csrftoken"].value
    assert client.post(url, {**data, "csrfmiddlewaretoken": token}).status_code == 302
    assert fresh(sub).qsr_state == QsrState.DISABLED_FOR_BUG


def test_an_action_the_record_no_longer_allows_sends_back_to_its_page(client, portal):
    """A stale tab: QSR was disabled for a bug meanwhile."""
    sub = live_subscription(
        portal, qsr_state=QsrState.DISABLED_FOR_BUG, qsr_bug_url=BUG, qsr_ticket_url=TICKET
    )
    client.force_login(portal.users["support"])
    before = snapshot()

    response = client.post(
        do_url(sub, "disable-qsr-for-bug"),
        {"bug_url": "https://bugs.example.com/issues/43", "ticket_url": TICKET, "confirmed": "yes"},
        follow=True,
    )

    assert response.redirect_chain == [(change_url(sub), 302)]
    assert f"QSR is disabled for the bug {BUG} already." in text(response)
    assert snapshot() == before


def test_a_refusal_says_why(client, user_with_role):
    """A 403 carries the policy's reason, so the user knows what to ask for."""
    requester = user_with_role("sales", "sales_ops")
    request = ApprovalRequestFactory(requester=requester, required_slots=["sales_ops"])
    client.force_login(requester)

    response = client.get(
        reverse("admin:approvals_approvalrequest_do", args=[request.pk, "approve"])
    )

    assert response.status_code == 403
    assert "Nobody approves their own request." in response.text
