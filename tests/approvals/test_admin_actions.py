"""The action buttons of the admin through HTTP, as each role uses them (DOMAIN.md "Who
uses the portal", "Disabling, pausing and disputing QSR", "Max seats reset", "QSR
refund"): a button shows exactly when the role may use it; a forged POST of a role that
may not is refused with nothing changed; each action goes form -> confirmation page with
its money or seat effect (nothing changed yet) -> service; bad input comes back as an
error on the form with nothing saved."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.apps import apps
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from guardian.models import UserObjectPermission

from approvals.models import ApprovalDecision, ApprovalRequest, Dispute
from portal.policy import SYSTEM
from subscriptions import billing
from subscriptions.models import (
    Customer,
    InvoiceLine,
    QsrDisabledForBug,
    Reconciliation,
    Subscription,
)
from subscriptions.services.customers import customer_assign_owner
from subscriptions.services.lifecycle import AMENDABLE
from tests.assertions import admin_url, shown
from tests.factories import (
    ApprovalDecisionFactory,
    ApprovalRequestFactory,
    CustomerFactory,
    ReconciliationFactory,
    SubscriptionFactory,
)

pytestmark = pytest.mark.django_db

Kind = ApprovalRequest.Kind
Status = ApprovalRequest.Status
QsrState = Subscription.QsrState

BUG = "https://bugs.example.com/issues/42"
TICKET = "https://tickets.example.com/1001"
SMALL = "sales_ops_or_support_manager"

# The people of DOMAIN.md "Who uses the portal". The account belongs to `sales_owner`;
# `sales_other` is a sales manager of other accounts.
ROLES = (
    "support",
    "support_manager",
    "sales_owner",
    "sales_other",
    "sales_ops",
    "deal_desk",
    "executive",
    "finance",
)
GROUP = {"sales_owner": "sales", "sales_other": "sales"}


@dataclass
class Portal:
    users: dict
    customer: Customer

    @property
    def owner(self):
        return self.users["sales_owner"]


@pytest.fixture
def portal(user_with_role) -> Portal:
    users = {
        role: user_with_role(GROUP.get(role, role), username=role.replace("_", "."))
        for role in ROLES
    }
    customer = CustomerFactory(name="Acme Corp")
    customer = customer_assign_owner(customer=customer, owner=users["sales_owner"], actor=SYSTEM)
    return Portal(users=users, customer=customer)


# --- Records in the state each action applies to ----------------------------------------
#
# The term runs so that its Q1 reconciliation is behind us and Q2 ahead, whatever today
# is: a waiver or a pause is priced at the Q2 charge, 2 remaining quarters.


def term_start() -> date:
    return billing.add_months(timezone.localdate().replace(day=1), -4)


def q2_date() -> date:
    return billing.reconciliation_dates(term_start())[1]


def live_subscription(portal: Portal, **kwargs) -> Subscription:
    """100 seats bought, 10 added by Q1 (110 paid) at 100.00 a year; 100 in use now,
    120 at most this term: 10 seats over, 500.00 at the Q2 reconciliation."""
    start = term_start()
    return SubscriptionFactory(
        customer=portal.customer,
        namespace__seats_in_use=100,
        namespace__max_seats_used=120,
        seats=110,
        term_start=start,
        term_end=billing.add_months(start, 12),
        **kwargs,
    )


def processed_reconciliation(portal: Portal, subscription=None) -> Reconciliation:
    """Q1: 110 used over 100 paid, 10 x 25.00 x 3 = 750.00, invoiced."""
    sub = subscription or live_subscription(portal)
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


def reset_request(portal: Portal, *, status=Status.PENDING, subscription=None, **kwargs):
    """Waive 8 of the 120 max seats used (down to 112): 8 x 25.00 x 2 = 400.00 at Q2."""
    request = ApprovalRequestFactory(
        **{
            "kind": Kind.MAX_SEATS_RESET,
            "requester": portal.owner,
            "subscription": subscription or live_subscription(portal),
            "seats_at_stake": 8,
            "amount_at_stake": Decimal("400.00"),
            "required_slots": [SMALL],
            "status": status,
            **kwargs,
        }
    )
    if status == Status.APPROVED:
        ApprovalDecisionFactory(request=request, slot=SMALL, approver=portal.users["sales_ops"])
        request.decided_at = timezone.now()
        request.save(update_fields=["decided_at"])
    return request


def large_reset_request(portal: Portal) -> ApprovalRequest:
    """Waive 20 seats at 2,000.00 a seat a year: 20 x 500.00 x 2 = 20,000.00 at Q2, more
    than 10 seats and above the finance threshold."""
    return reset_request(
        portal,
        subscription=live_subscription(portal, annual_unit_price=Decimal("2000.00")),
        seats_at_stake=20,
        amount_at_stake=Decimal("20000.00"),
        required_slots=["sales_ops", "executive", "finance"],
    )


def refund_request(portal: Portal) -> ApprovalRequest:
    """Refund 4 of the 10 seats of Q1 (4 x 75.00 = 300.00), both it and its reset approved."""
    recon = processed_reconciliation(portal)
    reset = reset_request(
        portal,
        status=Status.APPROVED,
        subscription=recon.subscription,
        seats_at_stake=4,
        amount_at_stake=Decimal("200.00"),
    )
    refund = ApprovalRequestFactory(
        kind=Kind.QSR_REFUND,
        requester=portal.owner,
        subscription=recon.subscription,
        reconciliation=recon,
        linked_reset=reset,
        seats_at_stake=4,
        amount_at_stake=Decimal("300.00"),
        required_slots=["sales_ops"],
        status=Status.APPROVED,
        decided_at=timezone.now(),
    )
    ApprovalDecisionFactory(request=refund, approver=portal.users["sales_ops"])
    return refund


def routed_dispute(portal: Portal) -> Dispute:
    return Dispute.objects.create(
        reconciliation=processed_reconciliation(portal),
        reason="The customer says 10 of the seats were bots.",
        ticket_url=TICKET,
        recorded_by=portal.users["support"],
        assigned_to=portal.owner,
        ticket_closed_at=timezone.now(),
    )


def fresh(obj):
    return type(obj)._base_manager.get(pk=obj.pk)


# --- The actions and who may use them ----------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    name: str  # the action's URL segment
    target: Callable  # (portal) -> the record, in a state the action applies to
    data: Callable  # (portal, record) -> valid form data
    allowed: frozenset[str]  # the roles whose change page shows the button
    done: Callable  # (portal, record, user) -> whether the action happened

    def __str__(self) -> str:
        return self.id


def why(**extra):
    return lambda p, o: {**extra, "justification": "Agreed on the call.", "ticket_url": TICKET}


def filed(kind, *, on: str):
    """A pending request of `kind` by the user, on the record (its field `on`)."""
    return lambda p, o, u: ApprovalRequest.objects.filter(
        kind=kind, requester=u, status=Status.PENDING, **{on: o}
    ).exists()


def decided(decision, status=None):
    def done(p, o, u):
        made = ApprovalDecision.objects.filter(request=o, approver=u, decision=decision).exists()
        return made and (status is None or fresh(o).status == status)

    return done


def executed(p, o, u):
    request = fresh(o)
    return request.status == Status.EXECUTED and request.executed_by == u


def amendment(**changes):
    """The amend form as its page fills it in, with `changes`, a reason and a ticket."""

    def data(p, o):
        values = {**{name: getattr(o, name) for name in AMENDABLE}, **changes}
        return {
            **values,
            "version": o.updated_at.isoformat(),
            "reason": "Bought through a reseller.",
            "ticket_url": TICKET,
        }

    return data


CASES = [
    Case(
        "disable-qsr-for-bug",
        "disable-qsr-for-bug",
        live_subscription,
        lambda p, o: {"bug_url": BUG, "ticket_url": TICKET},
        frozenset({"support", "support_manager"}),
        lambda p, o, u: fresh(o).qsr_state == QsrState.DISABLED_FOR_BUG,
    ),
    Case(
        "enable-qsr-after-bug",
        "enable-qsr",
        lambda p: live_subscription(
            p, qsr_state=QsrState.DISABLED_FOR_BUG, qsr_bug_url=BUG, qsr_ticket_url=TICKET
        ),
        lambda p, o: {},
        frozenset({"support", "support_manager"}),
        lambda p, o, u: fresh(o).qsr_state == QsrState.ENABLED,
    ),
    Case(
        "end-pause",
        "enable-qsr",
        lambda p: live_subscription(
            p,
            qsr_state=QsrState.PAUSED,
            qsr_paused_until=timezone.localdate() + timedelta(days=30),
        ),
        lambda p, o: {},
        frozenset({"sales_ops"}),
        lambda p, o, u: fresh(o).qsr_state == QsrState.ENABLED,
    ),
    Case(
        "request-pause",
        "request-pause",
        live_subscription,
        why(until=""),
        frozenset({"sales_owner"}),
        filed(Kind.QSR_PAUSE, on="subscription"),
    ),
    Case(
        "request-reset",
        "request-reset",
        live_subscription,
        why(new_max_seats=112),
        frozenset({"support", "support_manager", "sales_owner"}),
        filed(Kind.MAX_SEATS_RESET, on="subscription"),
    ),
    Case(
        "request-free-period",
        "request-free-period",
        live_subscription,
        lambda p, o: why(start=timezone.localdate().isoformat(), days=10)(p, o),
        frozenset({"sales_owner"}),
        filed(Kind.FREE_PERIOD, on="subscription"),
    ),
    Case(
        "record-dispute",
        "record-dispute",
        processed_reconciliation,
        lambda p, o: {"reason": "The customer says 10 seats were bots.", "ticket_url": TICKET},
        frozenset({"support", "support_manager"}),
        lambda p, o, u: Dispute.objects.filter(
            reconciliation=o, recorded_by=u, assigned_to=p.owner, status="routed"
        ).exists(),
    ),
    Case(
        "request-refund",
        "request-refund",
        processed_reconciliation,
        why(seats=4),
        frozenset({"support", "support_manager", "sales_owner"}),
        filed(Kind.QSR_REFUND, on="reconciliation"),
    ),
    Case(
        "approve-small-reset",
        "approve",
        reset_request,
        lambda p, o: {"reason": "Fair."},
        frozenset({"sales_ops", "support_manager"}),
        decided("approve", Status.APPROVED),
    ),
    Case(
        "approve-large-reset",
        "approve",
        large_reset_request,
        lambda p, o: {"reason": "Fair."},
        frozenset({"sales_ops", "executive", "finance"}),
        decided("approve", Status.PENDING),
    ),
    Case(
        "reject-small-reset",
        "reject",
        reset_request,
        lambda p, o: {"reason": "The usage was real."},
        frozenset({"sales_ops", "support_manager"}),
        decided("reject", Status.REJECTED),
    ),
    Case(
        "reject-large-reset",
        "reject",
        large_reset_request,
        lambda p, o: {"reason": "The usage was real."},
        frozenset({"sales_ops", "executive", "finance"}),
        decided("reject", Status.REJECTED),
    ),
    Case(
        "cancel",
        "cancel",
        reset_request,
        lambda p, o: {"reason": "Sorted out with the customer."},
        frozenset({"sales_owner"}),
        lambda p, o, u: fresh(o).status == Status.CANCELLED,
    ),
    Case(
        "execute-reset",
        "execute-reset",
        lambda p: reset_request(p, status=Status.APPROVED),
        lambda p, o: {"new_max_seats": 112},
        frozenset({"support", "support_manager"}),
        executed,
    ),
    Case(
        "process-refund",
        "process-refund",
        refund_request,
        lambda p, o: {},
        frozenset({"deal_desk"}),
        executed,
    ),
    Case(
        "resolve-dispute",
        "resolve",
        routed_dispute,
        lambda p, o: {"resolution": "Credited 2 seats."},
        frozenset({"sales_owner"}),
        lambda p, o, u: fresh(o).status == Dispute.Status.RESOLVED,
    ),
    Case(
        "amend-subscription",
        "amend",
        live_subscription,
        amendment(channel="reseller"),
        frozenset({"sales_ops"}),
        lambda p, o, u: fresh(o).channel == Subscription.Channel.RESELLER,
    ),
    Case(
        "cancel-subscription",
        "cancel",
        live_subscription,
        lambda p, o: {"reason": "The customer left.", "ticket_url": TICKET},
        frozenset({"sales_ops"}),
        lambda p, o, u: fresh(o).status == Subscription.Status.CANCELLED,
    ),
    Case(
        "assign-owner",
        "assign-owner",
        lambda p: p.customer,
        lambda p, o: {"owner": p.users["sales_other"].pk},
        frozenset({"sales_ops"}),
        lambda p, o, u: fresh(o).owner == p.users["sales_other"],
    ),
]
CASE = {case.id: case for case in CASES}
EVERY_PAIR = [(case, role) for case in CASES for role in ROLES]
ALLOWED = [(case, role) for case, role in EVERY_PAIR if role in case.allowed]
DENIED = [(case, role) for case, role in EVERY_PAIR if role not in case.allowed]


def pair_id(value) -> str:
    return str(value)


# --- Helpers ---------------------------------------------------------------------------


def change_url(obj) -> str:
    return admin_url(type(obj), "change", obj.pk)


def do_url(obj, name: str) -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_do", args=[obj.pk, name])


# Every record an action could write, with its history; guardian's object permissions
# (account ownership) too.
WATCHED = [
    "subscriptions.Customer",
    "subscriptions.Namespace",
    "subscriptions.Subscription",
    "subscriptions.Reconciliation",
    "subscriptions.Suspension",
    "subscriptions.Invoice",
    "subscriptions.InvoiceLine",
    "approvals.ApprovalRequest",
    "approvals.ApprovalDecision",
    "approvals.Dispute",
]


def snapshot() -> dict:
    state = {}
    for label in WATCHED:
        model = apps.get_model(label)
        state[label] = list(model._base_manager.order_by("pk").values())
        history = model.history.model
        state[history._meta.label] = history.objects.count()
    state["guardian"] = list(UserObjectPermission.objects.order_by("pk").values())
    return state


def text(response) -> str:
    """The page as a reader sees it: entities such as &#x27; decoded."""
    return html.unescape(response.content.decode())


