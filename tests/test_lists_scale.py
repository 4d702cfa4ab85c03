"""Lists that stay fast at a million rows (portal/admin_lists.py): the same queries for 5
rows as for 50, searches that still find by name, email and id through their indexes,
deep pages in a stable order, counts that do not read the whole table, a date
hierarchy that reads no rows, and the indexes each list's order and search rely on."""

from datetime import date

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from approvals.models import ApprovalRequest
from portal import admin_lists
from subscriptions.models import (
    Customer,
    Invoice,
    InvoiceLine,
    Namespace,
    Reconciliation,
    Subscription,
    Suspension,
)
from tests.assertions import admin_url, shown
from tests.factories import (
    ApprovalRequestFactory,
    CustomerFactory,
    InvoiceLineFactory,
    NamespaceFactory,
    ReconciliationFactory,
    SubscriptionFactory,
    SuspensionFactory,
)

pytestmark = pytest.mark.django_db

# Queries of one changelist page as a superuser, for 5 rows as for 50: session, user,
# then the page's own: the table's estimated size, the (small) table's count, the rows,
# the date hierarchy's bounds; lists with an export ask the user's roles (the link).
PINNED = {
    Subscription: (SubscriptionFactory, 6),
    Reconciliation: (ReconciliationFactory, 7),
    Invoice: (lambda: InvoiceLineFactory().invoice, 7),
    InvoiceLine: (InvoiceLineFactory, 6),
    Suspension: (SuspensionFactory, 6),
    Customer: (CustomerFactory, 6),  # + the sales managers for the owner filter; no dates
    Namespace: (NamespaceFactory, 5),  # no date hierarchy
    ApprovalRequest: (ApprovalRequestFactory, 8),  # + the requests' decisions
}


def page_queries(client, model, query: str = "") -> tuple[int, list[str]]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(admin_url(model) + query)
    assert response.status_code == 200
    return len(shown(response)), [q["sql"] for q in queries.captured_queries]


@pytest.mark.parametrize("model", list(PINNED), ids=lambda m: m.__name__)
def test_queries_per_page_are_the_same_for_5_rows_as_for_50(admin_client, model):
    make, pinned = PINNED[model]
    admin_client.get(admin_url(model))  # warm per-process caches (content types)
    for _ in range(5):
        make()
    few_rows, few = page_queries(admin_client, model)
    for _ in range(45):
        make()
    many_rows, many = page_queries(admin_client, model)

    assert (few_rows, many_rows) == (5, 50)
    assert len(few) == len(many) == pinned


def acme_subscription() -> Subscription:
    return SubscriptionFactory(
        customer__name="Acme Corporation",
        customer__billing_email="ap@acme.example",
        namespace__name="acme-platform",
    )


@pytest.mark.parametrize(
    "term", ["corporat", "ACME-PLAT", "ap@acme", "Ac"], ids=["name", "namespace", "email", "prefix"]
)
def test_search_finds_by_customer_namespace_and_email(admin_client, term):
    match = acme_subscription()
    other = SubscriptionFactory(customer__name="Globex", namespace__name="globex-main")
    rec, other_rec = (
        ReconciliationFactory(subscription=match),
        ReconciliationFactory(subscription=other),
    )

    assert shown(admin_client.get(admin_url(Subscription), {"q": term})) == {match.pk}
    if term != "ap@acme":  # the reconciliations list does not search emails
        assert shown(admin_client.get(admin_url(Reconciliation), {"q": term})) == {rec.pk}
    assert other_rec.pk


def test_search_finds_by_id_and_a_number_too_large_or_a_word_is_no_error(admin_client):
    match, other = acme_subscription(), SubscriptionFactory()

    assert shown(admin_client.get(admin_url(Subscription), {"q": str(match.pk)})) == {match.pk}
    assert other.pk not in shown(admin_client.get(admin_url(Subscription), {"q": str(match.pk)}))
    for term in ("99999999999999999999999", "-1", "acme 7", '"Acme Corporation"'):
        assert admin_client.get(admin_url(Subscription), {"q": term}).status_code == 200
    quoted = admin_client.get(admin_url(Subscription), {"q": '"Acme Corporation"'})
    assert shown(quoted) == {match.pk}


def test_deep_pages_walk_every_row_once_in_a_stable_order(admin_client):
    subscriptions = [SubscriptionFactory() for _ in range(3)]
    # 120 reconciliations on one date: the order falls back to subscription, then id.
    recs = [
        ReconciliationFactory(subscription=subscriptions[i % 3], term_start=date(2020 + i, 1, 1))
        for i in range(120)
    ]
    pages = [
        [
            r.pk
            for r in admin_client.get(admin_url(Reconciliation), {"p": p}).context["cl"].result_list
        ]
        for p in (1, 2, 3)
    ]
    seen = [pk for page in pages for pk in page]

    assert sorted(seen) == sorted(r.pk for r in recs)
    expected = sorted(recs, key=lambda r: (r.subscription_id, -r.pk))
    assert seen == [r.pk for r in expected]


