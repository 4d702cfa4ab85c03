"""Who may do what (portal/policy.py), checked through the services that obey it
(DOMAIN.md "Who uses the portal"): an allowed action succeeds, a refused one raises
`NotAllowed` and leaves every record, history row and email as it was. Sales managers
see only the accounts they own; the approval slots a request needs follow the seat,
money and day thresholds."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import FrozenInstanceError, dataclass
from datetime import timedelta
from decimal import Decimal

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from guardian.shortcuts import assign_perm

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
from subscriptions import billing
from subscriptions.models import Customer, Invoice, Namespace, Reconciliation, Subscription
from subscriptions.services.customers import customer_assign_owner
from subscriptions.services.lifecycle import subscription_amend, subscription_cancel
from subscriptions.services.subscriptions import (
    subscription_qsr_disable_for_bug,
    subscription_qsr_enable,
    subscription_qsr_pause,
)
from tests.factories import (
    ApprovalRequestFactory,
    CustomerFactory,
    ReconciliationFactory,
    SubscriptionFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

BUG = "https://bugs.example.com/issues/7"
TICKET = "https://tickets.example.com/77"
WHY = "The customer's CI bots were counted as seats."
Kind = ApprovalRequest.Kind
Status = ApprovalRequest.Status


def own(customer, user) -> None:
    """Make `user` the account's sales manager as the ownership service would (the field
    and the guardian permission), for setting up the cases."""
    Customer.objects.filter(pk=customer.pk).update(owner=user)
    customer.owner = user
    assign_perm(policy.OWN_CUSTOMER, user, customer)


def database_state() -> dict:
    """Every row of the portal's tables, their history and the object permissions."""
    models = [
        m
        for m in apps.get_models()
        if m._meta.app_label in {"approvals", "subscriptions", "guardian"} and not m._meta.proxy
    ]
    return {m._meta.label: list(m.objects.order_by("pk").values()) for m in models}


# --- The account the matrix acts on -----------------------------------------------------


@dataclass
class World:
    """One account owned by `owner`: a QSR subscription in its second quarter whose Q1
    reconciliation charged the DOMAIN worked example (10 seats over 100, 750.00), and
    the people who set up each case (`filer` files requests, `approver` approves them)."""

    owner: object
    customer: Customer
    sub: Subscription
    recon: Reconciliation
    filer: object
    approver: object
    today: object

    def reset(self, sub=None, new_max_seats=None) -> ApprovalRequest:
        return approval_request_reset(
            subscription=sub or self.sub,
            new_max_seats=new_max_seats,
            justification=WHY,
            ticket_url=TICKET,
            actor=self.filer,
            today=self.today,
        )


def account(owner, *, seats=110, price="100.00", in_use=100, max_used=110, **kwargs):
    """A customer owned by `owner` with one subscription whose term started four months
    ago (today is in Q2, so the next charge is the Q2 reconciliation)."""
    today = timezone.localdate()
    term_start = billing.add_months(today.replace(day=1), -4)
    customer = CustomerFactory(**kwargs)
    own(customer, owner)
    sub = SubscriptionFactory(
        customer=customer,
        seats=seats,
        annual_unit_price=Decimal(price),
        term_start=term_start,
        term_end=billing.add_months(term_start, 12),
    )
    ns = sub.namespace
    ns.seats_in_use, ns.max_seats_used = in_use, max_used
    ns.save()
    return customer, sub


def processed_q1(sub) -> Reconciliation:
    """The worked example's Q1: 100 seats paid, max 110, 10 x 25.00 x 3 = 750.00."""
    q1 = billing.reconciliation_dates(sub.term_start)[0]
    return ReconciliationFactory(
        subscription=sub,
        quarter=1,
        reconciliation_date=q1,
        notify_date=q1,
        invoice_date=q1 + timedelta(days=7),
        status=Reconciliation.Status.PROCESSED,
        seats_paid=100,
        max_seats_used=110,
        overage_seats=10,
        annual_unit_price=Decimal("100.00"),
        remaining_quarters=3,
        amount=Decimal("750.00"),
    )


