"""Account ownership in the admin (DOMAIN.md "Who uses the portal"): a sales manager sees
only the customers they own (django-guardian `own_customer`) and what hangs off them, by
every way into the admin: lists, change pages, search, history, autocomplete and action
URLs. Their lists cost the same number of queries whatever the number of rows. Every
other role sees every account. The approval queues list what waits for the user."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.apps import apps
from django.urls import reverse
from django.utils import timezone

from approvals.models import ApprovalDecision, ApprovalRequest, Dispute
from portal.policy import SYSTEM
from subscriptions.models import (
    Customer,
    Invoice,
    InvoiceLine,
    Namespace,
    QsrDisabledForBug,
    Reconciliation,
    SeatUsageReport,
    Subscription,
    Suspension,
)
from subscriptions.services.customers import customer_assign_owner
from tests.assertions import admin_url, assert_changelist_queries_constant, shown
from tests.factories import (
    ApprovalDecisionFactory,
    ApprovalRequestFactory,
    CustomerFactory,
    InvoiceLineFactory,
    ReconciliationFactory,
    SeatUsageReportFactory,
    SubscriptionFactory,
    SuspensionFactory,
)

pytestmark = pytest.mark.django_db

Kind = ApprovalRequest.Kind
Status = ApprovalRequest.Status

BUG = "https://bugs.example.com/issues/42"
TICKET = "https://tickets.example.com/1001"

# Every admin list that shows account records.
MODELS = [
    Customer,
    Namespace,
    SeatUsageReport,
    Subscription,
    QsrDisabledForBug,
    Reconciliation,
    Suspension,
    Invoice,
    InvoiceLine,
    ApprovalRequest,
    ApprovalDecision,
    Dispute,
]


def model_id(model) -> str:
    return model.__name__


def account(customer: Customer, *, support, sales_ops) -> dict:
    """One record of each kind on `customer`'s account. Its subscription has QSR disabled
    for a bug, so it is on that list too."""
    sub = SubscriptionFactory(
        customer=customer,
        qsr_state=Subscription.QsrState.DISABLED_FOR_BUG,
        qsr_bug_url=BUG,
        qsr_ticket_url=TICKET,
    )
    recon = ReconciliationFactory(
        subscription=sub,
        status=Reconciliation.Status.PROCESSED,
        seats_paid=100,
        max_seats_used=110,
        overage_seats=10,
        annual_unit_price=Decimal("100.00"),
        remaining_quarters=3,
        amount=Decimal("750.00"),
    )
    line = InvoiceLineFactory(invoice__subscription=sub, reconciliation=recon)
    request = ApprovalRequestFactory(
        kind=Kind.MAX_SEATS_RESET,
        requester=customer.owner,
        subscription=sub,
        seats_at_stake=20,
        amount_at_stake=Decimal("1000.00"),
        required_slots=["sales_ops", "executive"],
    )
    decision = ApprovalDecisionFactory(request=request, approver=sales_ops)
    dispute = Dispute.objects.create(
        reconciliation=recon,
        reason="Bots.",
        ticket_url=TICKET,
        recorded_by=support,
        assigned_to=customer.owner,
        ticket_closed_at=timezone.now(),
    )
    return {
        Customer: customer,
        Namespace: sub.namespace,
        SeatUsageReport: SeatUsageReportFactory(namespace=sub.namespace),
        Subscription: sub,
        QsrDisabledForBug: QsrDisabledForBug.objects.get(pk=sub.pk),
        Reconciliation: recon,
        Suspension: SuspensionFactory(subscription=sub),
        Invoice: line.invoice,
        InvoiceLine: line,
        ApprovalRequest: request,
        ApprovalDecision: decision,
        Dispute: dispute,
    }


@dataclass
class Accounts:
    me: object  # a sales manager
    them: object  # another sales manager
    support: object
    sales_ops: object
    mine: dict
    theirs: dict


@pytest.fixture
def accounts(user_with_role) -> Accounts:
    me = user_with_role("sales", username="sam.mine")
    them = user_with_role("sales", username="tess.theirs")
    support = user_with_role("support", username="sue.support")
    sales_ops = user_with_role("sales_ops", username="otto.ops")
    records = {}
    for owner, name in ((me, "Mine Ltd"), (them, "Theirs Inc")):
        customer = customer_assign_owner(
            customer=CustomerFactory(name=name), owner=owner, actor=SYSTEM
        )
        records[name] = account(customer, support=support, sales_ops=sales_ops)
    return Accounts(me, them, support, sales_ops, records["Mine Ltd"], records["Theirs Inc"])


def snapshot() -> dict:
    """Every account record and its history."""
    concrete = [m for m in MODELS if not m._meta.proxy]
    return {
        model._meta.label: list(model._base_manager.order_by("pk").values())
        for model in (*concrete, *(m.history.model for m in concrete))
    }


# --- A sales manager sees their own accounts only ------------------------------------------


@pytest.mark.parametrize("model", MODELS, ids=model_id)
def test_the_list_shows_only_the_accounts_i_own(client, accounts, model):
    client.force_login(accounts.me)

    response = client.get(admin_url(model))

    assert response.status_code == 200
    assert shown(response) == {accounts.mine[model].pk}
    assert "Theirs Inc" not in response.text
    assert "tess.theirs" not in response.text  # not even as a filter choice


@pytest.mark.parametrize("model", MODELS, ids=model_id)
def test_another_managers_record_is_not_found_by_its_id(client, accounts, model):
    client.force_login(accounts.me)
    missing = max(m.pk for m in model._base_manager.all()) + 1000

    mine = client.get(admin_url(model, "change", accounts.mine[model].pk))
    theirs = client.get(admin_url(model, "change", accounts.theirs[model].pk), follow=True)
    nothing = client.get(admin_url(model, "change", missing), follow=True)

    assert mine.status_code == 200
    # The admin answers as for an id that does not exist (its "does not exist" redirect to
    # the index): nothing says the record is there.
    assert (theirs.status_code, theirs.redirect_chain) == (
        nothing.status_code,
        nothing.redirect_chain,
    )
    assert theirs.redirect_chain[-1][0] == reverse("admin:index")
    assert "Theirs Inc" not in theirs.text
    assert mine.context["original"].pk == accounts.mine[model].pk


def search_term(records: dict, model) -> str:
    """The account's customer name, or for usage reports (searched by namespace) its
    namespace's name."""
    return records[Namespace if model is SeatUsageReport else Customer].name


