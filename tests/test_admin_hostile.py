"""Every admin URL with the ids, pages, orderings, filters, date drill-downs and searches
that a typo, a stale bookmark or a probe puts in it. The answer is a page, a redirect (the
admin's "doesn't exist" message, its `?e=1` for a bad filter), 400, 403 or 404, never a
server error. Walked in full as a superuser, and with one value of each kind as support
(every account, partial permissions) and as a sales manager (their own accounts only)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from urllib.parse import quote, urlencode

import pytest
from django.contrib import admin
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.auth import get_user_model
from django.contrib.postgres.fields import ArrayField
from django.db import models, transaction
from django.test import RequestFactory
from django.urls import URLPattern, reverse
from django.urls.resolvers import RoutePattern
from django.utils import timezone
from guardian.shortcuts import assign_perm

from approvals.models import ApprovalRequest, Dispute
from portal import policy
from subscriptions.models import Invoice, JobRun, Subscription
from tests.assertions import admin_url
from tests.factories import (
    ApprovalDecisionFactory,
    InvoiceLineFactory,
    ReconciliationFactory,
    SeatUsageReportFactory,
    SubscriptionFactory,
    SuspensionFactory,
    UserFactory,
)

pytestmark = [
    pytest.mark.django_db,
    # `?created_at=0001-01-01` is a naive datetime: Django warns, then answers.
    pytest.mark.filterwarnings("ignore:DateTimeField .* received a naive datetime"),
]

HUGE = str(10**30)
LONG_DIGITS = "9" * 5000  # past Python's limit for int("...")


@dataclass(frozen=True)
class Hostile:
    ids: tuple[str, ...]
    values: tuple[str, ...]  # for every list filter's parameters
    pages: tuple[str, ...]
    orderings: tuple[str, ...]
    years: tuple[str, ...]
    searches: tuple[str, ...]


FULL = Hostile(
    ids=(
        "abc",
        "-1",
        "0",
        HUGE,
        LONG_DIGITS,
        "1' OR '1'='1",
        "_00",  # the admin's quoting of a NUL
        "1_2F..",  # ... and of a slash
    ),
    values=("abc", HUGE, "1,x", "", "\x00", "x" * 3000),
    pages=("-1", "0", HUGE, LONG_DIGITS, "abc", "1.5"),
    orderings=("99", "-99", "abc", "1.2.3", "-", HUGE),
    years=("0", "1", "9999", str(10**20), "abc", LONG_DIGITS),
    searches=(
        "\x00",
        "name\x00",
        "x" * 10_000,
        " ".join(["x"] * 300),
        "INV-" + "9" * 40,
        "'; SELECT pg_sleep(5); --",
    ),
)
BRIEF = Hostile(
    ids=("abc", "-1", HUGE, "_00"),
    values=("abc", HUGE, "\x00"),
    pages=("-1", HUGE, "abc"),
    orderings=("99", "abc", "1.2.3"),
    years=("0", "9999", str(10**20)),
    searches=("\x00", "x" * 10_000),
)
WALKERS = {"superuser": FULL, "support": BRIEF, "sales": BRIEF}

UNKNOWN = (
    {"no_such_field": "1"},
    {"id__gt": "abc"},
    {"id__in": f"1,abc,{HUGE}"},
    {"pk__regex": "("},
    {"_to_field": "password"},
    {"_popup": "1", "_to_field": "no_such_field"},
    {"e": "1", "no_such_field": "1"},
    {"_changelist_filters": "status=\x00&p=abc"},
    {"": "1"},
    {"__": "1"},
    {"id____exact": "1"},
    {"pk__exact__exact": "1"},
)


@pytest.fixture
def users():
    """A record of every model with an admin, so that history, change and action pages
    are walked with a real id next to the hostile ones, and the users who walk them. The
    sales manager owns the first account only."""
    sales = UserFactory(username="hostile-sales", roles=["sales"])
    request = ApprovalDecisionFactory().request
    subscription = request.subscription
    customer = subscription.customer
    customer.owner = sales
    customer.save()
    assign_perm(policy.OWN_CUSTOMER, sales, customer)
    Dispute.objects.create(
        reconciliation=ReconciliationFactory(subscription=subscription),
        reason="The Q1 count is wrong.",
        ticket_url="https://tickets.example.com/3",
        recorded_by=UserFactory(roles=["support"]),
        assigned_to=sales,
        ticket_closed_at=timezone.now(),
    )
    SeatUsageReportFactory(namespace=subscription.namespace)
    SuspensionFactory(subscription=subscription)
    InvoiceLineFactory(invoice__subscription=subscription)
    SubscriptionFactory(  # another account's
        qsr_state=Subscription.QsrState.DISABLED_FOR_BUG,
        qsr_bug_url="https://bugs.example.com/1",
        qsr_ticket_url="https://tickets.example.com/4",
    )
    JobRun.objects.create(run_date=date(2026, 4, 1))
    return {
        "superuser": UserFactory(username="hostile-root", is_superuser=True),
        "support": UserFactory(username="hostile-support", roles=["support"]),
        "sales": sales,
    }


# --- Building the URLs ------------------------------------------------------------------

ARGUMENT = re.compile(r"<(?:\w+:)?\w+>|\([^)]*\)")  # path() converters, re_path() groups


def fill(pattern: URLPattern, values: list[str]) -> str:
    """The pattern's route with `values`, as a visitor types them, in its arguments."""
    route = str(pattern.pattern)
    if not isinstance(pattern.pattern, RoutePattern):
        route = route.lstrip("^").rstrip("$")
    quoted = iter(quote(v, safe="") for v in values)
    return ARGUMENT.sub(lambda _: next(quoted), route)


