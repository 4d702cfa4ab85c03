"""The subscriptions admin as billing operations use it: lists that stay fast, money with
its currency, search and filters, read-only service fields, an append-only ledger and
a history that says who changed what."""

import html
from datetime import date, timedelta
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.contrib import admin
from django.utils import timezone

from portal import policy
from subscriptions import billing
from subscriptions.models import (
    Customer,
    Invoice,
    InvoiceLine,
    Namespace,
    Reconciliation,
    SeatUsageReport,
    Subscription,
    Suspension,
)
from subscriptions.services.lifecycle import subscription_amend
from tests.assertions import admin_url as url
from tests.assertions import assert_changelist_queries_constant, shown
from tests.factories import (
    CustomerFactory,
    InvoiceFactory,
    InvoiceLineFactory,
    NamespaceFactory,
    ReconciliationFactory,
    SeatUsageReportFactory,
    SelfManagedNamespaceFactory,
    SubscriptionFactory,
    SuspensionFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

TICKET = "https://tickets.example.com/1001"


def processed_reconciliation(**kwargs):
    return ReconciliationFactory(
        status=Reconciliation.Status.PROCESSED,
        seats_paid=100,
        max_seats_used=110,
        overage_seats=10,
        annual_unit_price=Decimal("100.00"),
        remaining_quarters=3,
        amount=Decimal("750.00"),
        **kwargs,
    )


# Each maker writes one row with its own customer, namespace and subscription, so a
# changelist that fetched related rows one by one would show it in the query count.
MAKERS = {
    Customer: lambda: CustomerFactory(owner=UserFactory()),
    Namespace: lambda: SelfManagedNamespaceFactory(seats_in_use=90, max_seats_used=110),
    SeatUsageReport: SeatUsageReportFactory,
    Subscription: lambda: SubscriptionFactory(
        qsr_state="paused", qsr_paused_until=date(2026, 9, 1)
    ),
    Reconciliation: processed_reconciliation,
    Suspension: SuspensionFactory,
    Invoice: lambda: InvoiceLineFactory().invoice,
    InvoiceLine: InvoiceLineFactory,
}

# Queries per changelist page as a superuser, whatever the number of rows: session,
# user, then the page's own (count, rows, date hierarchy, related-only filter, ...).
PINNED_QUERIES = {
    Customer: 6,
    Namespace: 5,
    SeatUsageReport: 6,
    Subscription: 8,
    Reconciliation: 8,
    Suspension: 7,
    Invoice: 7,
    InvoiceLine: 7,
}


@pytest.mark.parametrize("model", list(MAKERS), ids=lambda m: m.__name__)
def test_changelist_queries_do_not_grow_with_rows(
    admin_client, django_assert_max_num_queries, model
):
    assert_changelist_queries_constant(
        admin_client, model, MAKERS[model], PINNED_QUERIES[model], django_assert_max_num_queries
    )


@pytest.mark.parametrize(
    ("make", "money"),
    [
        (lambda: SubscriptionFactory(annual_unit_price=Decimal("1200.00")), "USD 1,200.00"),
        (processed_reconciliation, "USD 750.00"),
        (lambda: InvoiceLineFactory().invoice, "USD 750.00"),
        (InvoiceLineFactory, "USD 750.00"),
        (
            lambda: InvoiceLineFactory(
                invoice__subscription__customer__currency="JPY",
                unit_price=Decimal("1400"),
                amount=Decimal("14000"),
            ),
            "JPY 14,000",
        ),
    ],
    ids=["subscription", "reconciliation", "invoice", "invoice-line", "jpy-line"],
)
def test_list_and_detail_show_money_with_its_currency(admin_client, make, money):
    obj = make()
    model = type(obj)

    listing = admin_client.get(url(model))
    detail = admin_client.get(url(model, "change", obj.pk))

    assert listing.status_code == detail.status_code == 200
    assert money in listing.text
    assert money in detail.text


@pytest.mark.parametrize("model", list(MAKERS), ids=lambda m: m.__name__)
def test_change_page_opens(admin_client, model):
    obj = MAKERS[model]()

    response = admin_client.get(url(model, "change", obj.pk))

    assert response.status_code == 200
    assert str(obj) in response.text


def test_invoice_total_is_the_sum_of_its_lines_and_credit_memos_are_marked(admin_client):
    invoice = InvoiceLineFactory(amount=Decimal("750.00")).invoice
    InvoiceLineFactory(invoice=invoice, amount=Decimal("250.00"))
    memo = InvoiceLineFactory(
        kind=InvoiceLine.Kind.PRORATION_CREDIT,
        unit_price=Decimal("0"),
        amount=Decimal("-821.92"),
    ).invoice

    listing = admin_client.get(url(Invoice))
    memos = admin_client.get(url(Invoice), {"type": "credit_memo"})
    memo_page = admin_client.get(url(Invoice, "change", memo.pk))

    assert "USD 1,000.00" in listing.text
    assert "USD -821.92" in listing.text
    assert shown(memos) == {memo.pk}
    assert "USD -821.92" in memo_page.text
    assert "Proration credit" in memo_page.text  # the lines, inline


@pytest.mark.parametrize(
    ("subscription", "status"),
    [
        ({}, "Enabled"),
        (
            {"channel": "reseller", "payment_method": "purchase_order"},
            "Ineligible: bought through a reseller, paid by purchase order",
        ),
        (
            {"qsr_state": "disabled_for_bug", "qsr_bug_url": "https://bugs.example.com/42"},
            '<a href="https://bugs.example.com/42" rel="noopener">Disabled for a bug</a>',
        ),
        (
            {"qsr_state": "paused", "qsr_paused_until": date(2026, 12, 31)},
            "Paused until 2026-12-31",
        ),
    ],
    ids=["enabled", "ineligible", "disabled-for-bug", "paused"],
)
def test_subscription_list_shows_qsr_status(admin_client, subscription, status):
    SubscriptionFactory(**subscription)

    assert status in admin_client.get(url(Subscription)).text


@pytest.mark.parametrize(
    ("make", "term"),
    [
        (lambda name: CustomerFactory(name=name), "Acme"),
        (lambda name: CustomerFactory(billing_email=f"{name}@acme.example"), "ap@acme"),
        (lambda name: SelfManagedNamespaceFactory(license_key=f"LIC-{name}"), "LIC-Acme"),
        (lambda name: SeatUsageReportFactory(namespace__name=name), "Acme"),
        (lambda name: SubscriptionFactory(customer__billing_email=f"{name}@x.example"), "Acme"),
        (lambda name: processed_reconciliation(subscription__namespace__name=name), "Acme"),
        (lambda name: SuspensionFactory(ticket_url=f"https://t.example/{name}"), "Acme"),
        (lambda name: InvoiceFactory(subscription__customer__name=name), "Acme"),
        (lambda name: InvoiceLineFactory(description=f"Q1 overage {name}"), "Acme"),
    ],
    ids=[
        "customer-name",
        "customer-email",
        "namespace-license",
        "usage-namespace",
        "subscription-email",
        "reconciliation-namespace",
        "suspension-ticket",
        "invoice-customer",
        "line-description",
    ],
)
def test_search_finds_the_matching_row_only(admin_client, make, term):
    match = make("Acme-ap")
    other = make("Globex-ar")

    response = admin_client.get(url(type(match)), {"q": term})

    assert match.pk in shown(response)
    assert other.pk not in shown(response)


def test_invoice_search_by_number(admin_client):
    wanted, other = InvoiceFactory(), InvoiceFactory()

    response = admin_client.get(url(Invoice), {"q": wanted.number})

    assert shown(response) == {wanted.pk}
    assert other.pk not in shown(response)


@pytest.mark.parametrize(
    ("make_match", "make_other", "query"),
    [
        (
            lambda: CustomerFactory(currency="EUR"),
            lambda: CustomerFactory(currency="USD"),
            {"currency__exact": "EUR"},
        ),
        (SelfManagedNamespaceFactory, NamespaceFactory, {"kind__exact": "self_managed"}),
        (
            lambda: SeatUsageReportFactory(namespace=SelfManagedNamespaceFactory()),
            SeatUsageReportFactory,
            {"namespace__kind__exact": "self_managed"},
        ),
        (
            lambda: SubscriptionFactory(qsr_state="paused", qsr_paused_until=date(2026, 9, 1)),
            SubscriptionFactory,
            {"qsr_state__exact": "paused"},
        ),
        (
            lambda: SubscriptionFactory(channel="reseller"),
            SubscriptionFactory,
            {"channel__exact": "reseller"},
        ),
        (
            lambda: ReconciliationFactory(status="skipped", skip_reason="paused"),
            processed_reconciliation,
            {"skip_reason__exact": "paused"},
        ),
        (
            lambda: ReconciliationFactory(quarter=2),
            ReconciliationFactory,
            {"quarter": "2"},
        ),
        (
            lambda: SuspensionFactory(mode="freeze", extend_term=True),
            SuspensionFactory,
            {"mode__exact": "freeze"},
        ),
        (
            lambda: InvoiceLineFactory(kind="recurring"),
            InvoiceLineFactory,
            {"kind__exact": "recurring"},
        ),
        (
            lambda: InvoiceFactory(subscription__customer__currency="GBP"),
            InvoiceFactory,
            {"currency__exact": "GBP"},
        ),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else "",
)
def test_filter_keeps_the_matching_row_only(admin_client, make_match, make_other, query):
    match, other = make_match(), make_other()

    response = admin_client.get(url(type(match)), query)

    assert response.status_code == 200
    assert match.pk in shown(response)
    assert other.pk not in shown(response)


@pytest.mark.parametrize("model", list(MAKERS), ids=lambda m: m.__name__)
def test_bulk_delete_is_not_offered(admin_client, rf, admin_user, model):
    MAKERS[model]()
    request = rf.get(url(model))
    request.user = admin_user

    assert "delete_selected" not in admin.site._registry[model].get_actions(request)
    assert 'value="delete_selected"' not in admin_client.get(url(model)).text


@pytest.mark.parametrize(
    ("make", "fields"),
    [
        (NamespaceFactory, {"seats_in_use", "max_seats_used", "max_seats_used_changed_at"}),
        (
            SubscriptionFactory,
            {
                "customer",
                "namespace",
                "status",
                "plan",
                "seats",
                "annual_unit_price",
                "currency",
                "term_start",
                "term_end",
                "term_months",
                "channel",
                "payment_method",
                "program",
                "offline_license",
                "qsr_state",
                "qsr_paused_until",
                "qsr_bug_url",
                "qsr_ticket_url",
                "qsr_changed_by",
                "qsr_changed_at",
            },
        ),
        (SuspensionFactory, {"status"}),
    ],
    ids=["namespace", "subscription", "suspension"],
)
def test_service_owned_fields_cannot_be_edited(admin_client, make, fields):
    obj = make()

    form = admin_client.get(url(type(obj), "change", obj.pk)).context["adminform"].form

    assert fields.isdisjoint(form.fields)


def test_a_superuser_cannot_edit_a_subscription_on_its_form(admin_client):
    """The issue's case: a superuser set channel, term end and status on the change form,
    with no approval and no money preview, and QSR went from "Ineligible: reseller" to
    "Enabled". The form is read-only now, superusers included: a forged POST is refused
    and changes nothing; the actions are the way to amend or cancel."""
    sub = SubscriptionFactory(channel="reseller")
    before = Subscription.objects.filter(pk=sub.pk).values().get()
    form = {
        "customer": sub.customer_id,
        "namespace": sub.namespace_id,
        "plan": "ultimate",
        "status": "cancelled",
        "seats": "120",
        "annual_unit_price": "100.00",
        "currency": "USD",
        "term_start": "2026-01-01",
        "term_end": "2027-06-01",
        "term_months": "12",
        "channel": "direct",
        "payment_method": "card",
        "program": "",
        "qsr_state": "disabled_for_bug",
        "qsr_bug_url": "https://bugs.example.com/1",
        "_save": "Save",
    }

    page = admin_client.get(url(Subscription, "change", sub.pk))
    response = admin_client.post(url(Subscription, "change", sub.pk), form)

    assert page.status_code == 200
    assert page.context["adminform"].form.fields == {}
    assert 'name="_save"' not in page.text
    assert "Ineligible: bought through a reseller" in page.text
    for action in ("amend", "cancel"):
        assert url(Subscription, "do", sub.pk, action) in page.text
    assert response.status_code == 403
    assert Subscription.objects.filter(pk=sub.pk).values().get() == before
    assert sub.history.count() == 1


def test_a_superuser_may_still_add_a_subscription(admin_client):
    customer = CustomerFactory()
    namespace = NamespaceFactory(customer=customer)

    response = admin_client.post(
        url(Subscription, "add"),
        {
            "customer": customer.pk,
            "namespace": namespace.pk,
            "plan": "premium",
            "status": "active",
            "seats": "10",
            "annual_unit_price": "100.00",
            "currency": "USD",
            "term_start": "2026-01-01",
            "term_end": "2027-01-01",
            "term_months": "12",
            "channel": "direct",
            "payment_method": "card",
            "program": "",
        },
    )

    assert response.status_code == 302
    created = Subscription.objects.get(namespace=namespace)
    assert (created.seats, created.qsr_state) == (10, "enabled")


@pytest.mark.parametrize("model", [Invoice, InvoiceLine, Reconciliation], ids=lambda m: m.__name__)
def test_ledger_is_view_only_even_for_superusers(admin_client, model):
    obj = MAKERS[model]()

    assert admin_client.get(url(model, "add")).status_code == 403
    assert admin_client.get(url(model, "delete", obj.pk)).status_code == 403
    assert admin_client.post(url(model, "change", obj.pk), {}).status_code == 403
    page = admin_client.get(url(model, "change", obj.pk))
    assert page.status_code == 200
    assert 'name="_save"' not in page.text


def test_history_shows_who_changed_a_customer_and_why(admin_client, admin_user):
    customer = CustomerFactory(billing_email="old@example.com")

    response = admin_client.post(
        url(Customer, "change", customer.pk),
        {"name": customer.name, "billing_email": "ap@example.com", "owner": ""},
    )
    history = admin_client.get(url(Customer, "history", customer.pk))

    assert response.status_code == 302
    assert history.status_code == 200
    assert admin_user.username in history.text
    assert "Admin edit: billing_email" in history.text
    assert "ap@example.com" in history.text


def test_an_old_version_cannot_be_restored(admin_client):
    namespace = NamespaceFactory(seats_in_use=5, max_seats_used=5)
    old = namespace.history.earliest()
    Namespace.objects.filter(pk=namespace.pk).update(seats_in_use=50, max_seats_used=80)
    version = url(Namespace, "simple_history", namespace.pk, old.history_id)

    assert admin_client.get(version).status_code == 200
    assert admin_client.post(version, {}).status_code == 403
    namespace.refresh_from_db()
    assert (namespace.seats_in_use, namespace.max_seats_used) == (50, 80)


def test_customer_currency_is_fixed_once_created(admin_client):
    customer = CustomerFactory(currency="EUR")

    admin_client.post(
        url(Customer, "change", customer.pk),
        {"name": customer.name, "billing_email": customer.billing_email, "currency": "USD"},
    )

    customer.refresh_from_db()
    assert customer.currency == "EUR"


@pytest.mark.parametrize("model", list(MAKERS), ids=lambda m: m.__name__)
def test_finance_can_look_but_not_add(client, user_with_role, model):
    obj = MAKERS[model]()
    client.force_login(user_with_role("finance"))

    assert client.get(url(model)).status_code == 200
    assert client.get(url(model, "change", obj.pk)).status_code == 200
    assert client.get(url(model, "history", obj.pk)).status_code == 200
    assert client.get(url(model, "add")).status_code == 403


@pytest.mark.django_db
def test_every_role_can_read_the_job_runs_but_not_change_them(client, user_with_role):
    from portal.roles import ROLES
    from subscriptions.models import JobRun

    run = JobRun.objects.create(run_date="2026-04-01", counts={"renewal": {"renewed": 2}})
    for role in ROLES:
        client.force_login(user_with_role(role))
        page = client.get(url(JobRun, "change", run.pk))
        assert page.status_code == 200, role
        assert "renewed: 2" in page.content.decode()
        assert client.post(url(JobRun, "delete", run.pk), {"post": "yes"}).status_code == 403
    assert JobRun.objects.filter(pk=run.pk).exists()


# --- Amend and cancel through the actions ------------------------------------------------


class _HiddenInputs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.values: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("type") == "hidden" and attrs.get("name"):
            self.values[attrs["name"]] = attrs.get("value") or ""


def carried(response) -> dict[str, str]:
    """What the confirmation page posts back when confirmed."""
    parser = _HiddenInputs()
    parser.feed(response.content.decode())
    return parser.values


def page_text(response) -> str:
    return html.unescape(response.content.decode())


def stored(*objs) -> list[dict]:
    return [type(o).objects.filter(pk=o.pk).values().get() for o in objs]


def on_q2_today(**kwargs) -> Subscription:
    """100 seats at 100.00 a year whose term started four months ago (the next QSR
    charge is Q2, two quarters left), 110 seats used at most: 10 over."""
    start = billing.add_months(timezone.localdate().replace(day=1), -4)
    return SubscriptionFactory(
        term_start=start,
        term_end=billing.add_months(start, 12),
        namespace__seats_in_use=105,
        namespace__max_seats_used=110,
        **kwargs,
    )


def amend_form(client, sub, **changes) -> dict:
    """The amend form as its page fills it in, with `changes`, a reason and a ticket."""
    form = client.get(url(Subscription, "do", sub.pk, "amend"))
    assert form.status_code == 200
    data = {k: ("" if v is None else v) for k, v in form.context["form"].initial.items()}
    return {**data, **changes, "reason": "Bought direct now.", "ticket_url": TICKET}


def test_sales_ops_amends_the_channel_after_seeing_what_it_does_to_money(client, user_with_role):
    ops = user_with_role("sales_ops")
    sub = on_q2_today(channel="reseller")
    q2 = billing.reconciliation_dates(sub.term_start)[1]
    client.force_login(ops)
    amend = url(Subscription, "do", sub.pk, "amend")
    before = stored(sub)

    review = client.post(amend, amend_form(client, sub, channel="direct"))

    assert review.status_code == 200
    assert review.context["form"].errors == {}
    shown_text = page_text(review)
    assert "Please confirm" in shown_text
    assert "Channel: Reseller / channel → Direct." in shown_text
    assert "QSR: Ineligible: bought through a reseller → Enabled." in shown_text
    assert "USD 10,000.00 (unchanged)." in shown_text
    assert (
        f"the annual true-up at the term end ({sub.term_end}), USD 1,000.00 → 10 over 100 "
        f"paid, the Q2 reconciliation on {q2}, USD 500.00." in shown_text
    )
    assert stored(sub) == before  # nothing changed yet

    done = client.post(amend, carried(review))

    assert done.status_code == 302
    sub.refresh_from_db()
    assert sub.channel == "direct"
    latest = sub.history.latest()
    assert latest.history_user == ops
    assert latest.history_change_reason == f"amended: Bought direct now. · {TICKET}"
    assert "Enabled" in client.get(url(Subscription, "change", sub.pk)).text


def test_the_reverse_amendment_shows_qsr_lost_and_the_charge(client, user_with_role):
    sub = on_q2_today()
    client.force_login(user_with_role("sales_ops"))

    review = client.post(
        url(Subscription, "do", sub.pk, "amend"),
        amend_form(client, sub, channel="reseller", seats="120", annual_unit_price="110.00"),
    )

    shown_text = page_text(review)
    assert "QSR: Enabled → Ineligible: bought through a reseller." in shown_text
    assert (
        "Recurring charge (seats × price a year, invoiced at each renewal): USD 10,000.00 → "
        "USD 13,200.00." in shown_text
    )
    assert "0 over 120 paid, the annual true-up" in shown_text


def test_an_amend_form_with_nothing_changed_says_so_and_writes_nothing(client, user_with_role):
    sub = on_q2_today()
    client.force_login(user_with_role("sales_ops"))
    before = stored(sub)

    response = client.post(
        url(Subscription, "do", sub.pk, "amend"), {**amend_form(client, sub), "confirmed": "yes"}
    )

    assert response.status_code == 200
    assert "Nothing to change" in page_text(response)
    assert stored(sub) == before
    assert sub.history.count() == 1


def test_an_amend_form_older_than_the_subscription_is_refused(client, user_with_role):
    """Values shown before someone else's change would quietly undo it."""
    sub = on_q2_today()
    client.force_login(user_with_role("sales_ops"))
    data = amend_form(client, sub, channel="reseller")
    subscription_amend(
        subscription=sub, actor=policy.SYSTEM, reason="Seats fixed.", ticket_url=TICKET, seats=130
    )

    response = client.post(url(Subscription, "do", sub.pk, "amend"), {**data, "confirmed": "yes"})

    assert response.status_code == 200
    assert "has changed since this form was opened" in page_text(response)
    sub.refresh_from_db()
    assert (sub.seats, sub.channel) == (130, "direct")


def test_sales_ops_cancels_a_subscription_and_its_scheduled_suspension(client, user_with_role):
    ops = user_with_role("sales_ops")
    sub = on_q2_today()
    start = billing.reconciliation_dates(sub.term_start)[2]
    suspension = SuspensionFactory(
        subscription=sub, suspend_date=start, resume_date=start + timedelta(days=10)
    )
    client.force_login(ops)
    cancel = url(Subscription, "do", sub.pk, "cancel")
    data = {"reason": "The customer left.", "ticket_url": TICKET}

    review = client.post(cancel, data)

    shown_text = page_text(review)
    assert "Status: Active → Cancelled." in shown_text
    assert "USD 10,000.00 a year is not invoiced again" in shown_text
    assert f"from {start} to {start + timedelta(days=10)} is cancelled" in shown_text
    assert client.post(cancel, carried(review)).status_code == 302
    sub.refresh_from_db()
    suspension.refresh_from_db()
    assert (sub.status, suspension.status) == ("cancelled", "cancelled")
    assert suspension.history.latest().history_user == ops
    page = client.get(url(Subscription, "change", sub.pk))
    assert url(Subscription, "do", sub.pk, "amend") not in page.text
    refused = client.post(
        url(Subscription, "do", sub.pk, "amend"),
        {**data, "channel": "reseller", "confirmed": "yes"},
        follow=True,
    )
    assert "does not apply" in page_text(refused)
    sub.refresh_from_db()
    assert (sub.status, sub.channel) == ("cancelled", "direct")


@pytest.mark.parametrize(
    "role", ["support", "support_manager", "deal_desk", "executive", "finance"]
)
@pytest.mark.parametrize("action", ["amend", "cancel"])
def test_a_role_without_the_action_gets_403_and_nothing_changes(
    client, admin_client, user_with_role, role, action
):
    sub = on_q2_today(channel="reseller")
    suspension = SuspensionFactory(
        subscription=sub,
        suspend_date=sub.term_end - timedelta(30),
        resume_date=sub.term_end - timedelta(20),
    )
    data = {
        **amend_form(admin_client, sub, channel="direct"),
        "confirmed": "yes",
    }
    before = stored(sub, suspension)
    client.force_login(user_with_role(role))
    do = url(Subscription, "do", sub.pk, action)

    page = client.get(url(Subscription, "change", sub.pk))
    assert page.status_code == 200
    assert do not in page.text
    assert client.get(do).status_code == 403
    assert client.post(do, data).status_code == 403

    assert stored(sub, suspension) == before
    assert sub.history.count() == 1