@pytest.mark.parametrize("model", MODELS, ids=model_id)
def test_search_does_not_find_another_managers_account(client, accounts, model):
    client.force_login(accounts.me)

    theirs = client.get(admin_url(model), {"q": search_term(accounts.theirs, model)})
    mine = client.get(admin_url(model), {"q": search_term(accounts.mine, model)})

    assert theirs.status_code == mine.status_code == 200
    assert shown(theirs) == set()
    assert shown(mine) == {accounts.mine[model].pk}
    # Support finds both, so the search itself would have found theirs.
    client.force_login(accounts.support)
    found = client.get(admin_url(model), {"q": search_term(accounts.theirs, model)})
    assert shown(found) == {accounts.theirs[model].pk}


@pytest.mark.parametrize("model", [m for m in MODELS if m is not QsrDisabledForBug], ids=model_id)
def test_history_of_another_managers_record_is_not_found(client, accounts, model):
    client.force_login(accounts.me)
    theirs = accounts.theirs[model]
    version = theirs.history.latest().history_id

    assert client.get(admin_url(model, "history", accounts.mine[model].pk)).status_code == 200
    assert client.get(admin_url(model, "history", theirs.pk)).status_code == 404
    version_url = reverse(
        f"admin:{model._meta.app_label}_{model._meta.model_name}_simple_history",
        args=[theirs.pk, version],
    )
    assert client.get(version_url).status_code == 404


def test_history_of_the_bug_list_does_not_show_another_managers_subscription(client, accounts):
    client.force_login(accounts.me)

    response = client.get(
        admin_url(QsrDisabledForBug, "history", accounts.theirs[Subscription].pk), follow=True
    )

    assert response.redirect_chain[-1][0] == reverse("admin:index")
    assert "Theirs Inc" not in response.text


# The autocomplete endpoint serves any foreign key to a registered model with search
# fields, whether a form offers it or not; the remote model's admin queryset decides.
AUTOCOMPLETE = [
    ("subscriptions", "subscription", "customer", Customer),
    ("subscriptions", "subscription", "namespace", Namespace),
    ("subscriptions", "suspension", "subscription", Subscription),
    ("subscriptions", "invoiceline", "invoice", Invoice),
    ("approvals", "approvalrequest", "reconciliation", Reconciliation),
    ("approvals", "approvaldecision", "request", ApprovalRequest),
]


