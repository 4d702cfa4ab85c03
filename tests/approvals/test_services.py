"""The approval workflows as the people in them live them (DOMAIN.md "Disabling, pausing
and disputing QSR", "Max seats reset", "QSR refund", "Suspensions": free period):
filing, deciding, executing, separation of duties, expiry, bad input, disputes and the
emails that tell people when it is their turn."""

from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone

from approvals.models import ApprovalDecision, ApprovalRequest, Dispute
from approvals.services import (
    approval_approve,
    approval_cancel,
    approval_execute_reset,
    approval_process_refund,
    approval_reject,
    approval_request_free_period,
    approval_request_pause,
    approval_request_refund,
    approval_request_reset,
    approval_requests_expire,
    dispute_record,
    dispute_resolve,
)
from outbox.services import outbox_send_due
from portal import policy
from portal.errors import DomainError
from portal.policy import SYSTEM, Action, NotAllowed
from subscriptions.models import (
    Customer,
    Invoice,
    InvoiceLine,
    Namespace,
    Reconciliation,
    Subscription,
    Suspension,
)
from subscriptions.services import nightly
from tests.approvals.test_policy import TICKET, WHY, account, database_state, own, processed_q1
from tests.assertions import assert_db_rejects
from tests.factories import ReconciliationFactory, UserFactory

pytestmark = pytest.mark.django_db

Status = ApprovalRequest.Status
Kind = ApprovalRequest.Kind


@pytest.fixture
def p():
    """The people: one of each role, two where a test needs a second one."""
    roles = {
        "owner": ["sales"],
        "ops": ["sales_ops"],
        "ops2": ["sales_ops"],
        "executive": ["executive"],
        "finance": ["finance"],
        "support": ["support"],
        "support2": ["support"],
        "manager": ["support_manager"],
        "desk": ["deal_desk"],
        "desk2": ["deal_desk"],
    }
    return SimpleNamespace(
        **{name: UserFactory(username=name, roles=r) for name, r in roles.items()}
    )


@pytest.fixture
def today():
    return timezone.localdate()


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run the block as a transaction that commits: its on-commit emails are sent."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@contextmanager
def refused(field: str | None, fragment: str):
    """Expect a DomainError on `field` saying `fragment`, with nothing saved."""
    before = database_state()
    with pytest.raises(DomainError, match=re.escape(fragment)) as excinfo:
        yield
    assert excinfo.value.field == field
    assert database_state() == before


@contextmanager
def not_allowed(fragment: str):
    before = database_state()
    with pytest.raises(NotAllowed, match=re.escape(fragment)):
        yield
    assert database_state() == before


def fresh(obj):
    return type(obj).objects.get(pk=obj.pk)


def flush_outbox() -> None:
    """Send what the earlier steps wrote to the outbox, and count mail from here on."""
    outbox_send_due()
    mail.outbox.clear()


def sent_to(user) -> list[str]:
    """Subjects of the emails `user` received."""
    return [m.subject for m in mail.outbox if user.email in m.to]


def pause(sub, actor, today, until=None, **kwargs):
    kwargs = {"justification": WHY, "ticket_url": TICKET, **kwargs}
    return approval_request_pause(subscription=sub, until=until, actor=actor, today=today, **kwargs)


def reset(sub, actor, today, new_max_seats=None, **kwargs):
    kwargs = {"justification": WHY, "ticket_url": TICKET, **kwargs}
    return approval_request_reset(
        subscription=sub, new_max_seats=new_max_seats, actor=actor, today=today, **kwargs
    )


def refund(recon, actor, today, seats, **kwargs):
    kwargs = {"justification": WHY, "ticket_url": TICKET, **kwargs}
    return approval_request_refund(
        reconciliation=recon, seats=seats, actor=actor, today=today, **kwargs
    )


def free_period(sub, actor, today, start=None, days=10, **kwargs):
    kwargs = {"justification": WHY, "ticket_url": TICKET, **kwargs}
    return approval_request_free_period(
        subscription=sub, start=start or today, days=days, actor=actor, today=today, **kwargs
    )


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


@pytest.fixture
def eleven(p, today):
    """A reset waiving 11 seats: max seats used 111 down to 100, 95 in use."""
    _, sub = account(p.owner, seats=100, in_use=95, max_used=111)
    return reset(sub, p.owner, today, new_max_seats=100)


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


@pytest.fixture
def recon(p):
    _, sub = account(p.owner, seats=110, in_use=100, max_used=110)
    return processed_q1(sub)


def approve_both(refund_request, p):
    approval_approve(request=refund_request.linked_reset, actor=p.manager)
    return approval_approve(request=refund_request, actor=p.ops)


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