@pytest.fixture
def world() -> World:
    owner = UserFactory(roles=["sales"], username="owner")
    customer, sub = account(owner)
    return World(
        owner=owner,
        customer=customer,
        sub=sub,
        recon=processed_q1(sub),
        filer=UserFactory(roles=["support"], username="filer"),
        approver=UserFactory(roles=["sales_ops"], username="approver"),
        today=timezone.localdate(),
    )


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


def fresh(obj):
    return type(obj).objects.get(pk=obj.pk)


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
    assert {c.action for c in CASES.values()} == set(Action) - {Action.VIEW}


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


# --- What a sales manager sees ----------------------------------------------------------

VISIBLE = {
    Customer: ("pk", lambda c: c),
    Subscription: ("customer", lambda c: SubscriptionFactory(customer=c)),
    Reconciliation: (
        "subscription__customer",
        lambda c: ReconciliationFactory(subscription=SubscriptionFactory(customer=c)),
    ),
    ApprovalRequest: (
        "subscription__customer",
        lambda c: ApprovalRequestFactory(subscription=SubscriptionFactory(customer=c)),
    ),
}


def _rows(model, customers) -> set[int]:
    make = VISIBLE[model][1]
    return {make(c).pk for c in customers}


@pytest.mark.parametrize("model", list(VISIBLE), ids=lambda m: m.__name__)
def test_sales_see_only_the_accounts_they_own(model):
    manager = UserFactory(roles=["sales"])
    mine, theirs = CustomerFactory.create_batch(2), CustomerFactory.create_batch(2)
    for customer in mine:
        own(customer, manager)
    own(theirs[0], UserFactory(roles=["sales"]))
    own_rows, other_rows = _rows(model, mine), _rows(model, theirs)
    path = VISIBLE[model][0]

    def seen(user) -> set[int]:
        qs = policy.visible(model.objects.all(), fresh(user), customer_path=path)
        return set(qs.values_list("pk", flat=True))

    assert seen(manager) == own_rows
    assert seen(UserFactory(roles=["support"])) == own_rows | other_rows
    assert seen(UserFactory(roles=["finance"])) == own_rows | other_rows
    assert seen(UserFactory()) == set()
    # Another role besides sales opens every account.
    assert seen(UserFactory(roles=["sales", "sales_ops"])) == own_rows | other_rows