def test_an_unfiltered_large_list_shows_the_planners_estimate_without_counting(
    admin_client, monkeypatch
):
    for _ in range(3):
        ReconciliationFactory()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE subscriptions_reconciliation")
    monkeypatch.setattr(admin_lists, "ESTIMATE_FROM", 1)

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(admin_url(Reconciliation))
    filtered = admin_client.get(admin_url(Reconciliation), {"status__exact": "scheduled"})

    assert response.context["cl"].result_count == 3
    assert "About 3: the database estimates the whole list." in response.text
    assert not any("COUNT(" in q["sql"].upper() for q in queries.captured_queries)
    assert filtered.context["cl"].result_count == 3
    assert "estimate" not in filtered.text


def test_a_filtered_count_stops_a_little_past_the_page_asked_for(admin_client, monkeypatch):
    for _ in range(8):
        ReconciliationFactory()
    monkeypatch.setattr(admin_lists, "COUNT_CAP", 1)
    monkeypatch.setattr(admin_lists, "ESTIMATE_FROM", 10**9)
    url = admin_url(Reconciliation)

    from subscriptions.admin import ReconciliationAdmin

    monkeypatch.setattr(ReconciliationAdmin, "list_per_page", 2)
    first = admin_client.get(url, {"status__exact": "scheduled"})
    third = admin_client.get(url, {"status__exact": "scheduled", "p": "3"})

    assert first.context["cl"].result_count == 5  # (page 1 + 1) x 2 + 1
    assert "At least 5: the count stops a little past this page." in first.text
    assert third.context["cl"].result_count == 8  # all of them, fewer than the cap
    assert "At least" not in third.text
    assert len(third.context["cl"].result_list) == 2


def test_the_date_hierarchy_offers_years_months_and_days_without_reading_rows(admin_client):
    ReconciliationFactory(reconciliation_date=date(2024, 4, 1))
    ReconciliationFactory(reconciliation_date=date(2026, 4, 1))
    url = admin_url(Reconciliation)

    with CaptureQueriesContext(connection) as queries:
        years = admin_client.get(url)
    months = admin_client.get(url, {"reconciliation_date__year": "2025"})
    days = admin_client.get(
        url, {"reconciliation_date__year": "2024", "reconciliation_date__month": "2"}
    )

    assert [c["title"] for c in years.context["cl"].date_links["choices"]] == [
        "2024",
        "2025",
        "2026",
    ]
    assert "reconciliation_date__year=2025" in years.text
    assert len(months.context["cl"].date_links["choices"]) == 12
    assert len(days.context["cl"].date_links["choices"]) == 29  # 2024 is a leap year
    assert not any("DISTINCT" in q["sql"] for q in queries.captured_queries)


def plan(sql: str, params) -> str:
    """PostgreSQL's plan for a query, with sequential scans and sorts priced out of
    reach, so that a small test table (whatever its statistics) shows which index can
    serve the query and its order."""
    off = ("enable_seqscan", "enable_sort", "enable_incremental_sort")
    with connection.cursor() as cursor:
        for setting in off:
            cursor.execute(f"SET LOCAL {setting} = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        text = "\n".join(row[0] for row in cursor.fetchall())
        for setting in off:
            cursor.execute(f"RESET {setting}")
    return text


@pytest.mark.parametrize(
    ("queryset", "index"),
    [
        (lambda: Reconciliation.objects.order_by(
            "-reconciliation_date", "subscription_id", "-id")[:50], "reconciliation_list_order"),
        (lambda: Reconciliation.objects.filter(status="failed").order_by(
            "-reconciliation_date", "subscription_id", "-id")[:50], "reconciliation_status_order"),
        (lambda: Invoice.objects.order_by("-issue_date", "-id")[:50], "invoice_list_order"),
        (lambda: InvoiceLine.objects.order_by("-invoice_id", "id")[:50], "invoiceline_list_order"),
        (lambda: Suspension.objects.order_by("-suspend_date", "-id")[:50], "suspension_list_order"),
        (lambda: ApprovalRequest.objects.order_by("-created_at", "-id")[:50],
         "approval_list_order"),
        (lambda: Namespace.objects.order_by("name", "-id")[:50], "namespace_list_order"),
    ],
    ids=["reconciliations", "by-status", "invoices", "lines", "suspensions", "requests",
         "namespaces"],
)  # fmt: skip
def test_each_lists_order_is_read_from_an_index_without_sorting(queryset, index):
    sql, params = queryset().query.sql_with_params()

    explained = plan(sql, params)

    assert index in explained
    assert "Sort" not in explained


@pytest.mark.parametrize(
    ("model", "field", "term", "index"),
    [
        (Customer, "name", "acme", "customer_name_trgm"),
        (Customer, "billing_email", "ap@", "customer_email_trgm"),
        (Namespace, "name", "platform", "namespace_name_trgm"),
        (Namespace, "license_key", "LIC-1", "namespace_license_trgm"),
        (InvoiceLine, "description", "overage", "invoiceline_description_trgm"),
    ],
    ids=["customer-name", "customer-email", "namespace-name", "license-key", "line-description"],
)
def test_contains_searches_are_served_by_trigram_indexes(model, field, term, index):
    queryset = model.objects.filter(**{f"{field}__icontains": term}).order_by()
    sql, params = queryset.query.sql_with_params()

    assert index in plan(sql, params)


def test_filters_offer_no_counts_that_would_read_every_row(admin_client):
    ReconciliationFactory()

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(admin_url(Reconciliation), {"_facets": "1"})

    assert "Show counts" not in response.text
    assert not any("FILTER (WHERE" in q["sql"] for q in queries.captured_queries)
