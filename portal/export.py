"""CSV exports of the lists: what a person sees in a list, for a spreadsheet.

An admin that names its `export_columns` gets an "Export CSV" link on its list (for the
roles the policy lets export, `Action.EXPORT`) and the view behind it, `export.csv`
beside the list's URL. The link carries the list's query string, and the view builds
the list's own changelist from it, so the filters, the search, the sort and the
accounts the user may see are exactly the list's; only the page is dropped (the export
is every row of the list).

The file streams: one query through a server-side cursor (`iterator`, inside a
transaction so PostgreSQL reads the rows as they are sent rather than all at once
first), written out a chunk of rows at a time, in memory that does not grow with the
rows. The columns are in words (headers like "Customer", statuses by their label),
dates as ISO dates, times in the portal's time zone, amounts as plain decimal strings
in the currency's minor unit beside a currency column.

Spreadsheet safety: a cell of text from outside the portal (names, reasons, links,
descriptions) that begins with `=`, `+`, `-`, `@`, a tab or a carriage return would be
read as a formula: it gets a leading `'`. Numeric columns (amounts, seats, ids, dates)
are the portal's own and keep their sign.
"""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import PAGE_VAR
from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseBadRequest, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.text import slugify

from portal import policy

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

    _AdminBase = ModelAdmin[Any]
else:
    _AdminBase = object

# Rows fetched from the cursor, and written out, at a time.
CHUNK_ROWS = 2_000
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

Render = Callable[[Any, Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Column:
    """One column of an export: its header, the value's path from the listed model
    (as for `values_list`), how to show it (`render(value, row)`, `row` mapping every
    column's path to its value), and whether it is a number the portal computed (never
    escaped as a formula)."""

    header: str
    path: str
    render: Render | None = None
    numeric: bool = False


def safe_text(text: str) -> str:
    """`text` as a spreadsheet reads it as text, never as a formula."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def plain(value: Any) -> Any:
    """A value in words a spreadsheet reads: ISO dates, local times, yes/no."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime.datetime):
        local = timezone.localtime(value) if timezone.is_aware(value) else value
        return local.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def label(choices) -> Render:
    """Show a choice by its label ("Pending (notified)", not "pending")."""
    labels = dict(choices)
    return lambda value, row: labels.get(value, value)


def money(currency_path: str, decimals: Mapping[str, int]) -> Render:
    """An amount as a decimal string in its currency's minor unit ("750.00", "14000")."""

    def render(value, row):
        if value is None:
            return ""
        places = decimals.get(row[currency_path], 2)
        return str(Decimal(value).quantize(Decimal(1).scaleb(-places)))

    return render


def cell(column: Column, value: Any, row: Mapping[str, Any]) -> Any:
    shown = plain(column.render(value, row) if column.render else value)
    if isinstance(shown, str) and not column.numeric:
        return safe_text(shown)
    return shown


def csv_rows(queryset: QuerySet, columns: Sequence[Column]) -> Iterator[str]:
    """The CSV text of `queryset` in `columns`, header first, a chunk of rows at a time."""
    paths = list(dict.fromkeys(column.path for column in columns))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    # The byte order mark tells spreadsheets the file is UTF-8 (names with accents).
    buffer.write("\ufeff")
    writer.writerow([column.header for column in columns])
    yield buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    values = queryset.prefetch_related(None).values_list(*paths)
    with transaction.atomic(using=queryset.db):
        for n, row in enumerate(values.iterator(chunk_size=CHUNK_ROWS), start=1):
            by_path = dict(zip(paths, row, strict=True))
            writer.writerow([cell(column, by_path[column.path], by_path) for column in columns])
            if n % CHUNK_ROWS == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()


class CsvExportMixin(_AdminBase):
    """For a ModelAdmin: `export_columns` turn on the list's "Export CSV" link and its
    view (see the module docstring). `export_order` is appended to the list's ordering
    (e.g. the lines of each invoice, in order)."""

    export_columns: Sequence[Column] = ()
    export_order: tuple[str, ...] = ()

    def get_urls(self):
        urls = super().get_urls()
        if not self.export_columns:
            return urls
        opts = self.model._meta
        export = path(
            "export.csv",
            self.admin_site.admin_view(self.export_view),
            name=f"{opts.app_label}_{opts.model_name}_export",
        )
        return [export, *urls]

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if (
            self.export_columns
            and isinstance(response, TemplateResponse)
            and context is not None
            and "cl" in context
            and policy.may(request.user, policy.Action.EXPORT)
        ):
            opts = self.model._meta
            url = reverse(f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_export")
            context["export_url"] = url + context["cl"].get_query_string(remove=[PAGE_VAR])
        return response

    def export_view(self, request: HttpRequest):
        policy.check(request.user, policy.Action.EXPORT)
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except (IncorrectLookupParameters, SuspiciousOperation):
            return HttpResponseBadRequest(
                "The list's filters or search in this link are not valid; open the list, "
                "choose them again and export from there.",
                content_type="text/plain; charset=utf-8",
            )
        queryset = changelist.queryset
        if self.export_order:
            queryset = queryset.order_by(*queryset.query.order_by, *self.export_order)
        opts = self.model._meta
        name = f"{slugify(opts.verbose_name_plural)}-{timezone.localdate().isoformat()}.csv"
        response = StreamingHttpResponse(
            csv_rows(queryset, self.export_columns), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
