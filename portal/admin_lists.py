"""Lists that stay fast at a million rows: what every portal changelist shares.

Django's changelist, left to itself, costs a full pass over the table several times per
page on a large book: an exact `COUNT(*)`, a second unfiltered count for "N total", a
search that ORs `icontains` over joined columns (no index can serve it, and ids are
searched as text), and a date hierarchy that asks for the distinct years, months or days
of the filtered rows. `ListsAtScale` replaces each with what an index answers:

- **Count.** An unfiltered list of a large table shows PostgreSQL's own estimate of its
  rows (`pg_class.reltuples`, kept by autovacuum's analyze), which is what a person
  reading "about a million" needs. A filtered or searched list counts exactly, but stops
  at `COUNT_CAP` rows past the page asked for: the page links then reach a little past
  where the reader is, never the far end of a million rows. The second, unfiltered
  count is off (`show_full_result_count`).
- **Search.** The term is searched as typed (one phrase, not word by word), each search
  field on its own, as a subquery of matching ids that one index answers (a trigram
  index for names and emails, the primary key for ids); the list keeps the rows whose id
  is in the union. Ids are compared as numbers, and a term that is no number skips them.
  Terms shorter than `TRIGRAMS` characters match names from their start.
- **Date hierarchy.** The years offered run from the oldest to the newest date of the
  whole table (two index lookups, whatever the filters); a year offers its twelve months,
  a month its days. No distinct dates are computed over the rows.
- **Filters.** No "Show counts" (a count per filter choice, over every row), and no
  filter that lists the distinct values of a column (`known_values` names them instead).

Each list's ordering has an index of its own (the apps' `Meta.indexes`), so a page walks
the index instead of sorting the table; a deep page skips through the index alone
before fetching its rows.
"""

from __future__ import annotations

import calendar
import copy
import datetime
from typing import TYPE_CHECKING, Any

from django.contrib.admin import ChoicesFieldListFilter, RelatedFieldListFilter, ShowFacets
from django.contrib.admin.views.main import PAGE_VAR
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.core.paginator import Page, Paginator
from django.db import connections, models
from django.db.models import Max, Min, Q, QuerySet
from django.utils import formats, timezone
from django.utils.functional import cached_property
from django.utils.text import capfirst

from portal import policy
from portal.admin_safety import GuardedChangeList
from portal.roles import SALES

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

    _AdminBase = ModelAdmin[Any]
else:
    _AdminBase = object

# Below this many rows (by the planner's estimate) an unfiltered list counts exactly.
ESTIMATE_FROM = 50_000
# A filtered list counts at most this many rows past the page asked for.
COUNT_CAP = 10_000
# From this row on, a page reads its ids first (`ListPaginator.page`).
DEEP_FROM = 500
# The shortest term a trigram index can look up anywhere in a text.
TRIGRAMS = 3
TEXT_LOOKUPS = {"icontains", "istartswith", "iexact", "exact", "contains", "startswith"}