class _HiddenInputs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.values: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("type") == "hidden" and attrs.get("name"):
            self.values[attrs["name"]] = attrs.get("value") or ""


def hidden_inputs(response) -> dict[str, str]:
    parser = _HiddenInputs()
    parser.feed(response.content.decode())
    return parser.values


def walk(client, obj, name: str, data: dict) -> str:
    """GET the form, POST it for review, then confirm with what the confirmation page
    carries. Checks that the review changed nothing; returns the review page's text."""
    url = do_url(obj, name)
    form = client.get(url)
    assert form.status_code == 200
    assert 'value="Review"' in form.text
    for field in data:
        assert f'name="{field}"' in form.text

    before = snapshot()
    review = client.post(url, data)
    assert review.status_code == 200
    assert review.context["form"].errors == {}
    assert "Please confirm" in review.text
    assert "Nothing has changed yet" in review.text
    assert snapshot() == before

    carried = hidden_inputs(review)
    assert carried["confirmed"] == "yes"
    done = client.post(url, carried)
    assert done.status_code == 302
    assert done.url == change_url(obj)
    return text(review)


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


# --- One walk through each action: form -> confirmation with the effect -> done ----------


def test_support_disables_qsr_for_a_confirmed_bug(client, portal):
    sub = live_subscription(portal)
    support = portal.users["support"]
    client.force_login(support)

    review = walk(client, sub, "disable-qsr-for-bug", {"bug_url": BUG, "ticket_url": TICKET})

    assert f"goes from Enabled to disabled for the bug {BUG} (ticket {TICKET})" in review
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

    assert "goes from disabled for bug back to enabled" in review
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