def argument_count(pattern: URLPattern) -> int:
    if isinstance(pattern.pattern, RoutePattern):
        return len(ARGUMENT.findall(str(pattern.pattern)))
    return pattern.pattern.regex.groups


def first_pk(model) -> str:
    obj = model._default_manager.order_by("pk").first()
    return str(obj.pk) if obj else "1"


def history_id(model, pk: str) -> str:
    history = getattr(model, "history", None)
    row = history.filter(**{model._meta.pk.attname: pk}).first() if history else None
    return str(row.history_id) if row else "1"


def object_urls(model_admin, hostile: Hostile) -> list[tuple[str, str]]:
    """(method, URL) for every pattern of the admin that takes an id (change, delete,
    history and its versions, object actions, the admin's own redirects): the real id with
    every second argument the pattern takes (each action's name, a history version, the
    hostile values), then every hostile id. POSTs with hostile ids only (one of each
    kind): nothing real changes."""
    model = model_admin.model
    pk = first_pk(model)
    prefix = admin_url(model)
    urls = []
    for pattern in model_admin.get_urls():
        count = argument_count(pattern)
        if count == 0:
            continue
        seconds: list[str] = []
        if count == 2 and (pattern.name or "").endswith("_do"):
            seconds = [*(a.name for a in model_admin.object_actions), "no-such-action"]
        elif count == 2:
            seconds = [history_id(model, pk), *hostile.ids]
        for second in seconds or [None]:
            urls.append(("get", prefix + fill(pattern, [pk] + ([second] if second else []))))
        for bad in hostile.ids:
            url = prefix + fill(pattern, [bad, *seconds[:1]])
            urls += [("get", url)] + [("post", url)] * (bad in BRIEF.ids)
        if count == 1 and "history" in str(pattern.pattern):
            urls += [("get", f"{prefix}{fill(pattern, [pk])}?p={quote(p)}") for p in hostile.pages]
    return urls


def date_fields(model_admin, request) -> list[str]:
    """The date fields a visitor drills down or filters by on the changelist."""
    names = [model_admin.date_hierarchy] if model_admin.date_hierarchy else []
    for item in model_admin.get_list_filter(request):
        name = item[0] if isinstance(item, tuple | list) else item
        field = get_fields_from_path(model_admin.model, name)[-1] if isinstance(name, str) else None
        if isinstance(field, models.DateField):
            names.append(name)
    return names


def drilldowns(field: str, hostile: Hostile) -> list[dict]:
    y, m, d = f"{field}__year", f"{field}__month", f"{field}__day"
    params: list[dict] = []
    for year in hostile.years:
        params += [{y: year}, {y: year, m: "12"}, {y: year, m: "12", d: "31"}]
    return [
        *params,
        {y: "2026", m: "13"},
        {y: "2026", m: str(10**20)},
        {y: "2026", m: "2", d: "30"},
        {y: "2026", m: "1", d: str(10**20)},
        {m: str(10**20)},
        {d: "abc"},
        {f"{field}__gte": "99999-01-01"},
        {f"{field}__lt": "abc", f"{field}__gte": "0000-00-00"},
    ]


FIELD_KINDS = (
    models.DecimalField,
    models.DateField,  # DateTimeField too
    models.CharField,
    models.TextField,
    models.JSONField,
    ArrayField,
    models.IntegerField,
)