@pytest.mark.parametrize("model", list(VISIBLE), ids=lambda m: m.__name__)
def test_filtering_to_owned_accounts_costs_the_same_queries_for_any_number_of_rows(
    model, django_assert_max_num_queries
):
    manager = UserFactory(roles=["sales"])
    path = VISIBLE[model][0]

    def grow(n):
        customers = CustomerFactory.create_batch(n)
        for customer in customers[: n // 2]:
            own(customer, manager)
        _rows(model, customers)

    def listing():
        user = fresh(manager)
        return list(policy.visible(model.objects.all(), user, customer_path=path))

    grow(2)
    listing()  # warm per-process caches (content types)
    with CaptureQueriesContext(connection) as few:
        assert len(listing()) == 1
    grow(30)
    # The user (as a request loads it), their roles, then the rows, with the owned
    # accounts as a subquery.
    with django_assert_max_num_queries(3) as many:
        assert len(listing()) == 16
    assert len(many) == len(few)


def test_visible_customers_of_a_manager_are_the_owned_ones():
    manager = UserFactory(roles=["sales"])
    mine = CustomerFactory()
    CustomerFactory()
    own(mine, manager)

    assert list(policy.visible_customers(fresh(manager))) == [mine]


# --- Who must approve -------------------------------------------------------------------

SMALL, OPS, EXEC, FIN = "sales_ops_or_support_manager", "sales_ops", "executive", "finance"


@pytest.mark.parametrize(
    ("kind", "seats", "amount", "currency", "days", "slots"),
    [
        # Max seats reset: 10 seats or fewer, one approval; more, sales ops and executive.
        ("max_seats_reset", 9, "100.00", "USD", None, [SMALL]),
        ("max_seats_reset", 10, "100.00", "USD", None, [SMALL]),
        ("max_seats_reset", 11, "100.00", "USD", None, [OPS, EXEC]),
        # At or above the currency's finance threshold, finance too.
        ("max_seats_reset", 5, "9999.99", "USD", None, [SMALL]),
        ("max_seats_reset", 5, "10000.00", "USD", None, [SMALL, FIN]),
        ("max_seats_reset", 11, "10000.00", "USD", None, [OPS, EXEC, FIN]),
        ("max_seats_reset", 5, "1499999", "JPY", None, [SMALL]),
        ("max_seats_reset", 5, "1500000", "JPY", None, [SMALL, FIN]),
        # 10,000 is a small amount in yen.
        ("max_seats_reset", 5, "10000", "JPY", None, [SMALL]),
        # QSR refund: sales ops, and finance at or above the threshold.
        ("qsr_refund", 4, "9999.99", "USD", None, [OPS]),
        ("qsr_refund", 4, "10000.00", "USD", None, [OPS, FIN]),
        ("qsr_refund", 4, "1499999", "JPY", None, [OPS]),
        ("qsr_refund", 4, "1500000", "JPY", None, [OPS, FIN]),
        # Free period: sales ops; executive as well above 30 days.
        ("free_period", 100, "100.00", "USD", 30, [OPS]),
        ("free_period", 100, "100.00", "USD", 31, [OPS, EXEC]),
        ("qsr_pause", 10, "750.00", "USD", None, [OPS]),
    ],
)
def test_required_slots(kind, seats, amount, currency, days, slots):
    assert (
        policy.required_slots(
            kind, seats=seats, amount=Decimal(amount), currency=currency, days=days
        )
        == slots
    )


def test_the_thresholds_come_from_the_settings(settings):
    settings.APPROVAL_SEAT_THRESHOLD = 5
    settings.APPROVAL_FINANCE_THRESHOLD = {**settings.APPROVAL_FINANCE_THRESHOLD, "USD": 500}

    assert policy.required_slots(
        "max_seats_reset", seats=6, amount=Decimal("500.00"), currency="USD"
    ) == [OPS, EXEC, FIN]


@pytest.mark.parametrize(
    ("price", "slots"),
    [("299999", [SMALL]), ("300000", [SMALL, FIN])],
    ids=["just-under", "at-threshold"],
)
def test_a_yen_reset_is_routed_by_what_the_service_computes(world, price, slots):
    """10 seats waived before the Q2 reconciliation: 10 x price / 4 x 2 remaining
    quarters, JPY 1,499,995 just under and 1,500,000 at the threshold."""
    _, sub = account(world.owner, seats=100, price=price, in_use=100, max_used=110, currency="JPY")

    request = world.reset(sub)

    assert request.seats_at_stake == 10
    assert request.amount_at_stake == 5 * Decimal(price)
    assert request.required_slots == slots


@pytest.mark.parametrize(("days", "slots"), [(30, [OPS]), (31, [OPS, EXEC])])
def test_a_free_period_longer_than_30_days_needs_an_executive(world, days, slots):
    request = approval_request_free_period(
        subscription=world.sub, start=world.today, days=days, justification=WHY,
        ticket_url=TICKET, actor=world.owner, today=world.today,
    )  # fmt: skip

    assert request.required_slots == slots


@pytest.mark.parametrize("seats", [4, 10], ids=["part", "all-overage"])
def test_a_refund_under_the_threshold_needs_sales_ops_only(world, seats):
    world.sub.namespace.seats_in_use = 90
    world.sub.namespace.save()

    refund = approval_request_refund(
        reconciliation=world.recon, seats=seats, justification=WHY, ticket_url=TICKET,
        actor=world.owner, today=world.today,
    )  # fmt: skip

    assert refund.required_slots == [OPS]
    assert refund.amount_at_stake == seats * Decimal("75.00")


def test_a_refund_at_the_threshold_needs_finance(world, settings):
    settings.APPROVAL_FINANCE_THRESHOLD = {
        **settings.APPROVAL_FINANCE_THRESHOLD,
        "USD": Decimal("300.00"),
    }

    refund = approval_request_refund(
        reconciliation=world.recon, seats=4, justification=WHY, ticket_url=TICKET,
        actor=world.owner, today=world.today,
    )  # fmt: skip

    assert refund.amount_at_stake == Decimal("300.00")
    assert refund.required_slots == [OPS, FIN]