def test_sales_owner_requests_a_pause_to_the_end_of_the_term(client, portal):
    sub = live_subscription(portal)
    client.force_login(portal.owner)

    review = walk(client, sub, "request-pause", why(until="")(portal, sub))

    last_day = sub.term_end - timedelta(days=1)
    assert f"QSR paused from approval until {last_day}" in review
    assert (
        "10 seats over the paid 110 would be charged USD 500.00 at the Q2 reconciliation on "
        f"{q2_date()}; the pause defers that charge."
    ) in review
    assert "At stake: 10 seats, USD 500.00. Needs approval by: Sales ops." in review
    request = ApprovalRequest.objects.get(subscription=sub)
    assert (request.kind, request.status, request.requester) == (
        Kind.QSR_PAUSE,
        Status.PENDING,
        portal.owner,
    )
    assert (request.pause_until, request.seats_at_stake, request.amount_at_stake) == (
        last_day,
        10,
        Decimal("500.00"),
    )
    assert request.ticket_url == TICKET
    assert fresh(sub).qsr_state == QsrState.ENABLED  # only once sales ops approve


def test_support_requests_a_max_seats_reset(client, portal):
    sub = live_subscription(portal)
    client.force_login(portal.users["support"])

    review = walk(client, sub, "request-reset", why(new_max_seats=112)(portal, sub))

    assert f"Max seats used of {sub.namespace} goes from 120 to 112" in review
    assert "(8 seats waived; 100 in use today)" in review
    assert (
        f"8 of them are above the 110 paid seats: USD 400.00 not charged at the Q2 "
        f"reconciliation on {q2_date()}."
    ) in review
    assert "At stake: 8 seats, USD 400.00. Needs approval by: Sales ops or support manager." in (
        review
    )
    request = ApprovalRequest.objects.get(subscription=sub)
    assert (request.kind, request.status, request.seats_at_stake, request.amount_at_stake) == (
        Kind.MAX_SEATS_RESET,
        Status.PENDING,
        8,
        Decimal("400.00"),
    )
    assert request.required_slots == [SMALL]
    assert fresh(sub.namespace).max_seats_used == 120  # support executes it once approved