def field_lookups(model) -> list[dict]:
    """Lookups on the model's own fields, which the admin takes from any URL, with values
    that fail only in the database or when the query is compiled; one field of each kind."""
    params: list[dict] = [{"pk__in": f"1,{HUGE}"}, {"pk__range": "1"}, {"pk__gt": HUGE}]
    seen: set[type] = set()
    for field in model._meta.concrete_fields:
        kind = next((k for k in FIELD_KINDS if isinstance(field, k)), None)
        if kind is None or kind in seen:
            continue
        seen.add(kind)
        name = field.name
        params += {
            models.DecimalField: [{name: "1e999999999"}, {name: "NaN"}, {f"{name}__gt": "-Inf"}],
            models.DateField: [
                {f"{name}__year": str(10**20)},
                {f"{name}__year": "0"},
                {f"{name}__year__gt": "10000"},
                {f"{name}__date": "9999-12-31"},
                {name: "0001-01-01"},
            ],
            models.CharField: [
                {name: "\x00"},
                {f"{name}__regex": "("},
                {f"{name}__iregex": "[z-a]"},
                {f"{name}__trigram_similar": "x"},
                {f"{name}__unaccent": "x"},
                {f"{name}__search": "x & | !"},
            ],
            models.TextField: [{name: "a\x00b"}, {f"{name}__regex": "*"}],
            models.JSONField: [{f"{name}__key": "\x00"}, {f"{name}__contains": "["}],
            ArrayField: [{name: "abc"}, {f"{name}__contains": "{"}, {f"{name}__len": HUGE}],
            models.IntegerField: [{f"{name}__in": f"1,{HUGE}"}, {f"{name}__range": f"1,{HUGE}"}],
        }[kind]
    return params


def changelist_params(model_admin, user, hostile: Hostile) -> list[dict]:
    """Hostile query strings for the admin's changelist."""
    request = RequestFactory().get("/")
    request.user = user
    params: list[dict] = [{"p": p} for p in hostile.pages]
    params += [{"p": HUGE, "all": ""}, {"all": "", "p": "-1"}]
    params += [{"o": o} for o in hostile.orderings]
    params += [{"q": q} for q in hostile.searches]
    params += UNKNOWN
    params += field_lookups(model_admin.model)
    for field in date_fields(model_admin, request):
        params += drilldowns(field, hostile)
    # What every list filter reads, with every hostile value.
    for spec in model_admin.get_changelist_instance(request).filter_specs:
        for name in spec.expected_parameters():
            params += [{name: value} for value in hostile.values]
    return params


# django-axes' "Clean up expired attempts" reads `request.axes_attempt_time`, which only
# its login handler sets: a server error whatever is selected, not a matter of input.
BROKEN_ACTIONS: set[str] = set()


def action_posts(model_admin, user, hostile: Hostile) -> list[dict]:
    """Bulk actions on the changelist with hostile selections. Never `select_across`: the
    ids select nothing, so no action changes a real record."""
    request = RequestFactory().post("/")
    request.user = user
    names = [*sorted(set(model_admin.get_actions(request)) - BROKEN_ACTIONS), "no_such_action"]
    posts = [
        {"action": name, "index": "0", "_selected_action": bad}
        for name in names
        for bad in BRIEF.ids
    ]
    posts += [
        {"action": names[0], "index": index, "_selected_action": "1"}
        for index in ("abc", HUGE, "-1")
    ]
    return posts


# --- Walking them -----------------------------------------------------------------------


def answer(client, method: str, url: str, data: dict | None = None) -> str | None:
    """None unless the answer is a server error. Each request in a savepoint: a database
    error in one must not fail the ones after it."""
    savepoint = transaction.savepoint()
    response = getattr(client, method)(url, data)
    if response.status_code < 500:
        transaction.savepoint_commit(savepoint)
        return None
    transaction.savepoint_rollback(savepoint)
    exc = response.exc_info[1] if response.exc_info else None
    sent = f" {data}" if data else ""
    return f"{method.upper()} {url[:300]}{sent[:200]} -> {response.status_code} {exc!r}"[:700]


def walk(client, requests: list[tuple]) -> None:
    """Each request: (method, URL) or (method, URL, form data)."""
    client.raise_request_exception = False
    failures = [f for request in requests if (f := answer(client, *request))]
    if failures:  # pytest.fail: an assertion message would be shortened
        pytest.fail(f"{len(failures)} of {len(requests)} failed:\n" + "\n".join(failures), False)


def registered():
    return sorted(admin.site._registry, key=lambda m: m._meta.label)


@pytest.mark.parametrize("role", WALKERS)
@pytest.mark.parametrize("model", registered(), ids=lambda m: m._meta.label)
def test_no_admin_url_answers_a_server_error(client, users, role, model):
    reverse("admin:index")  # load the URLconf: it guards the admins of other apps
    model_admin = admin.site._registry[model]
    hostile = WALKERS[role]
    client.force_login(users[role])
    changelist, add = admin_url(model), admin_url(model, "add")

    requests = [("get", changelist), ("get", add)]
    params = changelist_params(model_admin, users[role], hostile)
    requests += [("get", f"{changelist}?{urlencode(p)}") for p in params]
    requests += [("get", f"{add}?{urlencode(p)}") for p in UNKNOWN]
    requests += object_urls(model_admin, hostile)
    requests += [("post", changelist, d) for d in action_posts(model_admin, users[role], hostile)]

    walk(client, requests)


