"""Panels of related records on a change page: an account's reconciliations, invoices,
suspensions, history, and what other apps hang off it (approvals adds its requests and
disputes with `add_panels`, as it adds its buttons with `add_object_actions`, so this app
need not know it).

A panel lists the last few records the user may see (`LIMIT`), each linked, with "all
N →" to the filtered list. Every panel costs the same few queries whatever the number
of records: a count, the rows, and one query per column that needs more than the row
(`Column.prepare`, for all rows at once).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

    _AdminBase = ModelAdmin[Any]
else:
    _AdminBase = object

LIMIT = 10


@dataclass(frozen=True)
class Column:
    title: str
    cell: Callable[[Any], str]  # a row -> escaped HTML (format_html) or plain text
    # Loads what `cell` needs for all the rows of the page at once (one query).
    prepare: Callable[[list[Any]], None] | None = None


@dataclass(frozen=True)
class Table:
    """A panel as the page shows it."""

    id: str
    title: str
    columns: list[str]
    rows: list[list[str]]
    total: int
    all_url: str | None
    empty: str


@dataclass(frozen=True)
class Panel:
    id: str  # the element's id, e.g. "account-reconciliations"
    title: str
    # The related records of `obj` the user may see, in the order shown.
    records: Callable[[HttpRequest, Any], QuerySet]
    columns: tuple[Column, ...]
    all_url: Callable[[Any], str] | None = None  # the filtered list of all of them
    empty: str = "None yet."
    limit: int = LIMIT

    def table(self, request: HttpRequest, obj: Any) -> Table:
        records = self.records(request, obj)
        rows = list(records[: self.limit])
        total = records.count()
        for column in self.columns:
            if column.prepare is not None and rows:
                column.prepare(rows)
        return Table(
            id=self.id,
            title=self.title,
            columns=[c.title for c in self.columns],
            rows=[[str(c.cell(row)) for c in self.columns] for row in rows],
            total=total,
            all_url=self.all_url(obj) if self.all_url else None,
            empty=self.empty,
        )


class PanelsMixin(_AdminBase):
    """For a ModelAdmin: `panels` are shown on the change page as `panels` in the context."""

    panels: tuple[Panel, ...] = ()

    def panel_tables(self, request: HttpRequest, obj: Any) -> list[Table]:
        return [panel.table(request, obj) for panel in self.panels]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["panels"] = self.panel_tables(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)


def add_panels(
    admin_class: type[PanelsMixin], panels: Sequence[Panel], *, after: str | None = None
) -> None:
    """Add `panels` to the change page of `admin_class` (another app's admin), right
    after the panel with the id `after`, or last. Adding the same again changes nothing."""
    current = list(admin_class.panels)
    new = [p for p in panels if p.id not in {c.id for c in current}]
    ids = [p.id for p in current]
    if after is not None and after not in ids:
        raise ImproperlyConfigured(f"{admin_class.__name__} has no panel {after!r}.")
    at = len(current) if after is None else ids.index(after) + 1
    admin_class.panels = (*current[:at], *new, *current[at:])


def add_panel_column(admin_class: type[PanelsMixin], panel_id: str, column: Column) -> None:
    """Add `column` to the panel `panel_id` of `admin_class` (once)."""
    panels = list(admin_class.panels)
    at = next((i for i, p in enumerate(panels) if p.id == panel_id), None)
    if at is None:
        raise ImproperlyConfigured(f"{admin_class.__name__} has no panel {panel_id!r}.")
    if column.title not in {c.title for c in panels[at].columns}:
        panels[at] = dataclasses.replace(panels[at], columns=(*panels[at].columns, column))
    admin_class.panels = tuple(panels)


# --- Cells -------------------------------------------------------------------------------


def change_url(obj: Model) -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])


def changelist_url(model: type[Model], **filters: object) -> str:
    opts = model._meta
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    return f"{url}?{query}" if query else url


def link(obj: Model | None, text: object = None) -> str:
    """`obj` linked to its page; "—" for none."""
    if obj is None:
        return "—"
    return format_html('<a href="{}">{}</a>', change_url(obj), obj if text is None else text)