# --- Separation of duties ----------------------------------------------------------------


def test_nobody_approves_their_own_request(p, today):
    both = UserFactory(roles=["sales", "sales_ops"])
    customer, sub = account(p.owner)
    own(customer, both)
    request = pause(sub, both, today)

    assert not policy.may(both, Action.DECIDE, request)
    with not_allowed("Nobody approves their own request."):
        approval_approve(request=request, actor=both)
    with not_allowed("Nobody approves their own request."):
        approval_reject(request=request, actor=both, reason="Changed my mind.")


def test_the_database_refuses_a_forged_self_approval(p, today):
    _, sub = account(p.owner)
    request = pause(sub, p.owner, today)

    assert_db_rejects(
        ApprovalDecision,
        lambda: ApprovalDecision.objects.create(
            request=request,
            slot="sales_ops",
            approver=p.owner,
            requester=p.owner,
            decision="approve",
        ),
        "approval_not_own_request",
    )


def test_one_person_fills_one_slot_of_a_request(p, eleven):
    both = UserFactory(roles=["sales_ops", "executive"])
    approval_approve(request=eleven, actor=both)

    assert policy.why_not(both, Action.DECIDE, eleven) == (
        "You have decided on this request already; one person fills one slot."
    )
    # A second click fills no second slot: the executive slot waits for someone else.
    approval_approve(request=eleven, actor=both)
    with not_allowed("You have decided on this request already"):
        approval_reject(request=eleven, actor=both, reason="Second thoughts.")
    assert fresh(eleven).status == Status.PENDING
    assert list(eleven.decisions.values_list("slot", "approver")) == [("sales_ops", both.pk)]
    assert_db_rejects(
        ApprovalDecision,
        lambda: ApprovalDecision.objects.create(
            request=eleven,
            slot="executive",
            approver=both,
            requester=eleven.requester,
            decision="approve",
        ),
        "approval_one_slot_per_person",
    )
    approval_approve(request=eleven, actor=p.executive)
    assert fresh(eleven).status == Status.APPROVED


def test_whoever_requested_a_refund_does_not_process_it(p, today, recon):
    both = UserFactory(roles=["support", "deal_desk"])
    request = approve_both(refund(recon, both, today, seats=4), p)

    with not_allowed("Whoever requested a change does not execute it."):
        approval_process_refund(request=request, actor=both)

    approval_process_refund(request=request, actor=p.desk)
    assert fresh(request).executed_by == p.desk


# --- Rejection, cancellation, expiry -----------------------------------------------------


def test_a_rejection_ends_the_request(p, today, eleven, committed):
    with committed():
        approval_reject(request=eleven, actor=p.ops, reason="Usage was real.")

    request = fresh(eleven)
    assert request.status == Status.REJECTED and request.decided_at is not None
    assert request.decisions.get().reason == "Usage was real."
    assert f"Your request was rejected: {request}" in sent_to(p.owner)
    with refused(None, "This request is rejected already."):
        approval_approve(request=eleven, actor=p.executive)
    with refused(None, "Only an approved request can be executed"):
        approval_execute_reset(request=eleven, new_max_seats=100, actor=p.support)


def test_a_rejection_says_why(p, eleven):
    with refused("reason", "Say why it is rejected"):
        approval_reject(request=eleven, actor=p.ops, reason="  ")


def test_a_rejected_pause_leaves_qsr_on(p, today):
    _, sub = account(p.owner)
    request = pause(sub, p.owner, today)

    approval_reject(request=request, actor=p.ops, reason="Charge stands.")

    assert fresh(sub).qsr_state == Subscription.QsrState.ENABLED


@pytest.mark.parametrize("end", ["reject", "cancel"])
def test_a_reset_that_ends_takes_its_open_refund_with_it(p, today, recon, end):
    request = refund(recon, p.owner, today, seats=4)
    approval_approve(request=request, actor=p.ops)

    if end == "reject":
        approval_reject(request=request.linked_reset, actor=p.manager, reason="No.")
    else:
        approval_cancel(request=request.linked_reset, actor=p.owner)

    request = fresh(request)
    assert request.status == Status.CANCELLED
    assert request.history.latest().history_change_reason.startswith("cancelled: its max seats")
    with refused(None, "Only an approved request can be executed"):
        approval_process_refund(request=request, actor=p.desk)


