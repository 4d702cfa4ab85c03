"""Each kind of approval request as the people in it live it (approvals/services/requests.py
and execution.py; DOMAIN.md "Disabling, pausing and disputing QSR", "Max seats reset",
"QSR refund", "Suspensions": free period): filed, approved and carried out; bad input
when filing."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from approvals.models import ApprovalRequest
from approvals.services import (
    approval_approve,
    approval_execute_reset,
    approval_process_refund,
    approval_reject,
)
from subscriptions.models import (
    Invoice,
    InvoiceLine,
    Namespace,
    Reconciliation,
    Subscription,
    Suspension,
)
from tests.approvals.helpers import (
    TICKET,
    account,
    approve_both,
    flush_outbox,
    free_period,
    fresh,
    pause,
    refund,
    refused,
    reset,
    sent_to,
)
from tests.factories import ReconciliationFactory

pytestmark = pytest.mark.django_db

Status = ApprovalRequest.Status
Kind = ApprovalRequest.Kind


# --- QSR pause --------------------------------------------------------------------------


def test_a_pause_approved_by_sales_ops_is_applied_until_the_chosen_date(p, today, committed):
    _, sub = account(p.owner, seats=100)
    until = today + timedelta(days=45)

    with committed():
        request = pause(sub, p.owner, today, until=until)
    assert (request.status, request.required_slots) == (Status.PENDING, ["sales_ops"])
    assert request.pause_until == until
    assert request.amount_at_stake == Decimal("500.00")  # 10 seats x 25.00 x 2 (Q2)
    assert fresh(sub).qsr_state == Subscription.QsrState.ENABLED  # nothing until approved

    with committed():
        approval_approve(request=request, actor=p.ops)

    sub.refresh_from_db()
    assert (sub.qsr_state, sub.qsr_paused_until) == (Subscription.QsrState.PAUSED, until)
    assert sub.qsr_changed_by == p.ops
    assert sub.history.latest().history_change_reason == f"QSR paused until {until}"
    request.refresh_from_db()
    assert request.status == Status.EXECUTED
    assert request.executed_by == p.ops
    assert request.decided_at is not None and request.executed_at is not None
    assert len(sent_to(p.owner)) == 1  # the requester hears it was done


def test_a_pause_without_an_end_lasts_to_the_last_day_of_the_term(p, today):
    _, sub = account(p.owner)

    approval_approve(request=pause(sub, p.owner, today), actor=p.ops)

    sub.refresh_from_db()
    assert sub.qsr_state == Subscription.QsrState.PAUSED
    assert sub.qsr_paused_until == sub.term_end - timedelta(days=1)


# --- Max seats reset --------------------------------------------------------------------


def test_a_reset_of_11_seats_is_approved_only_once_sales_ops_and_an_executive_approve(
    p, eleven, committed
):
    assert eleven.required_slots == ["sales_ops", "executive"]
    assert (eleven.seats_at_stake, eleven.amount_at_stake) == (11, Decimal("550.00"))

    approval_approve(request=eleven, actor=p.ops)
    assert fresh(eleven).status == Status.PENDING
    with refused(None, "Only an approved request can be executed"):
        approval_execute_reset(request=eleven, new_max_seats=100, actor=p.support)

    approval_approve(request=eleven, actor=p.executive)
    request = fresh(eleven)
    assert request.status == Status.APPROVED and request.decided_at is not None
    assert {(d.slot, d.approver) for d in request.decisions.all()} == {
        ("sales_ops", p.ops),
        ("executive", p.executive),
    }
    # Approved is not done: support executes it.
    assert Namespace.objects.get(pk=eleven.subscription.namespace_id).max_seats_used == 111


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (94, "between the seats in use (95) and the max seats used (111)"),
        (112, "between the seats in use (95) and the max seats used (111)"),
        (99, "The approval waives 11 seats: the value cannot go below 100"),
    ],
    ids=["below-seats-in-use", "above-max-seats-used", "beyond-the-approved-seats"],
)
def test_support_enters_a_value_within_what_was_approved(p, eleven, value, fragment):
    approval_approve(request=eleven, actor=p.ops)
    approval_approve(request=eleven, actor=p.executive)

    with refused("new_max_seats", fragment):
        approval_execute_reset(request=eleven, new_max_seats=value, actor=p.support)


def test_support_executes_an_approved_reset_with_who_and_why_on_the_history(p, eleven, committed):
    approval_approve(request=eleven, actor=p.ops)
    approval_approve(request=eleven, actor=p.executive)
    flush_outbox()

    with committed():
        approval_execute_reset(request=eleven, new_max_seats=100, actor=p.support)

    ns = Namespace.objects.get(pk=eleven.subscription.namespace_id)
    assert ns.max_seats_used == 100
    assert ns.usage_counted_from == timezone.localdate()
    row = ns.history.latest()
    assert row.history_user == p.support
    assert row.history_change_reason == f"max seats reset 111 -> 100 (request #{eleven.pk})"
    request = fresh(eleven)
    assert (request.status, request.reset_to, request.executed_by) == (
        Status.EXECUTED,
        100,
        p.support,
    )
    assert sent_to(p.owner) == [f"Your request was executed: {request}"]


def test_a_reset_may_stop_above_the_seats_in_use(p, eleven):
    approval_approve(request=eleven, actor=p.ops)
    approval_approve(request=eleven, actor=p.executive)

    approval_execute_reset(request=eleven, new_max_seats=105, actor=p.support)

    assert Namespace.objects.get(pk=eleven.subscription.namespace_id).max_seats_used == 105


@pytest.mark.parametrize(
    ("new", "fragment"),
    [
        (94, "between the seats in use (95) and the current max seats used (111)"),
        (112, "between the seats in use (95) and the current max seats used (111)"),
        (111, "Max seats used is 111 already; there is nothing to waive."),
    ],
    ids=["below-in-use", "above-max", "no-change"],
)
def test_a_reset_request_names_a_value_that_lowers_max_seats(p, today, new, fragment):
    _, sub = account(p.owner, seats=100, in_use=95, max_used=111)

    with refused("new_max_seats", fragment):
        reset(sub, p.owner, today, new_max_seats=new)


# --- QSR refund (DOMAIN worked example: Q1 charged 10 seats x 75.00 = 750.00) -------------


def test_a_refund_request_files_a_linked_reset_for_the_same_seats(p, today, recon):
    request = refund(recon, p.owner, today, seats=4)

    assert (request.kind, request.status, request.reconciliation) == (
        Kind.QSR_REFUND,
        Status.PENDING,
        recon,
    )
    assert (request.seats_at_stake, request.amount_at_stake) == (4, Decimal("300.00"))
    assert request.required_slots == ["sales_ops"]
    linked = request.linked_reset
    assert (linked.kind, linked.status, linked.seats_at_stake) == (
        Kind.MAX_SEATS_RESET,
        Status.PENDING,
        4,
    )
    assert linked.subscription == recon.subscription
    assert linked.requester == p.owner
    assert request.refund_complete is False


def test_a_refund_links_the_open_reset_of_the_namespace(p, today, recon):
    open_reset = reset(recon.subscription, p.owner, today, new_max_seats=106)

    request = refund(recon, p.owner, today, seats=4)

    assert request.linked_reset == open_reset
    assert ApprovalRequest.objects.filter(kind=Kind.MAX_SEATS_RESET).count() == 1


def test_a_refund_is_not_processed_before_its_reset_is_approved(p, today, recon):
    request = refund(recon, p.owner, today, seats=4)
    approval_approve(request=request, actor=p.ops)

    with refused(None, f"The linked max seats reset #{request.linked_reset_id} is pending"):
        approval_process_refund(request=request, actor=p.desk)


def test_deal_desk_processes_a_refund_into_a_credit_memo(p, today, recon, committed):
    request = approve_both(refund(recon, p.owner, today, seats=4), p)
    sub = recon.subscription
    flush_outbox()

    with committed():
        approval_process_refund(request=request, actor=p.desk)

    memo = Invoice.objects.with_totals().get(subscription=sub)
    assert memo.total == Decimal("-300.00")
    line = memo.lines.get()
    assert (line.kind, line.quantity, line.unit_price, line.amount) == (
        InvoiceLine.Kind.REFUND_CREDIT,
        4,
        Decimal("75.00"),
        Decimal("-300.00"),
    )
    assert line.reconciliation == recon
    assert fresh(sub).seats == 106
    recon.refresh_from_db()
    assert (recon.refunded_seats, recon.status) == (4, Reconciliation.Status.PROCESSED)
    request = fresh(request)
    assert (request.status, request.executed_by) == (Status.EXECUTED, p.desk)
    assert sent_to(p.owner) == [f"Your request was executed: {request}"]
    # Processed, but not complete until support executes the reset too.
    assert request.refund_complete is False
    approval_execute_reset(request=request.linked_reset, new_max_seats=106, actor=p.support)
    assert fresh(request).refund_complete is True
    assert Namespace.objects.get(pk=sub.namespace_id).max_seats_used == 106


def test_refunding_the_remaining_seats_marks_the_reconciliation_refunded(p, today, recon):
    first = approve_both(refund(recon, p.owner, today, seats=4), p)
    approval_process_refund(request=first, actor=p.desk)
    approval_execute_reset(request=first.linked_reset, new_max_seats=106, actor=p.support)

    rest = approve_both(refund(recon, p.owner, today, seats=6), p)
    assert rest.amount_at_stake == Decimal("450.00")
    approval_process_refund(request=rest, actor=p.desk)

    recon.refresh_from_db()
    assert (recon.refunded_seats, recon.status) == (10, Reconciliation.Status.REFUNDED)
    assert fresh(recon.subscription).seats == 100
    credits = InvoiceLine.objects.filter(kind=InvoiceLine.Kind.REFUND_CREDIT)
    assert sorted(credits.values_list("amount", flat=True)) == [
        Decimal("-450.00"),
        Decimal("-300.00"),
    ]
    # All of it refunded gives back exactly what was charged.
    assert -sum(credits.values_list("amount", flat=True)) == recon.amount
    # Nothing left to refund.
    with refused(None, "Only a processed reconciliation can be refunded"):
        refund(recon, p.owner, today, seats=1)


@pytest.mark.parametrize(("already", "seats"), [(0, 11), (4, 7)])
def test_a_refund_above_the_reconciled_overage_is_refused(p, today, recon, already, seats):
    Reconciliation.objects.filter(pk=recon.pk).update(refunded_seats=already)

    with refused("seats", f"Only {10 - already} of the reconciliation's 10 overage seats"):
        refund(recon, p.owner, today, seats=seats)


@pytest.mark.parametrize(("seats", "fragment"), [(0, "at least one seat"), (-1, "negative")])
def test_a_refund_is_of_at_least_one_seat(p, today, recon, seats, fragment):
    with refused("seats", fragment):
        refund(recon, p.owner, today, seats=seats)


def test_a_refund_of_an_unprocessed_reconciliation_is_refused(p, today):
    _, sub = account(p.owner)
    pending = ReconciliationFactory(subscription=sub, status=Reconciliation.Status.PENDING)

    with refused(None, "Only a processed reconciliation can be refunded"):
        refund(pending, p.owner, today, seats=1)


def test_processing_a_refund_twice_writes_one_credit_memo(p, today, recon):
    request = approve_both(refund(recon, p.owner, today, seats=4), p)

    approval_process_refund(request=request, actor=p.desk)
    approval_process_refund(request=request, actor=p.desk)

    assert Invoice.objects.count() == 1
    assert fresh(recon.subscription).seats == 106
    assert fresh(recon).refunded_seats == 4


# --- Free period ------------------------------------------------------------------------


def test_a_free_period_of_31_days_is_scheduled_once_sales_ops_and_an_executive_approve(p, today):
    _, sub = account(p.owner)
    start = today + timedelta(days=7)
    request = free_period(sub, p.owner, today, start=start, days=31)
    assert request.required_slots == ["sales_ops", "executive"]

    approval_approve(request=request, actor=p.ops)
    assert not Suspension.objects.exists()
    approval_approve(request=request, actor=p.executive)

    suspension = Suspension.objects.get(subscription=sub)
    assert (suspension.mode, suspension.suspend_date, suspension.resume_date) == (
        Suspension.Mode.FREE_PERIOD,
        start,
        start + timedelta(days=31),
    )
    assert suspension.extend_term is True
    assert suspension.ticket_url == TICKET
    assert (fresh(request).status, fresh(request).executed_by) == (Status.EXECUTED, p.executive)


# --- Bad input ---------------------------------------------------------------------------

FILERS = {
    "pause": lambda sub, recon, p, today, **kw: pause(sub, p.owner, today, **kw),
    "reset": lambda sub, recon, p, today, **kw: reset(sub, p.owner, today, **kw),
    "refund": lambda sub, recon, p, today, **kw: refund(recon, p.owner, today, seats=4, **kw),
    "free period": lambda sub, recon, p, today, **kw: free_period(sub, p.owner, today, **kw),
}


@pytest.mark.parametrize("kind", list(FILERS))
@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"ticket_url": ""}, "ticket_url", "A link to the ticket is required."),
        ({"ticket_url": "TICKET-12"}, "ticket_url", "Enter a valid http(s) link to the ticket."),
        ({"ticket_url": "ftp://x.example.com/1"}, "ticket_url", "valid http(s) link"),
        ({"justification": " \n "}, "justification", "Say why"),
    ],
    ids=["no-ticket", "not-a-link", "not-http", "no-justification"],
)
def test_a_request_needs_a_ticket_link_and_a_justification(
    p, today, recon, kind, changes, field, fragment
):
    with refused(field, fragment):
        FILERS[kind](recon.subscription, recon, p, today, **changes)


@pytest.mark.parametrize("kind", list(FILERS))
@pytest.mark.parametrize("status", ["cancelled", "expired"])
def test_no_request_for_a_subscription_that_ended(p, today, recon, kind, status):
    Subscription.objects.filter(pk=recon.subscription_id).update(status=status)
    recon.subscription.refresh_from_db()

    with refused(None, f"The subscription is {status}"):
        FILERS[kind](recon.subscription, recon, p, today)


@pytest.mark.parametrize(
    ("start", "days", "field", "fragment"),
    [
        (lambda sub, today: sub.term_end, 10, "start", "starts inside the term"),
        (lambda sub, today: sub.term_end + timedelta(days=5), 10, "start", "inside the term"),
        (lambda sub, today: today - timedelta(days=1), 10, "start", "cannot start before today"),
        (lambda sub, today: today, 0, "days", "Give between 1 and 366 free days."),
        (lambda sub, today: today, 367, "days", "Give between 1 and 366 free days."),
    ],
    ids=["at-term-end", "after-term", "in-the-past", "no-days", "too-many-days"],
)
def test_a_free_period_lies_inside_the_term(p, today, start, days, field, fragment):
    _, sub = account(p.owner)

    with refused(field, fragment):
        free_period(sub, p.owner, today, start=start(sub, today), days=days)


@pytest.mark.parametrize(
    "until",
    [lambda sub, today: today - timedelta(days=1), lambda sub, today: sub.term_end],
    ids=["in-the-past", "after-the-term"],
)
def test_a_pause_ends_inside_the_term(p, today, until):
    _, sub = account(p.owner)

    with refused("until", "The pause must end between today"):
        pause(sub, p.owner, today, until=until(sub, today))


def test_no_pause_for_a_subscription_not_on_qsr(p, today):
    _, sub = account(p.owner)
    Subscription.objects.filter(pk=sub.pk).update(channel="reseller")
    sub.refresh_from_db()

    with refused(None, "This subscription is not on QSR"):
        pause(sub, p.owner, today)


# --- Repeats -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pause", "reset", "free period"])
def test_a_second_open_request_of_the_same_kind_is_refused(p, today, recon, kind):
    first = FILERS[kind](recon.subscription, recon, p, today)

    with refused(None, f"request is open for this subscription already (#{first.pk})"):
        FILERS[kind](recon.subscription, recon, p, today)


def test_a_second_open_refund_of_a_reconciliation_is_refused(p, today, recon):
    refund(recon, p.owner, today, seats=4)

    with refused(None, "A refund of this reconciliation is open already"):
        refund(recon, p.owner, today, seats=2)


def test_a_new_request_may_follow_one_that_ended(p, today):
    _, sub = account(p.owner)
    first = pause(sub, p.owner, today)
    approval_reject(request=first, actor=p.ops, reason="Not now.")

    second = pause(sub, p.owner, today)

    assert second.status == Status.PENDING