def test_sales_owner_requests_a_free_period(client, portal):
    sub = live_subscription(portal)
    today = timezone.localdate()
    client.force_login(portal.owner)

    review = walk(
        client, sub, "request-free-period", why(start=today.isoformat(), days=10)(portal, sub)
    )

    # 110 seats x 100.00 prepaid, 10 days of the term.
    worth = billing.round_money(Decimal("11000.00") * 10 / sub.term_days, "USD")
    assert (
        f"10 free days from {today} for 110 seats, worth {billing.format_money(worth, 'USD')}: "
        f"the term end moves from {sub.term_end} to {sub.term_end + timedelta(days=10)} "
        "once approved."
    ) in review
    assert "Needs approval by: Sales ops." in review
    request = ApprovalRequest.objects.get(subscription=sub)
    assert (request.kind, request.free_from, request.free_days, request.amount_at_stake) == (
        Kind.FREE_PERIOD,
        today,
        10,
        worth,
    )
    assert fresh(sub).term_end == sub.term_end


def test_support_records_a_dispute_routed_to_the_sales_manager(client, portal):
    recon = processed_reconciliation(portal)
    support = portal.users["support"]
    client.force_login(support)

    review = walk(
        client,
        recon,
        "record-dispute",
        {"reason": "The customer says 10 seats were bots.", "ticket_url": TICKET},
    )

    assert f"A dispute of {recon} (USD 750.00) is routed to the account's sales manager, " in (
        review
    )
    assert "sales.owner, by email" in review
    assert f"Your ticket {TICKET} is recorded as closed (routed)" in review
    dispute = Dispute.objects.get(reconciliation=recon)
    assert (dispute.status, dispute.assigned_to, dispute.recorded_by) == (
        Dispute.Status.ROUTED,
        portal.owner,
        support,
    )
    assert dispute.ticket_closed_at is not None
    recon_after = fresh(recon)
    assert (recon_after.status, recon_after.amount) == (recon.status, recon.amount)


