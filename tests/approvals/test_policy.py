"""Who may do what (portal/policy.py), checked through the services that obey it
(DOMAIN.md "Who uses the portal"): an allowed action succeeds, a refused one raises
`NotAllowed` and leaves every record, history row and email as it was. Who acts: a user,
or the portal itself."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import FrozenInstanceError, dataclass

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.exceptions import PermissionDenied

from approvals.models import ApprovalRequest, Dispute
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
    dispute_record,
    dispute_resolve,
)
from portal import policy
from portal.errors import DomainError
from portal.policy import Action, NotAllowed
from subscriptions.models import Customer, Invoice, Namespace, Subscription
from subscriptions.services.customers import customer_assign_owner
from subscriptions.services.lifecycle import subscription_amend, subscription_cancel
from subscriptions.services.subscriptions import (
    subscription_qsr_disable_for_bug,
    subscription_qsr_enable,
    subscription_qsr_pause,
)
from tests.approvals.helpers import TICKET, WHY, World, account, database_state, fresh
from tests.factories import ApprovalRequestFactory, UserFactory

pytestmark = pytest.mark.django_db

BUG = "https://bugs.example.com/issues/7"
Kind = ApprovalRequest.Kind
Status = ApprovalRequest.Status


def make_actor(role: str, w: World):
    if role == "sales_owner":
        return w.owner
    if role == "sales_other":
        other = UserFactory(roles=["sales"], username="other-manager")
        account(other)  # owns an account, just not this one
        return other
    if role == "nobody":
        return UserFactory(username="no-role")
    return UserFactory(roles=[role], username=f"the-{role}")


# --- The matrix -------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """`prepare(w, actor)` builds what the action works on, `act(actor, target, w)` does
    it through the service, `done(target)` says whether it happened. `action` is what
    the admin asks `policy.may` before it offers the button."""

    action: Action
    prepare: Callable
    act: Callable
    done: Callable


def large_waiver(w: World, actor) -> ApprovalRequest:
    """A reset of 30 seats worth 20,000.00: sales ops, executive and finance approve."""
    _, sub = account(w.owner, seats=100, price="4000.00", in_use=80, max_used=110)
    request = w.reset(sub)
    assert request.required_slots == ["sales_ops", "executive", "finance"]
    return request


def small_reset(w: World, actor) -> ApprovalRequest:
    request = w.reset()
    assert request.required_slots == ["sales_ops_or_support_manager"]
    return request


def approved_reset(w: World, actor) -> ApprovalRequest:
    return approval_approve(request=small_reset(w, actor), actor=w.approver)


def approved_refund(w: World, actor) -> ApprovalRequest:
    refund = approval_request_refund(
        reconciliation=w.recon, seats=4, justification=WHY, ticket_url=TICKET, actor=w.filer
    )
    approval_approve(request=refund.linked_reset, actor=w.approver)
    return approval_approve(request=refund, actor=w.approver)


def own_request(w: World, actor) -> ApprovalRequest:
    return ApprovalRequestFactory(
        kind=Kind.MAX_SEATS_RESET,
        requester=actor,
        subscription=w.sub,
        seats_at_stake=10,
        required_slots=["sales_ops_or_support_manager"],
    )


def routed_dispute(w: World, actor) -> Dispute:
    return dispute_record(
        reconciliation=w.recon, reason="Bots counted.", ticket_url=TICKET, actor=w.filer
    )


def paused(w: World, actor) -> Subscription:
    return subscription_qsr_pause(
        subscription=w.sub, until=None, actor=policy.SYSTEM, today=w.today
    )


def disabled_for_bug(w: World, actor) -> Subscription:
    return subscription_qsr_disable_for_bug(
        subscription=w.sub, bug_url=BUG, ticket_url=TICKET, actor=w.filer
    )


def requested(kind: str) -> Callable:
    return lambda target: ApprovalRequest.objects.filter(kind=kind).exists()


def account_and_successor(w: World, actor) -> Customer:
    UserFactory(roles=["sales"], username="new-manager")
    return w.customer


CASES: dict[str, Case] = {
    "disable QSR for a bug": Case(
        Action.QSR_DISABLE_FOR_BUG,
        lambda w, actor: w.sub,
        lambda actor, sub, w: subscription_qsr_disable_for_bug(
            subscription=sub, bug_url=BUG, ticket_url=TICKET, actor=actor
        ),
        lambda sub: fresh(sub).qsr_state == Subscription.QsrState.DISABLED_FOR_BUG,
    ),
    "re-enable QSR after the fix": Case(
        Action.QSR_ENABLE,
        disabled_for_bug,
        lambda actor, sub, w: subscription_qsr_enable(subscription=sub, actor=actor),
        lambda sub: fresh(sub).qsr_state == Subscription.QsrState.ENABLED,
    ),
    "end a pause": Case(
        Action.QSR_END_PAUSE,
        paused,
        lambda actor, sub, w: subscription_qsr_enable(subscription=sub, actor=actor),
        lambda sub: fresh(sub).qsr_state == Subscription.QsrState.ENABLED,
    ),
    "request a pause": Case(
        Action.REQUEST_PAUSE,
        lambda w, actor: w.sub,
        lambda actor, sub, w: approval_request_pause(
            subscription=sub,
            until=None,
            justification=WHY,
            ticket_url=TICKET,
            actor=actor,
            today=w.today,
        ),
        requested(Kind.QSR_PAUSE),
    ),
    "request a reset": Case(
        Action.REQUEST_RESET,
        lambda w, actor: w.sub,
        lambda actor, sub, w: approval_request_reset(
            subscription=sub,
            new_max_seats=None,
            justification=WHY,
            ticket_url=TICKET,
            actor=actor,
            today=w.today,
        ),
        requested(Kind.MAX_SEATS_RESET),
    ),
    "request a refund": Case(
        Action.REQUEST_REFUND,
        lambda w, actor: w.recon,
        lambda actor, recon, w: approval_request_refund(
            reconciliation=recon,
            seats=4,
            justification=WHY,
            ticket_url=TICKET,
            actor=actor,
            today=w.today,
        ),
        requested(Kind.QSR_REFUND),
    ),
    "request a free period": Case(
        Action.REQUEST_FREE_PERIOD,
        lambda w, actor: w.sub,
        lambda actor, sub, w: approval_request_free_period(
            subscription=sub,
            start=w.today,
            days=10,
            justification=WHY,
            ticket_url=TICKET,
            actor=actor,
            today=w.today,
        ),
        requested(Kind.FREE_PERIOD),
    ),
    "approve a small reset": Case(
        Action.DECIDE,
        small_reset,
        lambda actor, request, w: approval_approve(request=request, actor=actor),
        lambda request: fresh(request).status == Status.APPROVED,
    ),
    "approve a large waiver": Case(
        Action.DECIDE,
        large_waiver,
        lambda actor, request, w: approval_approve(request=request, actor=actor),
        lambda request: request.decisions.filter(decision="approve").count() == 1,
    ),
    "reject a small reset": Case(
        Action.DECIDE,
        small_reset,
        lambda actor, request, w: approval_reject(request=request, actor=actor, reason="No."),
        lambda request: fresh(request).status == Status.REJECTED,
    ),
    "reject a large waiver": Case(
        Action.DECIDE,
        large_waiver,
        lambda actor, request, w: approval_reject(request=request, actor=actor, reason="No."),
        lambda request: fresh(request).status == Status.REJECTED,
    ),
    "cancel own request": Case(
        Action.CANCEL_REQUEST,
        own_request,
        lambda actor, request, w: approval_cancel(request=request, actor=actor),
        lambda request: fresh(request).status == Status.CANCELLED,
    ),
    "execute a reset": Case(
        Action.EXECUTE_RESET,
        approved_reset,
        lambda actor, request, w: approval_execute_reset(
            request=request, new_max_seats=100, actor=actor
        ),
        lambda request: (
            fresh(request).status == Status.EXECUTED
            and Namespace.objects.get(pk=request.subscription.namespace_id).max_seats_used == 100
        ),
    ),
    "process a refund": Case(
        Action.PROCESS_REFUND,
        approved_refund,
        lambda actor, request, w: approval_process_refund(request=request, actor=actor),
        lambda request: (
            fresh(request).status == Status.EXECUTED
            and Invoice.objects.filter(idempotency_key=f"refund:{request.pk}").exists()
        ),
    ),
    "record a dispute": Case(
        Action.RECORD_DISPUTE,
        lambda w, actor: w.recon,
        lambda actor, recon, w: dispute_record(
            reconciliation=recon, reason="Bots counted.", ticket_url=TICKET, actor=actor
        ),
        lambda recon: Dispute.objects.filter(reconciliation=recon).exists(),
    ),
    "resolve a dispute": Case(
        Action.RESOLVE_DISPUTE,
        routed_dispute,
        lambda actor, dispute, w: dispute_resolve(
            dispute=dispute, resolution="Credited in Q2.", actor=actor
        ),
        lambda dispute: fresh(dispute).status == Dispute.Status.RESOLVED,
    ),
    "assign the account's owner": Case(
        Action.ASSIGN_OWNER,
        account_and_successor,
        lambda actor, customer, w: customer_assign_owner(
            customer=customer,
            owner=get_user_model().objects.get(username="new-manager"),
            actor=actor,
        ),
        lambda customer: fresh(customer).owner.username == "new-manager",
    ),
    "amend a subscription": Case(
        Action.AMEND_SUBSCRIPTION,
        lambda w, actor: w.sub,
        lambda actor, sub, w: subscription_amend(
            subscription=sub, actor=actor, reason=WHY, ticket_url=TICKET, channel="reseller"
        ),
        lambda sub: fresh(sub).channel == Subscription.Channel.RESELLER,
    ),
    "cancel a subscription": Case(
        Action.CANCEL_SUBSCRIPTION,
        lambda w, actor: w.sub,
        lambda actor, sub, w: subscription_cancel(
            subscription=sub, actor=actor, reason=WHY, ticket_url=TICKET
        ),
        lambda sub: fresh(sub).status == Subscription.Status.CANCELLED,
    ),
}

# Y: the role may do it (DOMAIN.md "Who uses the portal"). "own" and "other" are sales
# managers who own the account and who own another one.
MATRIX = """
                              support  manager  own  other  ops  desk  exec  finance  none
