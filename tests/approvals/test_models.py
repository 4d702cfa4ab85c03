"""Invariants of approval requests and decisions (DOMAIN.md "Who uses the portal": nobody
fills two approval slots of one request; whoever executes did not request).

Each rule is checked twice where the database can hold it: `full_clean()` (the field at
fault and why) and a write that skips validation (the database refuses, nothing stored).
"""

from decimal import Decimal

import pytest
from django.core.exceptions import NON_FIELD_ERRORS
from django.utils import timezone
from simple_history.utils import update_change_reason

from approvals.models import ApprovalDecision, ApprovalRequest
from tests.assertions import assert_db_rejects, assert_invalid
from tests.factories import (
    ApprovalDecisionFactory,
    ApprovalRequestFactory,
    ReconciliationFactory,
    SubscriptionFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


# --- Valid records and their history ----------------------------------------------------


@pytest.mark.parametrize("factory", [ApprovalRequestFactory, ApprovalDecisionFactory])
def test_valid_record_passes_validation_and_writes_a_history_row(factory):
    obj = factory()

    obj.full_clean()
    assert obj.history.count() == 1
    assert obj.history.get().history_type == "+"


def test_approving_a_request_records_who_and_why_in_its_history():
    approver = UserFactory()
    request = ApprovalRequestFactory()

    request.status = ApprovalRequest.Status.APPROVED
    request.decided_at = timezone.now()
    request._history_user = approver
    request._change_reason = "Approved by sales_ops (TICKET-2)"
    request.save()

    assert request.history.count() == 2
    latest = request.history.first()
    assert latest.status == ApprovalRequest.Status.APPROVED
    assert latest.history_user == approver
    assert latest.history_change_reason == "Approved by sales_ops (TICKET-2)"
    assert request.history.last().status == ApprovalRequest.Status.PENDING


def test_update_change_reason_annotates_the_decisions_history_row():
    decision = ApprovalDecisionFactory(decision=ApprovalDecision.Decision.REJECT)

    update_change_reason(decision, "Waiver too large for this account")

    assert decision.history.get().history_change_reason == "Waiver too large for this account"


# --- One decision per slot, one slot per person -------------------------------------------


def test_same_approver_deciding_twice_on_one_request_is_rejected():
    """Request and approver together are at fault: the error is the form's."""
    first = ApprovalDecisionFactory(slot="sales_ops")

    second = ApprovalDecisionFactory.build(
        request=first.request, approver=first.approver, slot="executive"
    )
    assert_invalid(second, NON_FIELD_ERRORS, "You have already decided on this request.")
    assert_db_rejects(
        ApprovalDecision,
        lambda: ApprovalDecisionFactory(
            request=first.request, approver=first.approver, slot="executive"
        ),
        "approval_one_slot_per_person",
    )


def test_two_decisions_in_the_same_slot_are_rejected():
    """Request and slot together are at fault: the error is the form's."""
    first = ApprovalDecisionFactory(slot="sales_ops")

    second = ApprovalDecisionFactory.build(
        request=first.request, approver=UserFactory(), slot="sales_ops"
    )
    assert_invalid(second, NON_FIELD_ERRORS, "This approval slot is filled already.")
    assert_db_rejects(
        ApprovalDecision,
        lambda: ApprovalDecisionFactory(request=first.request, slot="sales_ops"),
        "approval_one_decision_per_slot",
    )


def test_racing_decisions_for_one_slot_store_nothing():
    request = ApprovalRequestFactory()

    assert_db_rejects(
        ApprovalDecision,
        lambda: ApprovalDecision.objects.bulk_create(
            [
                ApprovalDecision(
                    request=request,
                    requester=request.requester,
                    slot="sales_ops",
                    approver=UserFactory(),
                    decision="approve",
                ),
                ApprovalDecision(
                    request=request,
                    requester=request.requester,
                    slot="sales_ops",
                    approver=UserFactory(),
                    decision="reject",
                ),
            ]
        ),
        "approval_one_decision_per_slot",
    )


def test_different_people_fill_different_slots_and_may_decide_on_other_requests():
    first = ApprovalDecisionFactory(slot="sales_ops")

    ApprovalDecisionFactory.build(
        request=first.request, approver=UserFactory(), slot="executive"
    ).full_clean()
    ApprovalDecisionFactory.build(
        request=ApprovalRequestFactory(), approver=first.approver, slot="sales_ops"
    ).full_clean()


# --- Execution ------------------------------------------------------------------------------


def test_requester_executing_their_own_request_fails_validation_on_executed_by():
    request = ApprovalRequestFactory(status=ApprovalRequest.Status.APPROVED)

    request.executed_by = request.requester
    assert_invalid(request, "executed_by", "Whoever executes a request did not request it.")


def test_requester_executing_their_own_request_is_rejected_by_the_database():
    request = ApprovalRequestFactory(status=ApprovalRequest.Status.APPROVED)

    assert_db_rejects(
        ApprovalRequest,
        lambda: ApprovalRequest.objects.filter(pk=request.pk).update(
            status="executed", executed_at=timezone.now(), executed_by=request.requester
        ),
        "approval_executor_is_not_requester",
    )


def test_someone_else_may_execute_an_approved_request():
    request = ApprovalRequestFactory(status=ApprovalRequest.Status.APPROVED)
    executor = UserFactory()

    request.status = ApprovalRequest.Status.EXECUTED
    request.executed_at = timezone.now()
    request.executed_by = executor
    request.full_clean()
    request.save()

    assert ApprovalRequest.objects.get(pk=request.pk).executed_by == executor


def test_executed_request_without_its_executor_is_rejected_by_the_database():
    request = ApprovalRequestFactory(status=ApprovalRequest.Status.APPROVED)

    assert_db_rejects(
        ApprovalRequest,
        lambda: ApprovalRequest.objects.filter(pk=request.pk).update(
            status="executed", executed_at=timezone.now()
        ),
        "approval_executed_says_by_whom",
    )


def test_executed_request_without_its_executor_fails_validation_on_executed_by():
    request = ApprovalRequestFactory(status=ApprovalRequest.Status.APPROVED)

    request.status = ApprovalRequest.Status.EXECUTED
    request.executed_at = timezone.now()
    assert_invalid(request, "executed_by", "who executed it")


# --- What a request of each kind must name ---------------------------------------------------


def test_refund_request_without_its_reconciliation_is_rejected_by_the_database():
    assert_db_rejects(
        ApprovalRequest,
        lambda: ApprovalRequestFactory(
            kind=ApprovalRequest.Kind.QSR_REFUND,
            linked_reset=ApprovalRequestFactory(kind=ApprovalRequest.Kind.MAX_SEATS_RESET),
        ),
        "approval_refund_names_reconciliation",
    )


def test_refund_request_without_its_reconciliation_fails_validation_on_reconciliation():
    sub = SubscriptionFactory()
    request = ApprovalRequestFactory.build(
        kind=ApprovalRequest.Kind.QSR_REFUND,
        requester=UserFactory(),
        subscription=sub,
        linked_reset=ApprovalRequestFactory(
            kind=ApprovalRequest.Kind.MAX_SEATS_RESET, subscription=sub
        ),
    )

    assert_invalid(request, "reconciliation", "A refund request names the reconciliation")


def test_refund_request_naming_its_reconciliation_is_valid():
    reconciliation = ReconciliationFactory(status="processed", overage_seats=10)

    ApprovalRequestFactory.build(
        kind=ApprovalRequest.Kind.QSR_REFUND,
        requester=UserFactory(),
        subscription=reconciliation.subscription,
        reconciliation=reconciliation,
        linked_reset=ApprovalRequestFactory(
            kind=ApprovalRequest.Kind.MAX_SEATS_RESET, subscription=reconciliation.subscription
        ),
    ).full_clean()


def test_refund_request_without_a_linked_reset_is_refused():
    reconciliation = ReconciliationFactory(status="processed", overage_seats=10)
    request = ApprovalRequestFactory.build(
        kind=ApprovalRequest.Kind.QSR_REFUND,
        requester=UserFactory(),
        subscription=reconciliation.subscription,
        reconciliation=reconciliation,
    )

    assert_invalid(request, "linked_reset", "linked to a max seats reset")
    assert_db_rejects(
        ApprovalRequest,
        lambda: ApprovalRequestFactory(
            kind=ApprovalRequest.Kind.QSR_REFUND,
            subscription=reconciliation.subscription,
            reconciliation=reconciliation,
        ),
        "approval_refund_links_reset",
    )


@pytest.mark.parametrize(
    "free_days",
    [
        pytest.param(0, id="zero-days"),
        pytest.param(
            None,
            id="no-days",
        ),
    ],
)
def test_free_period_request_without_days_is_rejected_by_the_database(free_days):
    assert_db_rejects(
        ApprovalRequest,
        lambda: ApprovalRequestFactory(kind=ApprovalRequest.Kind.FREE_PERIOD, free_days=free_days),
        "approval_free_period_has_days",
    )


@pytest.mark.parametrize(
    "free_days",
    [
        pytest.param(0, id="zero-days"),
        pytest.param(
            None,
            id="no-days",
        ),
    ],
)
def test_free_period_request_without_days_fails_validation_on_free_days(free_days):
    request = ApprovalRequestFactory.build(
        kind=ApprovalRequest.Kind.FREE_PERIOD,
        free_days=free_days,
        requester=UserFactory(),
        subscription=SubscriptionFactory(),
    )

    assert_invalid(request, "free_days", "A free period needs a number of days.")


def test_qsr_pause_request_may_leave_the_end_date_to_the_term_end():
    request = ApprovalRequestFactory(pause_until=None)

    request.full_clean()


def test_one_max_seats_reset_backs_one_refund_only():
    reset = ApprovalRequestFactory(kind=ApprovalRequest.Kind.MAX_SEATS_RESET)
    reconciliation = ReconciliationFactory(subscription=reset.subscription)
    ApprovalRequestFactory(
        kind=ApprovalRequest.Kind.QSR_REFUND,
        status=ApprovalRequest.Status.REJECTED,
        subscription=reset.subscription,
        reconciliation=reconciliation,
        linked_reset=reset,
    )

    second_refund = ApprovalRequestFactory.build(
        kind=ApprovalRequest.Kind.QSR_REFUND,
        requester=UserFactory(),
        subscription=reset.subscription,
        reconciliation=reconciliation,
        linked_reset=reset,
    )
    assert_invalid(second_refund, "linked_reset", "already exists")
    assert_db_rejects(
        ApprovalRequest,
        lambda: ApprovalRequestFactory(
            kind=ApprovalRequest.Kind.QSR_REFUND,
            subscription=reset.subscription,
            reconciliation=reconciliation,
            linked_reset=reset,
        ),
        "linked_reset_id_key",
    )


# --- Amounts and choices ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "constraint"),
    [
        ("amount_at_stake", Decimal("-0.01"), "approval_amount_non_negative"),
        ("seats_at_stake", -1, "seats_at_stake_check"),
    ],
)
def test_negative_stake_is_rejected(field, value, constraint):
    request = ApprovalRequestFactory()

    setattr(request, field, value)
    assert_invalid(request, field, "greater than or equal to 0")
    assert_db_rejects(
        ApprovalRequest,
        lambda: ApprovalRequest.objects.filter(pk=request.pk).update(**{field: value}),
        constraint,
    )


@pytest.mark.parametrize(
    ("factory", "field", "constraint"),
    [
        pytest.param(ApprovalRequestFactory, "kind", "approval_kind", id="request-kind"),
        pytest.param(ApprovalRequestFactory, "status", "approval_status", id="request-status"),
        pytest.param(ApprovalDecisionFactory, "decision", "approval_decision_valid", id="decision"),
        pytest.param(
            ApprovalRequestFactory,
            "currency",
            "approval_currency",
            id="request-currency",
        ),
    ],
)
def test_invalid_choice_or_unknown_currency_is_rejected(factory, field, constraint):
    obj = factory()
    model = type(obj)
    bad = "XYZ" if field == "currency" else "bogus"

    setattr(obj, field, bad)
    assert_invalid(obj, field, f"Value '{bad}' is not a valid choice.")
    assert_db_rejects(
        model, lambda: model.objects.filter(pk=obj.pk).update(**{field: bad}), constraint
    )