def test_sales_owner_requests_a_refund_with_its_reset(client, portal):
    recon = processed_reconciliation(portal)
    client.force_login(portal.owner)

    review = walk(client, recon, "request-refund", why(seats=4)(portal, recon))

    assert (
        "A credit memo of -USD 300.00 for 4 of the 10 seats reconciled in Q1 (USD 750.00 charged)."
    ) in review
    assert "Paid seats go from 110 to 106 when deal desk processes it." in review
    assert "At stake: 4 seats, USD 300.00. Needs approval by: Sales ops." in review
    refund = ApprovalRequest.objects.get(kind=Kind.QSR_REFUND)
    assert (refund.reconciliation, refund.seats_at_stake, refund.amount_at_stake) == (
        recon,
        4,
        Decimal("300.00"),
    )
    assert refund.linked_reset.kind == Kind.MAX_SEATS_RESET
    assert refund.linked_reset.status == Status.PENDING
    assert fresh(recon.subscription).seats == 110  # only once deal desk processes it


def test_sales_ops_gives_the_last_approval_of_a_small_reset(client, portal):
    request = reset_request(portal)
    sales_ops = portal.users["sales_ops"]
    client.force_login(sales_ops)

    review = walk(client, request, "approve", {"reason": "Fair."})

    assert (
        f"You approve {request} in the slot “Sales ops or support manager”: 8 seats, "
        "USD 400.00 at stake."
    ) in review
    assert "This is the last approval: the request goes to support to execute." in review
    request = fresh(request)
    assert request.status == Status.APPROVED
    decision = request.decisions.get()
    assert (decision.slot, decision.approver, decision.decision, decision.reason) == (
        SMALL,
        sales_ops,
        "approve",
        "Fair.",
    )