@pytest.mark.parametrize(
    ("app_label", "model_name", "field_name", "remote"),
    AUTOCOMPLETE,
    ids=[f"{m}.{f}" for _, m, f, _ in AUTOCOMPLETE],
)
def test_autocomplete_does_not_offer_another_managers_records(
    client, accounts, app_label, model_name, field_name, remote
):
    query = {"app_label": app_label, "model_name": model_name, "field_name": field_name}

    def found(user, term):
        client.force_login(user)
        response = client.get(reverse("admin:autocomplete"), {**query, "term": term})
        assert response.status_code == 200
        return {int(r["id"]) for r in response.json()["results"]}

    assert found(accounts.me, "Theirs Inc") == set()
    assert found(accounts.me, "") == {accounts.mine[remote].pk}
    # The search itself works: their owner finds it.
    assert found(accounts.them, "Theirs Inc") == {accounts.theirs[remote].pk}


ACTIONS = [
    (Subscription, "request-pause", {"until": ""}),
    (Subscription, "request-reset", {"new_max_seats": ""}),
    (Subscription, "request-free-period", {"start": "2026-12-01", "days": 10}),
    (Reconciliation, "request-refund", {"seats": 1}),
    (ApprovalRequest, "cancel", {}),
    (Dispute, "resolve", {"resolution": "Credited."}),
]


@pytest.mark.parametrize(("model", "name", "data"), ACTIONS, ids=[a[1] for a in ACTIONS])
def test_an_action_on_another_managers_record_is_not_found(client, accounts, model, name, data):
    theirs = accounts.theirs[model]
    url = reverse(
        f"admin:{model._meta.app_label}_{model._meta.model_name}_do", args=[theirs.pk, name]
    )
    data = {**data, "justification": "Please.", "ticket_url": TICKET, "confirmed": "yes"}
    client.force_login(accounts.me)
    before = snapshot()

    assert client.get(url).status_code == 404
    assert client.post(url, data).status_code == 404
    assert snapshot() == before


def test_a_sales_manager_without_accounts_sees_empty_lists(client, accounts, user_with_role):
    client.force_login(user_with_role("sales", username="nina.new"))

    for model in MODELS:
        response = client.get(admin_url(model))
        assert response.status_code == 200
        assert shown(response) == set(), model


def test_a_new_owner_sees_the_account_and_the_old_one_no_longer(client, accounts):
    customer = accounts.theirs[Customer]
    customer_assign_owner(customer=customer, owner=accounts.me, actor=accounts.sales_ops)
    client.force_login(accounts.me)

    assert shown(client.get(admin_url(Subscription))) == {
        accounts.mine[Subscription].pk,
        accounts.theirs[Subscription].pk,
    }
    client.force_login(accounts.them)
    assert shown(client.get(admin_url(Subscription))) == set()


# --- Lists stay fast -----------------------------------------------------------------------


def owned(accounts):
    """A new customer of `accounts.me`."""
    return customer_assign_owner(customer=CustomerFactory(), owner=accounts.me, actor=SYSTEM)


def owned_request(accounts, **kwargs) -> ApprovalRequest:
    return ApprovalRequestFactory(
        kind=Kind.MAX_SEATS_RESET,
        requester=accounts.me,
        subscription=SubscriptionFactory(customer=owned(accounts)),
        seats_at_stake=20,
        amount_at_stake=Decimal("1000.00"),
        required_slots=["sales_ops", "executive"],
        **kwargs,
    )