def test_a_reset_whose_refund_was_processed_cannot_be_cancelled(p, today, recon):
    """The seats were refunded: without the reset the next reconciliation would charge
    them again, and the refund would never be complete."""
    request = approve_both(refund(recon, p.owner, today, seats=4), p)
    approval_process_refund(request=request, actor=p.desk)

    with refused(None, "refund"):
        approval_cancel(request=request.linked_reset, actor=p.owner)

    approval_execute_reset(request=request.linked_reset, new_max_seats=106, actor=p.support)
    assert fresh(request).refund_complete is True


def test_a_reset_whose_refund_was_processed_does_not_expire(p, today, recon):
    request = approve_both(refund(recon, p.owner, today, seats=4), p)
    approval_process_refund(request=request, actor=p.desk)

    approval_requests_expire(run_date=today + timedelta(days=60), actor=SYSTEM)

    assert fresh(request.linked_reset).status == Status.APPROVED
    approval_execute_reset(request=request.linked_reset, new_max_seats=106, actor=p.support)
    assert fresh(request).refund_complete is True


def test_the_requester_cancels_a_pending_or_approved_request(p, today, eleven):
    _, sub = account(p.owner)
    pending = pause(sub, p.owner, today)

    approval_cancel(request=pending, actor=p.owner, reason="Customer paid.")
    approval_approve(request=eleven, actor=p.ops)
    approval_approve(request=eleven, actor=p.executive)
    approval_cancel(request=eleven, actor=p.owner)

    assert fresh(pending).status == fresh(eleven).status == Status.CANCELLED
    assert fresh(pending).history.latest().history_change_reason == "cancelled: Customer paid."
    assert fresh(sub).qsr_state == Subscription.QsrState.ENABLED
    # Cancelled is final.
    with refused(None, "This request is cancelled already."):
        approval_approve(request=pending, actor=p.ops)


@pytest.mark.parametrize("who", ["ops", "support", "other_owner"])
def test_only_the_requester_cancels(p, today, who):
    customer, sub = account(p.owner)
    request = pause(sub, p.owner, today)
    if who == "other_owner":
        actor = UserFactory(roles=["sales"])
        own(customer, actor)  # even another manager of the same account
    else:
        actor = getattr(p, who)

    with pytest.raises(NotAllowed):
        approval_cancel(request=request, actor=actor)

    assert fresh(request).status == Status.PENDING


def test_an_executed_request_cannot_be_cancelled(p, today):
    _, sub = account(p.owner)
    request = pause(sub, p.owner, today)
    approval_approve(request=request, actor=p.ops)

    with refused(None, "This request is executed; it cannot be cancelled now."):
        approval_cancel(request=request, actor=p.owner)


def test_pending_requests_expire_after_30_days(p, today):
    _, sub = account(p.owner)
    request = pause(sub, p.owner, today)

    assert approval_requests_expire(run_date=today + timedelta(days=29), actor=SYSTEM) == {}
    assert fresh(request).status == Status.PENDING
    counts = approval_requests_expire(run_date=today + timedelta(days=30), actor=SYSTEM)

    assert counts == {"expired:pending": 1}
    assert fresh(request).status == Status.EXPIRED
    with refused(None, "This request is expired already."):
        approval_approve(request=request, actor=p.ops)


def test_expiry_is_the_last_step_of_the_nightly_run():
    assert nightly.STEPS[-1] == "expiry"
    assert nightly.registered_step("expiry") is approval_requests_expire


def test_approved_requests_expire_when_not_executed_within_14_days(p, today, eleven):
    approval_approve(request=eleven, actor=p.ops)
    approval_approve(request=eleven, actor=p.executive)
    _, sub = account(p.owner)
    done = pause(sub, p.owner, today)
    approval_approve(request=done, actor=p.ops)

    assert approval_requests_expire(run_date=today + timedelta(days=13), actor=SYSTEM) == {}
    counts = approval_requests_expire(run_date=today + timedelta(days=14), actor=SYSTEM)

    assert counts == {"expired:approved": 1}
    assert fresh(eleven).status == Status.EXPIRED
    assert fresh(done).status == Status.EXECUTED  # what was done stays done
    with refused(None, "Only an approved request can be executed"):
        approval_execute_reset(request=eleven, new_max_seats=100, actor=p.support)
    # Expiring again changes nothing.
    assert approval_requests_expire(run_date=today + timedelta(days=60), actor=SYSTEM) == {}