def estimated_rows(model: type[models.Model], using: str) -> int:
    """PostgreSQL's estimate of the rows of `model`'s table (-1 when never analysed)."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
            [connections[using].ops.quote_name(model._meta.db_table)],
        )
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None else -1


class ListPaginator(Paginator):
    """The changelist's paginator: an estimate for a whole large table, an exact but
    capped count for a filtered one (see the module docstring)."""

    def __init__(self, object_list, per_page, *args, page_asked: int = 1, **kwargs):
        super().__init__(object_list, per_page, *args, **kwargs)
        self.page_asked = page_asked
        # What the list says under its count when the count is not exact.
        self.count_note = ""

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return len(queryset)
        if not queryset.query.where:
            estimate = estimated_rows(queryset.model, queryset.db)
            if estimate >= ESTIMATE_FROM:
                self.count_note = (
                    f"About {estimate:,}: the database estimates the whole list. "
                    "Filter or search for an exact count."
                )
                return estimate
        cap = (self.page_asked + 1) * int(self.per_page) + COUNT_CAP
        # Only the ids: the list's computed columns (an invoice's total) are not counted.
        counted = queryset.order_by().values("pk")[:cap].count()
        if counted == cap:
            self.count_note = (
                f"At least {cap:,}: the count stops a little past this page. "
                "Narrow the filters or the search for an exact count."
            )
        return counted

    def page(self, number):
        """A page past the first few reads its rows' ids from the order's index first
        (skipping the rows before it there), then joins only those rows to what the
        list shows; skipping whole joined rows would join every row it skips."""
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        queryset = self.object_list
        if bottom < DEEP_FROM or not isinstance(queryset, QuerySet):
            return super().page(number)
        top = min(bottom + self.per_page, self.count)
        if top + self.orphans >= self.count:
            top = self.count
        ids = queryset.values("pk")[bottom:top]
        return Page(queryset.filter(pk__in=ids), number, self)


class ListChangeList(GuardedChangeList):
    """A changelist whose date hierarchy costs one index lookup (`date_links`)."""

    @cached_property
    def date_links(self) -> dict:
        """What `admin/date_hierarchy.html` needs, as Django's `date_hierarchy` tag
        builds it, without asking the rows which dates they hold."""
        name = self.date_hierarchy
        field = self.model._meta.get_field(name)
        y, m, d = f"{name}__year", f"{name}__month", f"{name}__day"
        year, month, day = (self.params.get(k) for k in (y, m, d))
        year, month, day = (v[-1] if isinstance(v, list) else v for v in (year, month, day))

        def link(filters: dict) -> str:
            return self.get_query_string(filters, [f"{name}__"])

        if year and month and day:
            picked = datetime.date(int(year), int(month), int(day))
            return {
                "show": True,
                "back": {
                    "link": link({y: year, m: month}),
                    "title": capfirst(formats.date_format(picked, "YEAR_MONTH_FORMAT")),
                },
                "choices": [{"title": capfirst(formats.date_format(picked, "MONTH_DAY_FORMAT"))}],
            }
        if year and month:
            first = datetime.date(int(year), int(month), 1)
            days = calendar.monthrange(first.year, first.month)[1]
            return {
                "show": True,
                "back": {"link": link({y: year}), "title": str(year)},
                "choices": [
                    {
                        "link": link({y: year, m: month, d: n}),
                        "title": capfirst(
                            formats.date_format(first.replace(day=n), "MONTH_DAY_FORMAT")
                        ),
                    }
                    for n in range(1, days + 1)
                ],
            }
        if year:
            return {
                "show": True,
                "back": {"link": link({}), "title": "All dates"},
                "choices": [
                    {
                        "link": link({y: year, m: n}),
                        "title": capfirst(
                            formats.date_format(datetime.date(int(year), n, 1), "YEAR_MONTH_FORMAT")
                        ),
                    }
                    for n in range(1, 13)
                ],
            }
        bounds = self.model._default_manager.aggregate(first=Min(name), last=Max(name))
        if bounds["first"] is None:
            return {"show": False}
        if isinstance(field, models.DateTimeField):
            bounds = {k: timezone.localtime(v) if timezone.is_aware(v) else v
                      for k, v in bounds.items()}  # fmt: skip
        return {
            "show": True,
            "back": None,
            "choices": [
                {"link": link({y: str(n)}), "title": str(n)}
                for n in range(bounds["first"].year, bounds["last"].year + 1)
            ],
        }


def search_lookup(model: type[models.Model], spec: str, term: str) -> tuple[str, Any] | None:
    """The ORM lookup and value with which search field `spec` (the admin's syntax: `^`
    prefix, `=` exact, `path__lookup`, else contains) looks for `term`; None when the
    field cannot hold the term (a word in a number field)."""
    if spec.startswith("^"):
        path, lookup = spec[1:], "istartswith"
    elif spec.startswith("="):
        path, lookup = spec[1:], "iexact"
    else:
        path, lookup = spec, "icontains"
    opts, field = model._meta, None
    parts = path.split("__")
    for i, part in enumerate(parts):
        try:
            field = opts.get_field(opts.pk.name if part == "pk" else part)
        except FieldDoesNotExist:
            if field is None or i != len(parts) - 1:
                raise
            path, lookup = "__".join(parts[:i]), part
            break
        if field.is_relation and field.related_model is not None:
            opts = field.related_model._meta
    if not isinstance(field, models.Field):
        return None  # a reverse relation: nothing to compare the term with
    if isinstance(field, models.CharField | models.TextField):
        if lookup == "icontains" and len(term) < TRIGRAMS:
            lookup = "istartswith"
        return f"{path}__{lookup}", term
    try:
        value = field.to_python(term)
    except ValidationError:
        return None
    if isinstance(value, int):
        low, high = connections["default"].ops.integer_field_range(field.get_internal_type())
        if (low is not None and value < low) or (high is not None and value > high):
            return None
    return f"{path}__exact", value


def search_ids(model: type[models.Model], fields, term: str) -> Q:
    """Rows whose id is among those some search field finds `term` in: one subquery per
    field, each served by its own index, united."""
    term = term.strip()
    if len(term) >= 2 and term[0] == term[-1] and term[0] in "\"'":
        term = term[1:-1].strip()
    if "\x00" in term:
        return Q(pk__in=[])
    subqueries = []
    for spec in fields:
        found = search_lookup(model, str(spec), term)
        if found is not None:
            lookup, value = found
            subqueries.append(model._default_manager.filter(**{lookup: value}).values("pk"))
    if not subqueries:
        return Q(pk__in=[])
    first, *rest = subqueries
    return Q(pk__in=first.union(*rest) if rest else first)


class ListsAtScale(_AdminBase):
    """For a ModelAdmin: the estimate or capped count, searches by indexed subqueries
    and the date hierarchy that reads no rows (see the module docstring)."""

    paginator = ListPaginator
    show_full_result_count = False
    # The filters' counts ("Show counts") would count every row once per choice.
    show_facets = ShowFacets.NEVER
    change_list_template = "admin/portal/change_list.html"

    def get_changelist(self, request, **kwargs):
        return ListChangeList

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        try:
            page_asked = int(request.GET.get(PAGE_VAR, 1))
        except (TypeError, ValueError):
            page_asked = 1
        # A page past the count is the changelist's to refuse; this only bounds the cap.
        page_asked = min(max(1, page_asked), 10**6)
        return self.paginator(
            queryset, per_page, orphans, allow_empty_first_page, page_asked=page_asked
        )

    def get_search_results(self, request, queryset, search_term):
        fields = self.get_search_fields(request)
        if not fields or not search_term.strip():
            return queryset, False
        return queryset.filter(search_ids(self.model, fields, search_term)), False


def known_values(*values: tuple[Any, str]) -> type[ChoicesFieldListFilter]:
    """A list filter offering `values` (value, label) for a field without choices: what
    Django's default for such a field, the distinct values of the whole table, would
    read from every row on every page."""

    class KnownValuesFilter(ChoicesFieldListFilter):
        def __init__(self, field, request, params, model, model_admin, field_path):
            field = copy.copy(field)
            field.choices = list(values)
            super().__init__(field, request, params, model, model_admin, field_path)

    return KnownValuesFilter


class SalesManagerFilter(RelatedFieldListFilter):
    """The accounts' owner filter: the sales managers (a handful of users), instead of
    the distinct owners of every account that Django's related-only filter reads."""

    def field_choices(self, field, request, model_admin):
        User = get_user_model()
        managers = User.objects.filter(groups__name=SALES).order_by(User.USERNAME_FIELD)
        if not policy.sees_every_account(request.user):
            managers = managers.filter(pk=request.user.pk)  # a sales manager: themselves
        return [(user.pk, str(user)) for user in managers]