# One row on a new account of the sales manager each: a list fetching something per row
# (the customer, the ownership check) would show in the count.
MAKERS = {
    Customer: owned,
    Namespace: lambda a: SubscriptionFactory(customer=owned(a)).namespace,
    SeatUsageReport: lambda a: SeatUsageReportFactory(
        namespace=SubscriptionFactory(customer=owned(a)).namespace
    ),
    Subscription: lambda a: SubscriptionFactory(customer=owned(a)),
    QsrDisabledForBug: lambda a: SubscriptionFactory(
        customer=owned(a), qsr_state="disabled_for_bug", qsr_bug_url=BUG, qsr_ticket_url=TICKET
    ),
    Reconciliation: lambda a: ReconciliationFactory(
        subscription__customer=owned(a), status="processed", overage_seats=10
    ),
    Suspension: lambda a: SuspensionFactory(subscription__customer=owned(a)),
    Invoice: lambda a: InvoiceLineFactory(invoice__subscription__customer=owned(a)).invoice,
    InvoiceLine: lambda a: InvoiceLineFactory(invoice__subscription__customer=owned(a)),
    ApprovalRequest: lambda a: (
        ApprovalDecisionFactory(request=owned_request(a), approver=a.sales_ops).request
    ),
    ApprovalDecision: lambda a: ApprovalDecisionFactory(
        request=owned_request(a), approver=a.sales_ops
    ),
    Dispute: lambda a: Dispute.objects.create(
        reconciliation=ReconciliationFactory(
            subscription__customer=owned(a), status="processed", overage_seats=10
        ),
        reason="Bots.",
        ticket_url=TICKET,
        recorded_by=a.support,
        assigned_to=a.me,
        ticket_closed_at=timezone.now(),
    ),
}

# Queries per list page of a sales manager, whatever the number of rows: session, user,
# their model permissions (user, groups), their roles, then the page's own (count, full
# count, rows, date hierarchy, filters, decisions of the requests, ...), each narrowed by
# the same subquery on their object permissions.
PINNED_QUERIES = {
    Customer: 9,
    Namespace: 8,
    SeatUsageReport: 9,
    Subscription: 11,
    QsrDisabledForBug: 8,
    Reconciliation: 11,
    Suspension: 10,
    Invoice: 10,
    InvoiceLine: 10,
    ApprovalRequest: 11,
    ApprovalDecision: 11,
    Dispute: 8,
}


@pytest.mark.parametrize("model", MODELS, ids=model_id)
def test_a_sales_managers_list_costs_the_same_queries_for_3_rows_as_for_25(
    client, django_assert_max_num_queries, user_with_role, model
):
    me = user_with_role("sales", username="sam.mine")
    made = Accounts(
        me=me,
        them=None,
        support=user_with_role("support"),
        sales_ops=user_with_role("sales_ops"),
        mine={},
        theirs={},
    )
    client.force_login(me)

    assert_changelist_queries_constant(
        client,
        model,
        lambda: MAKERS[model](made),
        PINNED_QUERIES[model],
        django_assert_max_num_queries,
    )


# --- Everyone else sees every account ---------------------------------------------------------


@pytest.mark.parametrize("role", ["support", "sales_ops", "deal_desk", "executive", "finance"])
@pytest.mark.parametrize("model", MODELS, ids=model_id)
def test_other_roles_see_every_account(client, accounts, user_with_role, role, model):
    client.force_login(user_with_role(role))

    listing = client.get(admin_url(model))
    page = client.get(admin_url(model, "change", accounts.theirs[model].pk))

    assert shown(listing) == {accounts.mine[model].pk, accounts.theirs[model].pk}
    assert page.status_code == 200
    assert page.context["original"].pk == accounts.theirs[model].pk


def test_support_finds_any_customer_by_name(client, accounts):
    client.force_login(accounts.support)

    response = client.get(admin_url(Customer), {"q": "Theirs"})

    assert shown(response) == {accounts.theirs[Customer].pk}


# --- The approval queues -------------------------------------------------------------------


def queue(client, user, name: str) -> set[int]:
    client.force_login(user)
    response = client.get(admin_url(ApprovalRequest), {"queue": name})
    assert response.status_code == 200
    return shown(response)


