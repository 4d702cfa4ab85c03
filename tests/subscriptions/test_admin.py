"""The subscriptions admin as billing operations use it: lists that stay fast, money with
its currency, search and filters, read-only service fields, an append-only ledger and
a history that says who changed what."""

from datetime import date
from decimal import Decimal

import pytest
from django.contrib import admin

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
            "Ineligible: reseller, purchase_order",
        ),
        (
            {"qsr_state": "disabled_for_bug", "qsr_bug_url": "https://bugs.example.com/42"},
            '<a href="https://bugs.example.com/42" rel="noopener">Disabled for bug</a>',
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


def test_posting_a_qsr_disable_or_seats_leaves_them_alone(admin_client):
    """Seats, price and QSR state move through services only: a forged edit form saves the
    plain fields and ignores those."""
    sub = SubscriptionFactory()
    form = {
        "customer": sub.customer_id,
        "namespace": sub.namespace_id,
        "plan": "ultimate",
        "status": sub.status,
        "seats": "120",
        "annual_unit_price": "100.00",
        "term_start": "2026-01-01",
        "term_end": "2027-01-01",
        "term_months": "12",
        "channel": "direct",
        "payment_method": "card",
        "program": "",
        "qsr_state": "disabled_for_bug",
        "qsr_bug_url": "https://bugs.example.com/1",
    }

    response = admin_client.post(url(Subscription, "change", sub.pk), form)

    assert response.status_code == 302
    sub.refresh_from_db()
    assert (sub.plan, sub.seats) == ("ultimate", 100)
    assert (sub.qsr_state, sub.qsr_bug_url) == ("enabled", "")


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
    from approvals.roles import ROLES
    from subscriptions.models import JobRun

    run = JobRun.objects.create(run_date="2026-04-01", counts={"renewal": {"renewed": 2}})
    for role in ROLES:
        client.force_login(user_with_role(role))
        page = client.get(url(JobRun, "change", run.pk))
        assert page.status_code == 200, role
        assert "renewed: 2" in page.content.decode()
        assert client.post(url(JobRun, "delete", run.pk), {"post": "yes"}).status_code == 403
    assert JobRun.objects.filter(pk=run.pk).exists()