def test_an_expiring_reset_ends_its_refund_and_the_requester_hears_of_both(
    p, today, recon, committed
):
    request = refund(recon, p.owner, today, seats=4)
    approval_approve(request=request.linked_reset, actor=p.manager)  # the refund still waits
    mail.outbox.clear()

    with committed():
        counts = approval_requests_expire(run_date=today + timedelta(days=14), actor=SYSTEM)

    assert counts == {"expired:approved": 1}
    reset, ended = fresh(request.linked_reset), fresh(request)
    assert reset.status == Status.EXPIRED
    assert reset.history.latest().history_change_reason == "expired (approved too long)"
    assert reset.history.latest().history_user is None  # the portal's own job
    assert ended.status == Status.CANCELLED
    assert ended.history.latest().history_change_reason == (
        "cancelled: its max seats reset expired"
    )
    subjects = sent_to(p.owner)
    assert any(s.startswith("Your request was expired") for s in subjects), subjects
    assert any(s.startswith("Your request was cancelled") for s in subjects), subjects
    # Deal desk is not left with a refund to process.
    with refused(None, "Only an approved request can be executed; this one is cancelled."):
        approval_process_refund(request=ended, actor=p.desk)


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


def test_a_repeated_approval_of_the_last_slot_changes_nothing(p, today):
    _, sub = account(p.owner)
    request = pause(sub, p.owner, today)
    approval_approve(request=request, actor=p.ops)
    before = database_state()

    again = approval_approve(request=request, actor=p.ops)

    assert again.status == Status.EXECUTED
    assert database_state() == before


def test_a_repeated_approval_while_other_slots_wait_changes_nothing(p, eleven):
    approval_approve(request=eleven, actor=p.ops)
    before = database_state()

    again = approval_approve(request=eleven, actor=p.ops)

    assert again.status == Status.PENDING
    assert database_state() == before


def test_a_repeated_execution_changes_nothing(p, eleven):
    approval_approve(request=eleven, actor=p.ops)
    approval_approve(request=eleven, actor=p.executive)
    approval_execute_reset(request=eleven, new_max_seats=100, actor=p.support)
    before = database_state()

    approval_execute_reset(request=eleven, new_max_seats=100, actor=p.support)

    assert database_state() == before


@pytest.mark.parametrize("kind", ["pause", "reset", "free period"])
def test_a_second_open_request_of_the_same_kind_is_refused(p, today, recon, kind):
    FILERS[kind](recon.subscription, recon, p, today)

    with refused(None, "request is open for this subscription already"):
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


# --- Disputes ----------------------------------------------------------------------------


def dispute(recon, actor, ticket=TICKET):
    return dispute_record(
        reconciliation=recon, reason="Bots were counted.", ticket_url=ticket, actor=actor
    )


def recon_in(status: str, p) -> Reconciliation:
    _, sub = account(p.owner)
    extra = {"skip_reason": "paused"} if status == "skipped" else {}
    if status == "refunded":
        extra = {"overage_seats": 2, "refunded_seats": 2}
    return ReconciliationFactory(subscription=sub, status=status, **extra)


@pytest.mark.parametrize("status", ["pending", "processed"])
def test_a_dispute_is_routed_to_the_accounts_sales_manager(p, status, committed):
    recon = recon_in(status, p)

    with committed():
        d = dispute(recon, p.support)

    d.refresh_from_db()
    assert (d.status, d.assigned_to, d.recorded_by) == (Dispute.Status.ROUTED, p.owner, p.support)
    assert d.ticket_closed_at is not None
    assert [(m.subject, m.to) for m in mail.outbox] == [
        (f"Dispute routed to you: {recon}", [p.owner.email])
    ]
    assert "Bots were counted." in mail.outbox[0].body
    assert fresh(recon).status == status  # support changes nothing on it


@pytest.mark.parametrize("status", ["scheduled", "skipped", "refunded", "failed"])
def test_only_a_pending_or_processed_reconciliation_is_disputed(p, status):
    recon = recon_in(status, p)

    with refused(None, "Only a pending or processed reconciliation can be disputed"):
        dispute(recon, p.support)


def test_no_email_when_the_dispute_is_rolled_back(p, django_capture_on_commit_callbacks):
    recon = recon_in("processed", p)

    class Abort(Exception):
        pass

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(Abort),
        transaction.atomic(),
    ):
        dispute(recon, p.support)
        raise Abort

    assert callbacks == []
    assert mail.outbox == []
    assert not Dispute.objects.exists()


def test_the_email_waits_for_the_commit(p, django_capture_on_commit_callbacks):
    recon = recon_in("processed", p)

    with django_capture_on_commit_callbacks() as callbacks:
        dispute(recon, p.support)
        assert mail.outbox == []

    assert len(callbacks) == 1
    callbacks[0]()
    assert sent_to(p.owner) == [f"Dispute routed to you: {recon}"]