disable QSR for a bug            Y        Y      .     .     .    .     .      .       .
re-enable QSR after the fix      Y        Y      .     .     .    .     .      .       .
end a pause                      .        .      .     .     Y    .     .      .       .
request a pause                  .        .      Y     .     .    .     .      .       .
request a reset                  Y        Y      Y     .     .    .     .      .       .
request a refund                 Y        Y      Y     .     .    .     .      .       .
request a free period            .        .      Y     .     .    .     .      .       .
approve a small reset            .        Y      .     .     Y    .     .      .       .
approve a large waiver           .        .      .     .     Y    .     Y      Y       .
reject a small reset             .        Y      .     .     Y    .     .      .       .
reject a large waiver            .        .      .     .     Y    .     Y      Y       .
cancel own request               Y        Y      Y     .     .    .     .      .       .
execute a reset                  Y        Y      .     .     .    .     .      .       .
process a refund                 .        .      .     .     .    Y     .      .       .
record a dispute                 Y        Y      .     .     .    .     .      .       .
resolve a dispute                .        .      Y     .     .    .     .      .       .
assign the account's owner       .        .      .     .     Y    .     .      .       .
amend a subscription             .        .      .     .     Y    .     .      .       .
cancel a subscription            .        .      .     .     Y    .     .      .       .
"""
ROLES = (
    "support",
    "support_manager",
    "sales_owner",
    "sales_other",
    "sales_ops",
    "deal_desk",
    "executive",
    "finance",
    "nobody",
)


def _cells():
    for line in MATRIX.strip().splitlines()[1:]:
        name, flags = line[:30].strip(), line[30:].split()
        assert len(flags) == len(ROLES), line
        for role, flag in zip(ROLES, flags, strict=True):
            yield pytest.param(name, role, flag == "Y", id=f"{name}-{role}")


def test_the_matrix_covers_every_action_and_role():
    assert {name for name, *_ in (c.values for c in _cells())} == set(CASES)
    # Reading actions change nothing: export is held to its rows in tests/test_export*.py.
    assert {c.action for c in CASES.values()} == set(Action) - {Action.VIEW, Action.EXPORT}


@pytest.mark.parametrize(("name", "role", "allowed"), list(_cells()))
def test_permission_matrix(world, django_capture_on_commit_callbacks, name, role, allowed):
    case = CASES[name]
    actor = make_actor(role, world)
    target = case.prepare(world, actor)
    actor = fresh(actor)  # as a new web request would load the user
    assert policy.may(actor, case.action, target) is allowed
    mail.outbox.clear()
    before = database_state()

    if allowed:
        with django_capture_on_commit_callbacks(execute=True):
            case.act(actor, target, world)
        assert case.done(target)
    else:
        with (
            django_capture_on_commit_callbacks(execute=True) as callbacks,
            pytest.raises(NotAllowed) as excinfo,
        ):
            case.act(actor, target, world)
        assert excinfo.value.message == policy.why_not(actor, case.action, target)
        assert database_state() == before
        assert callbacks == [] and mail.outbox == []
        assert not case.done(target)


def test_not_allowed_is_a_permission_denied():
    assert issubclass(NotAllowed, PermissionDenied)


@pytest.mark.parametrize(
    ("role", "reason"),
    [
        ("sales_other", "This account belongs to another sales manager."),
        ("finance", "Your role does not allow this."),
        ("nobody", "Your role does not allow this."),
    ],
)
def test_a_refusal_says_why(world, role, reason):
    actor = make_actor(role, world)

    with pytest.raises(NotAllowed, match=re.escape(reason)):
        approval_request_pause(
            subscription=world.sub, until=None, justification=WHY, ticket_url=TICKET,
            actor=actor, today=world.today,
        )  # fmt: skip


def test_an_inactive_user_may_do_nothing(world):
    world.owner.is_active = False
    world.owner.save()
    owner = fresh(world.owner)

    assert not policy.may(owner, Action.REQUEST_PAUSE, world.sub)
    assert not policy.visible_customers(owner).exists()


# --- Who acts: a user, or the portal itself --------------------------------------------

WITHOUT_ACTOR = {
    "disable QSR for a bug": lambda w: subscription_qsr_disable_for_bug(
        subscription=w.sub, bug_url=BUG, ticket_url=TICKET, actor=None
    ),
    "re-enable QSR": lambda w: subscription_qsr_enable(subscription=w.sub, actor=None),
    "assign the account's owner": lambda w: customer_assign_owner(
        customer=w.customer, owner=None, actor=None
    ),
    "amend a subscription": lambda w: subscription_amend(
        subscription=w.sub, actor=None, reason=WHY, ticket_url=TICKET, channel="reseller"
    ),
    "cancel a subscription": lambda w: subscription_cancel(
        subscription=w.sub, actor=None, reason=WHY, ticket_url=TICKET
    ),
}


def test_the_policy_refuses_a_missing_actor():
    with pytest.raises(NotAllowed, match="a service needs the user it acts for"):
        policy.check(None, Action.VIEW)
    assert not policy.may(None, Action.VIEW)


@pytest.mark.parametrize("name", list(WITHOUT_ACTOR))
def test_a_service_called_without_an_actor_is_refused_and_changes_nothing(world, name):
    before = database_state()

    with pytest.raises(NotAllowed, match="No actor given"):
        WITHOUT_ACTOR[name](world)

    assert database_state() == before


def test_the_system_actor_may_do_every_action_but_is_nobody_on_the_web(world):
    system = policy.SYSTEM

    for action in Action:
        policy.check(system, action, world.sub)  # raises if refused
    assert (system.is_authenticated, system.is_active, system.is_superuser) == (False,) * 3
    assert policy.roles_of(system) == frozenset()
    assert not policy.visible_customers(system).exists()
    assert not policy.visible(Subscription.objects.all(), system, customer_path="customer")
    with pytest.raises(FrozenInstanceError):
        system.name = "someone"


def test_a_new_owner_gains_the_account_and_the_old_one_loses_it(world):
    ops = UserFactory(roles=["sales_ops"])
    successor = UserFactory(roles=["sales"])

    customer_assign_owner(customer=world.customer, owner=successor, actor=ops)

    assert policy.may(fresh(successor), Action.REQUEST_PAUSE, world.sub)
    assert not policy.may(fresh(world.owner), Action.REQUEST_PAUSE, world.sub)
    assert fresh(world.customer).owner == successor
    history = world.customer.history.latest()
    assert history.history_user == ops
    assert history.history_change_reason == f"sales manager: {world.owner} -> {successor}"


def test_only_a_sales_user_can_own_an_account(world):
    ops = UserFactory(roles=["sales_ops"])
    before = database_state()

    with pytest.raises(DomainError) as excinfo:
        customer_assign_owner(customer=world.customer, owner=world.filer, actor=ops)

    assert excinfo.value.field == "owner"
    assert database_state() == before
