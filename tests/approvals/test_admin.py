"""The approvals admin: the queue stays fast, shows what is at stake with its currency,
and never lets anyone edit what the services decide."""

from decimal import Decimal

import pytest
from django.contrib import admin
from django.urls import reverse

from approvals.models import ApprovalDecision, ApprovalRequest
from tests.assertions import admin_url as url
from tests.assertions import assert_changelist_queries_constant, shown
from tests.factories import ApprovalDecisionFactory, ApprovalRequestFactory, UserFactory

pytestmark = pytest.mark.django_db


def waiver(**kwargs) -> ApprovalRequest:
    return ApprovalRequestFactory(
        **{
            "kind": ApprovalRequest.Kind.MAX_SEATS_RESET,
            "seats_at_stake": 50,
            "amount_at_stake": Decimal("1250.00"),
            "required_slots": ["sales_ops", "executive"],
            **kwargs,
        }
    )


MAKERS = {
    ApprovalRequest: lambda: ApprovalDecisionFactory(request=waiver()).request,
    ApprovalDecision: lambda: ApprovalDecisionFactory(request=waiver()),
}

# Queries per changelist page as a superuser, whatever the number of rows: session,
# user, count, full count, rows, two for the date hierarchy (requests: + their decisions;
# decisions: + slot filter).
PINNED_QUERIES = {ApprovalRequest: 8, ApprovalDecision: 8}


@pytest.mark.parametrize("model", list(MAKERS), ids=lambda m: m.__name__)
def test_changelist_queries_do_not_grow_with_rows(
    admin_client, django_assert_max_num_queries, model
):
    assert_changelist_queries_constant(
        admin_client, model, MAKERS[model], PINNED_QUERIES[model], django_assert_max_num_queries
    )


def test_request_list_and_page_show_what_is_at_stake(admin_client):
    request = waiver()
    ApprovalDecisionFactory(request=request, approver__username="dana", reason="Fair.")

    listing = admin_client.get(url(ApprovalRequest))
    page = admin_client.get(url(ApprovalRequest, "change", request.pk))

    assert listing.status_code == page.status_code == 200
    for response in (listing, page):
        assert "USD 1,250.00" in response.text
        assert "Sales ops: approved; Executive: open" in response.text
    assert "dana" in page.text  # the decisions, inline
    assert "Fair." in page.text


def test_jpy_amount_at_stake_has_no_decimals(admin_client):
    waiver(amount_at_stake=Decimal("150000"), subscription__customer__currency="JPY")

    assert "JPY 150,000" in admin_client.get(url(ApprovalRequest)).text


def test_decision_page_opens(admin_client):
    decision = ApprovalDecisionFactory(approver__username="erin")

    response = admin_client.get(url(ApprovalDecision, "change", decision.pk))

    assert response.status_code == 200
    assert "erin" in response.text


@pytest.mark.parametrize(
    ("model", "term"),
    [(ApprovalRequest, "acme"), (ApprovalDecision, "acme")],
    ids=["request", "decision"],
)
def test_search_by_customer(admin_client, model, term):
    match = ApprovalDecisionFactory(request=waiver(subscription__customer__name="Acme Corp"))
    other = ApprovalDecisionFactory(request=waiver(subscription__customer__name="Globex"))
    if model is ApprovalRequest:
        match, other = match.request, other.request

    response = admin_client.get(url(model), {"q": term})

    assert match.pk in shown(response)
    assert other.pk not in shown(response)


def test_search_requests_by_requester(admin_client):
    match = waiver(requester=UserFactory(username="sam.sales"))
    other = waiver()

    response = admin_client.get(url(ApprovalRequest), {"q": "sam.sales"})

    assert shown(response) == {match.pk}
    assert other.pk not in shown(response)


@pytest.mark.parametrize(
    ("model", "match", "other", "query"),
    [
        (
            ApprovalRequest,
            lambda: waiver(status="approved"),
            waiver,
            {"status__exact": "approved"},
        ),
        (
            ApprovalRequest,
            lambda: ApprovalRequestFactory(kind="qsr_pause"),
            waiver,
            {"kind__exact": "qsr_pause"},
        ),
        (
            ApprovalDecision,
            lambda: ApprovalDecisionFactory(decision="reject"),
            ApprovalDecisionFactory,
            {"decision__exact": "reject"},
        ),
        (
            ApprovalDecision,
            lambda: ApprovalDecisionFactory(slot="finance"),
            ApprovalDecisionFactory,
            {"slot": "finance"},
        ),
    ],
    ids=["request-status", "request-kind", "decision", "decision-slot"],
)
def test_filter_keeps_the_matching_row_only(admin_client, model, match, other, query):
    match, other = match(), other()

    response = admin_client.get(url(model), query)

    assert match.pk in shown(response)
    assert other.pk not in shown(response)


@pytest.mark.parametrize("model", list(MAKERS), ids=lambda m: m.__name__)
def test_bulk_delete_is_not_offered(admin_client, rf, admin_user, model):
    MAKERS[model]()
    request = rf.get(url(model))
    request.user = admin_user

    assert "delete_selected" not in admin.site._registry[model].get_actions(request)
    assert 'value="delete_selected"' not in admin_client.get(url(model)).text


def test_a_request_cannot_be_edited_even_by_a_superuser(admin_client):
    """What was asked for is what gets approved: decisions go through the actions."""
    request = waiver()

    response = admin_client.post(
        url(ApprovalRequest, "change", request.pk),
        {
            "justification": "Customer disputes the Q2 count.",
            "status": "approved",
            "seats_at_stake": "1",
            "decisions-TOTAL_FORMS": "0",
            "decisions-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 403
    request.refresh_from_db()
    assert (request.status, request.seats_at_stake, request.amount_at_stake) == (
        "pending",
        50,
        Decimal("1250.00"),
    )
    assert request.justification != "Customer disputes the Q2 count."


def test_requests_are_filed_by_the_services_not_the_admin(admin_client):
    assert admin_client.get(url(ApprovalRequest, "add")).status_code == 403


def test_decisions_are_view_only_even_for_superusers(admin_client):
    decision = ApprovalDecisionFactory()

    assert admin_client.get(url(ApprovalDecision, "add")).status_code == 403
    assert admin_client.get(url(ApprovalDecision, "delete", decision.pk)).status_code == 403
    assert admin_client.post(url(ApprovalDecision, "change", decision.pk), {}).status_code == 403
    assert admin_client.get(url(ApprovalDecision, "change", decision.pk)).status_code == 200


def test_history_lists_each_decision_and_who_made_it(client, user_with_role):
    request = ApprovalRequestFactory(required_slots=["sales_ops"])
    approver = user_with_role("sales_ops", username="olga")
    client.force_login(approver)
    approve = reverse("admin:approvals_approvalrequest_do", args=[request.pk, "approve"])

    client.post(approve, {"reason": "Fine.", "confirmed": "yes"})
    history = client.get(url(ApprovalRequest, "history", request.pk))

    assert history.status_code == 200
    assert "olga" in history.text
    assert "approved" in history.text


@pytest.mark.parametrize("model", list(MAKERS), ids=lambda m: m.__name__)
def test_finance_can_look_but_not_add(client, user_with_role, model):
    obj = MAKERS[model]()
    client.force_login(user_with_role("finance"))

    assert client.get(url(model)).status_code == 200
    assert client.get(url(model, "change", obj.pk)).status_code == 200
    assert client.get(url(model, "history", obj.pk)).status_code == 200
    assert client.get(url(model, "add")).status_code == 403
