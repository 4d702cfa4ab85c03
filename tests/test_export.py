"""CSV exports of the reconciliations, invoices (with their lines) and approval requests
(refunds included): what finance, deal desk and sales ops see in the list, in words a
spreadsheet reads, streamed, and safe to open in a spreadsheet."""

import csv
import io
from datetime import date
from decimal import Decimal

import pytest
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from approvals.models import ApprovalRequest
from portal.policy import SYSTEM
from subscriptions.models import Invoice, InvoiceLine, Reconciliation
from subscriptions.services.customers import customer_assign_owner
from tests.assertions import admin_url
from tests.factories import (
    ApprovalRequestFactory,
    CustomerFactory,
    InvoiceFactory,
    InvoiceLineFactory,
    ReconciliationFactory,
    SubscriptionFactory,
)

pytestmark = pytest.mark.django_db


def export_url(model, query: str = "") -> str:
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_export") + query


def rows(response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.content[:300]
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def processed(**kwargs) -> Reconciliation:
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


@pytest.fixture
def finance(client, user_with_role):
    client.force_login(user_with_role("finance"))
    return client


def test_reconciliations_export_in_words_with_money_as_decimals(finance):
    rec = processed(
        subscription__customer__name="Acme Corp", subscription__namespace__name="acme-group"
    )

    response = finance.get(export_url(Reconciliation))

    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="reconciliations-')
    assert rows(response) == [
        {
            "Reconciliation": str(rec.pk),
            "Customer": "Acme Corp",
            "Namespace": "acme-group",
            "Subscription": str(rec.subscription_id),
            "Term start": "2026-01-01",
            "Quarter": "1",
            "Reconciliation date": "2026-04-01",
            "Notify date": "2026-04-01",
            "Invoice date": "2026-04-08",
            "Status": "Processed",
            "Skip reason": "",
            "Seats paid": "100",
            "Max seats used": "110",
            "Overage seats": "10",
            "Refunded seats": "0",
            "Price per seat a year": "100.00",
            "Amount": "750.00",
            "Currency": "USD",
            "Failure reason": "",
        }
    ]


def test_invoices_export_one_row_per_line_with_the_invoice_repeated(finance):
    invoice = InvoiceFactory(subscription__customer__name="Acme Corp")
    charge = InvoiceLineFactory(invoice=invoice, description="Q1 overage")
    credit = InvoiceLineFactory(
        invoice=invoice,
        kind=InvoiceLine.Kind.REFUND_CREDIT,
        description="Refund of Q1",
        amount=Decimal("-1000.00"),
    )
    empty = InvoiceFactory(issue_date=date(2026, 1, 1))

    exported = rows(finance.get(export_url(Invoice)))

    assert [(r["Invoice"], r["Line"], r["Amount"]) for r in exported] == [
        (invoice.number, str(charge.pk), "750.00"),
        (invoice.number, str(credit.pk), "-1000.00"),  # a negative amount stays a number
        (empty.number, "", ""),
    ]
    first = exported[0]
    assert first["Customer"] == "Acme Corp"
    assert first["Issue date"] == "2026-04-08"
    assert first["Invoice total"] == "-250.00"
    assert first["Credit memo"] == "yes"
    assert first["Kind"] == "QSR overage"
    assert first["Unit price"] == "75.00"
    assert (first["Period start"], first["Period end"]) == ("2026-04-01", "2027-01-01")
    assert exported[1]["Kind"] == "Refund credit"
    assert exported[2]["Invoice total"] == "0.00"
    assert exported[2]["Credit memo"] == "no"


def test_amounts_keep_their_currencys_minor_unit(finance):
    InvoiceLineFactory(
        invoice__subscription__customer__currency="JPY",
        unit_price=Decimal("1400"),
        amount=Decimal("14000"),
    )

    (row,) = rows(finance.get(export_url(Invoice)))

    assert (row["Currency"], row["Unit price"], row["Amount"]) == ("JPY", "1400", "14000")


def test_requests_export_refunds_with_their_reset_and_completion(client, user_with_role):
    client.force_login(user_with_role("deal_desk"))
    rec = processed(subscription__customer__name="Acme Corp")
    reset = ApprovalRequestFactory(
        kind=ApprovalRequest.Kind.MAX_SEATS_RESET,
        subscription=rec.subscription,
        status=ApprovalRequest.Status.APPROVED,
        requester__username="sam.sales",
        required_slots=["sales_ops_or_support_manager"],
    )
    refund = ApprovalRequestFactory(
        kind=ApprovalRequest.Kind.QSR_REFUND,
        subscription=rec.subscription,
        reconciliation=rec,
        linked_reset=reset,
        status=ApprovalRequest.Status.APPROVED,
        requester=reset.requester,
        seats_at_stake=10,
        amount_at_stake=Decimal("750.00"),
        required_slots=["sales_ops", "finance"],
    )

    exported = rows(client.get(export_url(ApprovalRequest, "?kind__exact=qsr_refund")))

    assert len(exported) == 1
    row = exported[0]
    assert row["Request"] == str(refund.pk)
    assert row["Kind"] == "QSR refund"
    assert row["Status"] == "Approved"
    assert row["Customer"] == "Acme Corp"
    assert row["Requested by"] == "sam.sales"
    assert (row["Seats at stake"], row["Amount at stake"], row["Currency"]) == (
        "10",
        "750.00",
        "USD",
    )
    assert row["Required approvals"] == "Sales ops; Finance"
    assert row["Reconciliation refunded"] == str(rec.pk)
    assert row["Linked reset"] == str(reset.pk)
    assert row["Linked reset status"] == "Approved"
    assert row["Refund complete"] == "no"
    assert row["Ticket"] == "https://tickets.example.com/2"


@pytest.mark.parametrize("start", ["=", "+", "-", "@"])
def test_text_that_a_spreadsheet_would_run_as_a_formula_is_quoted(finance, start):
    processed(
        subscription__customer__name=f'{start}HYPERLINK("https://evil.example","x")',
        failure_reason=f"{start}1+2",
    )

    (row,) = rows(finance.get(export_url(Reconciliation)))

    assert row["Customer"] == f'\'{start}HYPERLINK("https://evil.example","x")'
    assert row["Failure reason"] == f"'{start}1+2"
    assert row["Amount"] == "750.00"


def test_the_export_carries_the_lists_filters_search_and_order(finance):
    acme = processed(subscription__customer__name="Acme Corp")
    acme_later = processed(
        subscription__customer__name="Acme West", reconciliation_date=date(2026, 7, 1)
    )
    processed(subscription__customer__name="Globex")
    ReconciliationFactory(subscription__customer__name="Acme Skipped")  # scheduled

    listing = finance.get(admin_url(Reconciliation), {"q": "acme", "status__exact": "processed"})
    link = listing.context["export_url"]
    exported = rows(finance.get(link))

    assert link.startswith(export_url(Reconciliation, "?"))
    assert "Export CSV" in listing.text
    assert [r["Reconciliation"] for r in exported] == [str(acme_later.pk), str(acme.pk)]


def test_the_export_link_leaves_the_page_behind(finance):
    processed()

    listing = finance.get(admin_url(Reconciliation), {"status__exact": "processed", "p": "1"})

    assert listing.context["export_url"] == export_url(Reconciliation, "?status__exact=processed")


def test_a_bad_filter_in_the_link_gets_a_400_that_says_so(finance):
    response = finance.get(export_url(Reconciliation, "?amount__gt=abc"))

    assert response.status_code == 400
    assert "not valid" in response.text


def test_a_sales_manager_exports_only_their_accounts(client, user_with_role):
    me = user_with_role("sales")
    mine = processed(subscription__customer=CustomerFactory(name="Mine Ltd"))
    customer_assign_owner(customer=mine.subscription.customer, owner=me, actor=SYSTEM)
    theirs = processed(subscription__customer__name="Theirs Inc")
    client.force_login(me)

    exported = rows(client.get(export_url(Reconciliation)))
    searched = rows(client.get(export_url(Reconciliation, "?q=Theirs")))

    assert [r["Reconciliation"] for r in exported] == [str(mine.pk)]
    assert str(theirs.pk) not in {r["Reconciliation"] for r in exported}
    assert searched == []


@pytest.mark.parametrize("role", ["support", "support_manager", "executive"])
def test_a_role_without_the_right_gets_403_and_no_link(client, user_with_role, role):
    client.force_login(user_with_role(role))
    processed()
    InvoiceLineFactory()

    for model in (Reconciliation, Invoice, ApprovalRequest):
        assert client.get(export_url(model)).status_code == 403
        listing = client.get(admin_url(model))
        assert listing.status_code == 200
        assert "Export CSV" not in listing.text


@pytest.mark.parametrize("role", ["sales_ops", "deal_desk", "finance", "sales"])
def test_the_roles_that_export_see_the_link(client, user_with_role, role):
    client.force_login(user_with_role(role))

    for model in (Reconciliation, Invoice, ApprovalRequest):
        assert "Export CSV" in client.get(admin_url(model)).text


def test_lists_without_an_export_offer_none(finance):
    SubscriptionFactory()

    assert "Export CSV" not in finance.get(admin_url(SubscriptionFactory._meta.model)).text


@pytest.mark.parametrize(
    ("model", "make"),
    [
        (Reconciliation, processed),
        (Invoice, lambda: InvoiceLineFactory(invoice=InvoiceLineFactory().invoice)),
        (ApprovalRequest, ApprovalRequestFactory),
    ],
    ids=["reconciliations", "invoices", "requests"],
)
def test_queries_do_not_grow_with_the_rows(finance, model, make):
    def exported_queries() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as queries:
            lines = rows(finance.get(export_url(model)))
        return len(queries), len(lines)

    make()
    exported_queries()  # warm per-process caches (content types)
    few, few_rows = exported_queries()
    for _ in range(30):
        make()
    many, many_rows = exported_queries()

    assert many_rows > few_rows
    assert many == few