@pytest.mark.parametrize("owner", ["none", "inactive"])
def test_a_dispute_needs_an_active_sales_manager(p, owner):
    recon = recon_in("processed", p)
    if owner == "none":
        Customer.objects.filter(pk=recon.subscription.customer_id).update(owner=None)
    else:
        type(p.owner).objects.filter(pk=p.owner.pk).update(is_active=False)

    with refused(None, "has no active sales manager to route the dispute to"):
        dispute(recon, p.support)


def test_the_same_ticket_twice_records_one_dispute(p):
    recon = recon_in("processed", p)
    first = dispute(recon, p.support)

    assert dispute(recon, p.support) == first
    with refused(None, "This reconciliation is disputed already"):
        dispute(recon, p.support2, ticket="https://tickets.example.com/other")


def test_the_sales_manager_resolves_the_dispute(p):
    d = dispute(recon_in("processed", p), p.support)
    with refused("resolution", "Say how it was resolved."):
        dispute_resolve(dispute=d, resolution=" ", actor=p.owner)

    dispute_resolve(dispute=d, resolution="Pause requested.", actor=p.owner)

    d.refresh_from_db()
    assert (d.status, d.resolution) == (Dispute.Status.RESOLVED, "Pause requested.")
    assert d.resolved_at is not None
    assert d.history.latest().history_user == p.owner
    # The same resolution again is a no-op; another one is refused.
    dispute_resolve(dispute=d, resolution="Pause requested.", actor=p.owner)
    with refused(None, "This dispute is resolved already."):
        dispute_resolve(dispute=d, resolution="Something else.", actor=p.owner)


def test_a_dispute_needs_a_reason_and_a_ticket(p):
    recon = recon_in("processed", p)

    with refused("reason", "Say what the customer disputes."):
        dispute_record(reconciliation=recon, reason=" ", ticket_url=TICKET, actor=p.support)
    with refused("ticket_url", "link to the ticket"):
        dispute_record(reconciliation=recon, reason="Bots.", ticket_url="", actor=p.support)


# --- Who hears about it ------------------------------------------------------------------


def test_approvers_of_open_slots_are_emailed_when_their_turn_comes(p, today, committed):
    _, sub = account(p.owner, seats=100, in_use=95, max_used=111)

    with committed():
        request = reset(sub, p.owner, today, new_max_seats=100)

    need_ops = f"Approval needed (Sales ops): {request}"
    need_exec = f"Approval needed (Executive): {request}"
    assert sent_to(p.ops) == sent_to(p.ops2) == [need_ops]
    assert sent_to(p.executive) == [need_exec]
    for bystander in (p.owner, p.finance, p.manager, p.support, p.desk):
        assert sent_to(bystander) == []

    mail.outbox.clear()
    with committed():
        approval_approve(request=request, actor=p.ops)
    assert sent_to(p.executive) == [need_exec]
    assert sent_to(p.ops) == sent_to(p.ops2) == sent_to(p.owner) == []

    mail.outbox.clear()
    with committed():
        approval_approve(request=request, actor=p.executive)
    request = fresh(request)
    assert sent_to(p.owner) == [f"Your request was approved: {request}"]
    # Support executes resets: they hear it is ready.
    assert sent_to(p.support) == sent_to(p.support2) == [f"Ready to execute: {request}"]
    assert sent_to(p.executive) == sent_to(p.desk) == []


def test_a_requester_in_an_approver_role_is_not_asked_to_approve(p, today, committed):
    both = UserFactory(roles=["sales", "sales_ops"])
    customer, sub = account(p.owner)
    own(customer, both)

    with committed():
        pause(sub, both, today)

    assert sent_to(both) == []
    assert len(sent_to(p.ops)) == 1


@pytest.mark.parametrize("last", ["reset", "refund"])
def test_deal_desk_hears_of_the_refund_once_it_and_its_reset_are_approved(
    p, today, recon, committed, last
):
    request = refund(recon, p.owner, today, seats=4)
    first, second = (request, request.linked_reset)[:: 1 if last == "reset" else -1]
    with committed():
        approval_approve(request=first, actor=p.ops if first == request else p.manager)
    assert sent_to(p.desk) == []  # the other one still waits

    with committed():
        approval_approve(request=second, actor=p.ops if second == request else p.manager)

    # Deal desk processes refunds: they are told which refund is ready.
    assert sent_to(p.desk) == sent_to(p.desk2) == [f"Ready to execute: {fresh(request)}"]


def test_a_refused_action_sends_nothing(p, today, committed):
    _, sub = account(p.owner)
    request = pause(sub, p.owner, today)
    mail.outbox.clear()

    with committed(), pytest.raises(NotAllowed):
        approval_approve(request=request, actor=p.finance)

    assert mail.outbox == []