@pytest.mark.parametrize("role", ["superuser", "sales"])
def test_no_site_wide_admin_url_answers_a_server_error(client, users, role):
    """The index, the app pages, autocomplete and "view on site", with hostile values."""
    client.force_login(users[role])
    urls = ["/admin/", "/admin/subscriptions/", "/admin/approvals/", "/admin/no_such_app/"]
    for model, model_admin in admin.site._registry.items():
        for field in model_admin.autocomplete_fields:
            opts = model._meta
            base = {"app_label": opts.app_label, "model_name": opts.model_name, "field_name": field}
            urls += [
                f"/admin/autocomplete/?{urlencode({**base, 'term': t})}" for t in FULL.searches
            ]
            urls += [f"/admin/autocomplete/?{urlencode({**base, 'page': p})}" for p in FULL.pages]
    fields = [{"app_label": v, "model_name": v, "field_name": v} for v in FULL.values]
    urls += [f"/admin/autocomplete/?{urlencode(f)}" for f in fields]
    urls += [f"/admin/r/{quote(a, safe='')}/{b}/" for a in FULL.ids for b in ("1", "abc")]

    walk(client, [("get", url) for url in urls])


# --- What the answers are -------------------------------------------------------------------


def test_a_bad_id_in_history_and_action_urls_is_not_found(admin_client):
    subscription = SubscriptionFactory()
    version = subscription.history.get().history_id
    for bad in ("abc", "-1", HUGE, "_00"):
        urls = [
            admin_url(Subscription, "history", bad),
            admin_url(Subscription, "simple_history", bad, version),
            admin_url(Subscription, "simple_history", subscription.pk, bad),
            admin_url(Subscription, "do", bad, "cancel"),
        ]
        assert [admin_client.get(url).status_code for url in urls] == [404] * 4, bad


def test_a_bad_id_on_the_change_page_gets_the_admins_doesnt_exist_message(admin_client):
    response = admin_client.get(admin_url(Subscription, "change", "abc"), follow=True)

    assert response.redirect_chain[0] == ("/admin/", 302)
    assert "doesn’t exist" in response.text


@pytest.mark.parametrize(
    "query",
    [
        "issue_date__year=9999&issue_date__month=12&issue_date__day=31",
        "issue_date__year=9999&issue_date__month=12",
        "issue_date__year=9999",
        "issue_date__year=99999999999999999999",
        "issue_date__year=2026&issue_date__month=99999999999999999999",
        "created_at__year=0",
        "currency__exact=%00",
        "currency=a%00b",
    ],
)
def test_a_drilldown_or_filter_past_what_dates_and_the_database_hold_gets_the_error_page(
    admin_client, query
):
    InvoiceLineFactory()
    url = admin_url(Invoice)

    response = admin_client.get(f"{url}?{query}")

    assert response.status_code == 302
    assert response["Location"] == f"{url}?e=1"


def test_a_drilldown_inside_the_calendar_still_finds_its_rows(admin_client):
    line = InvoiceLineFactory(invoice__issue_date=date(2026, 12, 31))
    url = admin_url(Invoice)

    for query in (
        "issue_date__year=2026",
        "issue_date__year=2026&issue_date__month=12&issue_date__day=31",
    ):
        response = admin_client.get(f"{url}?{query}")
        assert response.status_code == 200
        assert [i.pk for i in response.context["cl"].result_list] == [line.invoice_id]


@pytest.mark.parametrize("lookup", ["regex", "iregex", "trigram_similar", "unaccent", "range"])
def test_a_lookup_no_admin_page_offers_is_refused(admin_client, lookup):
    url = admin_url(ApprovalRequest)

    assert admin_client.get(f"{url}?justification__{lookup}=(").status_code == 400
    assert admin_client.get(f"{url}?id__{lookup}=(").status_code == 400


def test_a_bulk_action_on_a_selection_that_is_no_id_changes_nothing(admin_client, admin_user):
    url = admin_url(get_user_model())
    data = {"action": "delete_selected", "index": "0", "_selected_action": ["abc", admin_user.pk]}

    response = admin_client.post(url, data, follow=True)

    assert response.redirect_chain == [(url, 302)]
    assert "not a list of ids" in response.text
    assert get_user_model().objects.filter(pk=admin_user.pk).exists()