def test_executive_approval_of_a_large_reset_leaves_the_other_slots_waiting(client, portal):
    request = large_reset_request(portal)
    client.force_login(portal.users["executive"])

    review = walk(client, request, "approve", {"reason": ""})

    assert "in the slot “Executive”: 20 seats, USD 20,000.00 at stake." in review
    assert "Still waiting for: Sales ops, Finance." in review
    request = fresh(request)
    assert request.status == Status.PENDING
    assert list(request.decisions.values_list("slot", flat=True)) == ["executive"]


def test_sales_ops_rejects_a_request(client, portal):
    request = reset_request(portal)
    client.force_login(portal.users["sales_ops"])

    review = walk(client, request, "reject", {"reason": "The usage was real."})

    assert f"{request} is rejected and ends here; the requester is emailed your reason." in review
    request = fresh(request)
    assert request.status == Status.REJECTED
    assert request.decisions.get().reason == "The usage was real."


def test_the_requester_cancels_a_request(client, portal):
    request = reset_request(portal)
    client.force_login(portal.owner)

    review = walk(client, request, "cancel", {"reason": "Sorted out."})

    assert f"{request} is withdrawn; approvers need not act on it any more." in review
    assert fresh(request).status == Status.CANCELLED


def test_support_executes_an_approved_reset(client, portal):
    request = reset_request(portal, status=Status.APPROVED)
    namespace = request.subscription.namespace
    support = portal.users["support"]
    client.force_login(support)

    form = client.get(do_url(request, "execute-reset"))
    assert form.context["form"].initial == {"new_max_seats": 112}
    review = walk(client, request, "execute-reset", {"new_max_seats": 112})

    assert (
        f"Max seats used of {namespace} goes from 120 to 112 (100 in use; approval waives up "
        "to 8 seats)."
    ) in review
    assert f"Documented with the ticket {request.ticket_url}." in review
    assert fresh(namespace).max_seats_used == 112
    request = fresh(request)
    assert (request.status, request.reset_to, request.executed_by) == (
        Status.EXECUTED,
        112,
        support,
    )


