"""The action buttons of the admin, for the tests that press them: the people of DOMAIN.md
"Who uses the portal", records in the state each action applies to, every action with
the roles that may use it (`CASES`), and the walk form -> confirmation page -> done."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from html.parser import HTMLParser

from django.apps import apps
from django.urls import reverse
from django.utils import timezone
from guardian.models import UserObjectPermission

from approvals.models import ApprovalDecision, ApprovalRequest, Dispute
from subscriptions import billing
from subscriptions.models import Customer, Reconciliation, Subscription
from subscriptions.services.lifecycle import AMENDABLE
from tests.approvals.helpers import processed_q1
from tests.assertions import admin_url
from tests.factories import (
    ApprovalDecisionFactory,
    ApprovalRequestFactory,
    SubscriptionFactory,
)

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
    return processed_q1(subscription or live_subscription(portal))


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
    if name in ("approve", "reject"):  # a decision leads on to the approver's queue
        assert done.url.startswith(admin_url(ApprovalRequest))
    else:
        assert done.url == change_url(obj)
    return text(review)