def test_awaiting_me_lists_requests_with_an_open_sales_ops_slot_not_mine_nor_decided(
    client, accounts, user_with_role
):
    ops = accounts.sales_ops
    colleague = user_with_role("sales_ops", username="olga.ops")
    filer = accounts.me

    def request(**kwargs):
        return ApprovalRequestFactory(
            **{
                "requester": filer,
                "subscription": SubscriptionFactory(customer=accounts.mine[Customer]),
                "required_slots": ["sales_ops"],
                **kwargs,
            }
        )

    waiting = request()
    small_reset = request(
        kind=Kind.MAX_SEATS_RESET, required_slots=["sales_ops_or_support_manager"]
    )
    executive_decided = request(
        kind=Kind.MAX_SEATS_RESET, required_slots=["sales_ops", "executive"]
    )
    ApprovalDecisionFactory(
        request=executive_decided, slot="executive", approver=user_with_role("executive")
    )
    # Not for them: their own request, one they decided, a slot a colleague filled, an
    # executive-only slot, a request decided already.
    request(requester=ops)
    decided_by_me = request(kind=Kind.MAX_SEATS_RESET, required_slots=["sales_ops", "executive"])
    ApprovalDecisionFactory(request=decided_by_me, slot="sales_ops", approver=ops)
    filled = request(kind=Kind.FREE_PERIOD, free_days=40, required_slots=["sales_ops", "executive"])
    ApprovalDecisionFactory(request=filled, slot="sales_ops", approver=colleague)
    request(kind=Kind.FREE_PERIOD, free_days=40, required_slots=["executive"])
    request(status=Status.APPROVED)
    request(kind=Kind.MAX_SEATS_RESET, status=Status.REJECTED)

    listed = queue(client, ops, "awaiting_me")

    assert listed == {waiting.pk, small_reset.pk, executive_decided.pk}
    # What the queue lists is what the buttons offer: each one has "Approve".
    for pk in listed:
        page = client.get(admin_url(ApprovalRequest, "change", pk))
        assert reverse("admin:approvals_approvalrequest_do", args=[pk, "approve"]) in page.text


def test_to_execute_lists_refunds_whose_reset_is_approved_for_deal_desk(
    client, accounts, user_with_role
):
    deal_desk = user_with_role("deal_desk", username="dina.desk")

    def refund(*, status, reset_status):
        sub = SubscriptionFactory(customer=accounts.mine[Customer])
        recon = ReconciliationFactory(
            subscription=sub, status="processed", overage_seats=10, refunded_seats=0
        )
        reset = ApprovalRequestFactory(
            kind=Kind.MAX_SEATS_RESET,
            requester=accounts.me,
            subscription=sub,
            status=reset_status,
            **(
                {"executed_by": accounts.support, "executed_at": timezone.now()}
                if reset_status == Status.EXECUTED
                else {}
            ),
        )
        return ApprovalRequestFactory(
            kind=Kind.QSR_REFUND,
            requester=accounts.me,
            subscription=sub,
            reconciliation=recon,
            linked_reset=reset,
            status=status,
        )

    ready = refund(status=Status.APPROVED, reset_status=Status.APPROVED)
    reset_done = refund(status=Status.APPROVED, reset_status=Status.EXECUTED)
    # Not yet: the reset still waits for approval, or the refund itself does.
    refund(status=Status.APPROVED, reset_status=Status.PENDING)
    refund(status=Status.PENDING, reset_status=Status.APPROVED)
    approved_reset = ready.linked_reset  # support's to execute, not deal desk's

    listed = queue(client, deal_desk, "to_execute")

    assert listed == {ready.pk, reset_done.pk}
    for pk in listed:
        page = client.get(admin_url(ApprovalRequest, "change", pk))
        assert reverse("admin:approvals_approvalrequest_do", args=[pk, "process-refund"]) in (
            page.text
        )
    # Support's queue holds the approved resets instead.
    assert approved_reset.pk in queue(client, accounts.support, "to_execute")
    assert ready.pk not in queue(client, accounts.support, "to_execute")


@pytest.mark.parametrize("role", ["deal_desk", "support", "sales", "finance"])
def test_every_role_can_open_every_queue(client, accounts, user_with_role, role):
    user = user_with_role(role)
    if role == "sales":
        customer_assign_owner(customer=accounts.mine[Customer], owner=user, actor=SYSTEM)

    for name in ("awaiting_me", "to_execute", "mine"):
        queue(client, user, name)


def test_a_sales_managers_queue_holds_only_their_accounts(client, accounts):
    assert queue(client, accounts.me, "mine") == {accounts.mine[ApprovalRequest].pk}
    assert queue(client, accounts.them, "mine") == {accounts.theirs[ApprovalRequest].pk}


def test_models_cover_every_registered_account_list():
    from django.contrib import admin

    listed = {
        m for m in admin.site._registry if m._meta.app_label in ("subscriptions", "approvals")
    }
    not_account_records = {apps.get_model("subscriptions", "JobRun")}

    assert listed - not_account_records == set(MODELS)