def test_deal_desk_processes_an_approved_refund(client, portal):
    refund = refund_request(portal)
    recon, sub = refund.reconciliation, refund.subscription
    client.force_login(portal.users["deal_desk"])

    review = walk(client, refund, "process-refund", {})

    assert f"A credit memo of -USD 300.00 to Acme Corp for 4 seats of {recon}." in review
    assert "Paid seats go from 110 to 106." in review
    assert f"The linked max seats reset #{refund.linked_reset_id} is approved" in review
    line = InvoiceLine.objects.get(invoice__customer=portal.customer)
    assert (line.kind, line.quantity, line.amount, line.reconciliation) == (
        InvoiceLine.Kind.REFUND_CREDIT,
        4,
        Decimal("-300.00"),
        recon,
    )
    assert fresh(sub).seats == 106
    assert fresh(recon).refunded_seats == 4
    assert fresh(refund).status == Status.EXECUTED


def test_the_sales_manager_records_how_a_dispute_ended(client, portal):
    dispute = routed_dispute(portal)
    client.force_login(portal.owner)

    review = walk(client, dispute, "resolve", {"resolution": "Credited 2 seats."})

    assert f"{dispute} is marked resolved: Credited 2 seats." in review
    dispute = fresh(dispute)
    assert (dispute.status, dispute.resolution) == (Dispute.Status.RESOLVED, "Credited 2 seats.")
    assert dispute.resolved_at is not None


def test_sales_ops_hands_an_account_to_another_sales_manager(client, portal):
    other = portal.users["sales_other"]
    client.force_login(portal.users["sales_ops"])

    review = walk(client, portal.customer, "assign-owner", {"owner": other.pk})

    assert "Acme Corp is owned by sales.other (was sales.owner)" in review
    assert fresh(portal.customer).owner == other
    assert other.has_perm("subscriptions.own_customer", portal.customer)
    owner = type(portal.owner).objects.get(pk=portal.owner.pk)  # no cached permissions
    assert not owner.has_perm("subscriptions.own_customer", portal.customer)


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
    """Nobody to route it to: the confirmation page does not promise a routing."""
    recon = processed_reconciliation(portal)
    customer_assign_owner(customer=portal.customer, owner=None, actor=SYSTEM)
    client.force_login(portal.users["support"])
    data = CASE["record-dispute"].data(portal, recon)
    if confirmed:
        data["confirmed"] = "yes"
    before = snapshot()

    response = client.post(do_url(recon, "record-dispute"), data)

    assert response.status_code == 200
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


# --- Separation of duties, through the buttons ---------------------------------------------


def test_nobody_approves_their_own_request(client, portal):
    manager = portal.users["support_manager"]
    request = reset_request(portal, requester=manager)  # a small reset: their slot
    client.force_login(manager)
    before = snapshot()

    page = client.get(change_url(request))
    response = client.post(do_url(request, "approve"), {"reason": "", "confirmed": "yes"})

    assert do_url(request, "approve") not in page.text
    assert response.status_code == 403
    assert snapshot() == before


def test_nobody_fills_two_slots_of_one_request(client, portal, user_with_role):
    both = user_with_role("sales_ops", "executive", username="vp.and.ops")
    request = large_reset_request(portal)
    client.force_login(both)

    first = client.post(do_url(request, "approve"), {"reason": "", "confirmed": "yes"})
    before = snapshot()
    page = client.get(change_url(request))
    second = client.post(do_url(request, "approve"), {"reason": "", "confirmed": "yes"})

    assert first.status_code == 302
    assert do_url(request, "approve") not in page.text
    assert second.status_code == 403
    assert snapshot() == before
    assert request.decisions.filter(approver=both).count() == 1


def test_whoever_requested_a_reset_does_not_execute_it(client, portal):
    support = portal.users["support"]
    request = reset_request(portal, status=Status.APPROVED, requester=support)
    client.force_login(support)
    before = snapshot()

    page = client.get(change_url(request))
    response = client.post(
        do_url(request, "execute-reset"), {"new_max_seats": 112, "confirmed": "yes"}
    )

    assert do_url(request, "execute-reset") not in page.text
    assert response.status_code == 403
    assert snapshot() == before


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
    assert "“Disable QSR for a bug” does not apply" in text(response)
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
