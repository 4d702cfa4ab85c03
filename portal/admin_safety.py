"""What anyone can type into an admin URL: ids, pages, orderings, filters, date
drill-downs and searches. A bad value gets the admin's usual answer (the "doesn't exist"
redirect or a 404 for an id, the `?e=1` page for a filter, 400 for a lookup the admin does
not offer), never a server error.

Django's admin lets these through to a server error; `UrlGuardMixin` closes them once for
every admin (the portal's through `PortalAdmin`, other apps' through `guard_site`):

- The changelist's date drill-down ends its period at the next day, month or year, which
  does not exist after 9999-12-31, and builds its start from any integer (year 10**20).
- The changelist applies any lookup on a model's own fields from the query string, and
  some values fail only in the database (a NUL byte, a numeric overflow, a malformed
  array) or when the query is compiled (a year outside 1..9999).
- Some lookups fail as written (`regex` with a bad pattern, `range` with one value) or
  need an extension the portal does not install (`unaccent`, `trigram_similar`); no page
  of the admin links to them.
- A bulk action filters by the selected ids without checking them.
- The autocomplete view searches with a NUL byte, which PostgreSQL text cannot hold.

(simple-history's history pages look their ids up unchecked too: `PortalAdmin` checks
them.)
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import FieldError, ValidationError
from django.db import DataError, transaction
from django.db.models.sql.query import Query

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

    # The mixin is only ever mixed into a ModelAdmin: type it as one.
    _AdminBase = ModelAdmin[Any]
else:
    _AdminBase = object

# The lookups and transforms a changelist URL may use: those the admin's own list
# filters, date drill-down and links write.
URL_LOOKUPS = frozenset(
    {
        "exact",
        "iexact",
        "in",
        "isnull",
        "isempty",
        "gt",
        "gte",
        "lt",
        "lte",
        "contains",
        "icontains",
        "startswith",
        "istartswith",
        "endswith",
        "iendswith",
        "date",
        "year",
        "month",
        "day",
    }
)


def check_drilldown(field: str, params: dict[str, list[str]]) -> None:
    """Raise IncorrectLookupParameters unless the date drill-down in `params` is a period
    Django's ChangeList can bound: a real date whose next day, month or year exists."""
    year = params.get(f"{field}__year")
    if year is None:
        return
    month = params.get(f"{field}__month")
    day = params.get(f"{field}__day")
    try:
        start = date(int(year[-1]), int(month[-1]) if month else 1, int(day[-1]) if day else 1)
        # The same arithmetic as ChangeList.get_filters, which lets these errors through.
        if day:
            start + timedelta(days=1)
        elif month:
            start + timedelta(days=32)
        else:
            start.replace(year=start.year + 1)
    except (ValueError, OverflowError) as exc:
        raise IncorrectLookupParameters(exc) from exc


class GuardedChangeList(ChangeList):
    def get_filters(self, request):
        if self.date_hierarchy:
            check_drilldown(self.date_hierarchy, self.filter_params)
        return super().get_filters(request)

    def get_results(self, request):
        if not self.get_filters_params():
            return super().get_results(request)
        # The count is the first query with the URL's values in it. In a savepoint, so a
        # value the database refuses leaves the request's transaction usable.
        try:
            with transaction.atomic(using=self.root_queryset.db):
                return super().get_results(request)
        except (DataError, ValueError, OverflowError) as exc:
            raise IncorrectLookupParameters(exc) from exc


class UrlGuardMixin(_AdminBase):
    """For a ModelAdmin: hostile filters, drill-downs and searches get the admin's usual
    answers (see the module docstring)."""

    def get_changelist(self, request, **kwargs):
        return GuardedChangeList

    def lookup_allowed(self, lookup, value, request=None) -> bool:
        if not super().lookup_allowed(lookup, value, request):
            return False
        try:
            lookups, _, _ = Query(self.model).solve_lookup_type(lookup)
        except FieldError:
            return True  # no such field: the changelist answers ?e=1
        return set(lookups) <= URL_LOOKUPS

    # The stubs add the `action_location` argument of Django 6; Django 5.2 has none.
    def response_action(self, request, queryset):  # type: ignore[override]
        # Django filters the changelist by the selected ids unchecked: one that is no id
        # ("abc") would be a server error.
        pk = self.model._meta.pk
        try:
            for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
                pk.to_python(value)
        except ValidationError:
            self.message_user(
                request,
                "The selection is not a list of ids. No items have been changed.",
                messages.WARNING,
            )
            return None  # the changelist shows the message
        return super().response_action(request, queryset)

    def get_search_results(self, request, queryset, search_term):
        # PostgreSQL text cannot hold NUL. The changelist's search form refuses it; the
        # autocomplete view passes its term straight here.
        if "\x00" in search_term:
            return queryset.none(), False
        return super().get_search_results(request, queryset, search_term)


def guard_site(site) -> None:
    """Give the admins other apps registered (auth, axes, ...) the same guards: each is
    registered again as a subclass with UrlGuardMixin first. Call before `site.urls`."""
    for model, model_admin in list(site._registry.items()):
        if isinstance(model_admin, UrlGuardMixin):
            continue
        cls = type(model_admin)
        guarded = type(cls.__name__, (UrlGuardMixin, cls), {"__module__": cls.__module__})
        site.unregister(model)
        site.register(model, guarded)
