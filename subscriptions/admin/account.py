"""The account page: a subscription's page shows the account on one screen, a summary at
the top, the seat-usage chart of the term, and its related records as panels
(reconciliations, invoices, suspensions, recent history; approvals adds its requests and
disputes). A reconciliation's page shows its invoice the same way.

Every panel lists records the user may see (`policy.visible`), so a sales manager sees
only their own accounts' records here as everywhere else.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Field, OuterRef, QuerySet, Subquery
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from portal import policy
from subscriptions.admin.common import money
from subscriptions.admin.panels import Column, Panel, changelist_url, link
from subscriptions.charts import seat_usage_chart
from subscriptions.models import (
    Invoice,
    InvoiceLine,
    Reconciliation,
    SeatUsageReport,
    Subscription,
    Suspension,
)
from subscriptions.selectors import seat_usage
from subscriptions.services.lifecycle import qsr_label

HISTORY_TYPES = {"+": "Created", "~": "Changed", "-": "Deleted"}


def _visible(request: HttpRequest, qs: QuerySet, path: str) -> QuerySet:
    return policy.visible(qs, request.user, customer_path=path)


# --- Reconciliations ---------------------------------------------------------------------


def _reconciliations(request: HttpRequest, sub: Subscription) -> QuerySet:
    invoice = InvoiceLine.objects.filter(
        reconciliation=OuterRef("pk"), kind=InvoiceLine.Kind.QSR_OVERAGE
    ).values("invoice_id")[:1]
    qs = Reconciliation.objects.filter(subscription=sub).annotate(invoice_id=Subquery(invoice))
    return _visible(request, qs.order_by("-reconciliation_date", "-id"), "subscription__customer")


def _invoice_link(obj: Any) -> str:
    pk = getattr(obj, "invoice_id", None)
    if pk is None:
        return "—"
    return link(Invoice(pk=pk), f"INV-{pk:07d}")


def _reconciliation_status(recon: Reconciliation) -> str:
    if recon.skip_reason:
        return f"{recon.get_status_display()}: {recon.get_skip_reason_display()}"
    return recon.get_status_display()


RECONCILIATIONS = Panel(
    id="account-reconciliations",
    title="Reconciliations",
    records=_reconciliations,
    columns=(
        Column("Quarter", lambda r: link(r, f"Q{r.quarter} {r.term_start:%Y}")),
        Column("Date", lambda r: r.reconciliation_date),
        Column("Status", _reconciliation_status),
        Column("Overage seats", lambda r: "—" if r.overage_seats is None else r.overage_seats),
        Column("Amount", lambda r: money(r.amount, r.currency)),
        Column("Invoice", _invoice_link),
    ),
    all_url=lambda sub: changelist_url(Reconciliation, subscription__id__exact=sub.pk),
    empty="No reconciliation yet.",
)


# --- Invoices ----------------------------------------------------------------------------


def _invoices(request: HttpRequest, sub: Subscription) -> QuerySet:
    qs = Invoice.objects.filter(subscription=sub).with_totals().order_by("-issue_date", "-id")
    return _visible(request, qs, "customer")


INVOICES = Panel(
    id="account-invoices",
    title="Invoices and credit memos",
    records=_invoices,
    columns=(
        Column("Number", lambda i: link(i, i.number)),
        Column("Issued", lambda i: i.issue_date),
        Column("Total", lambda i: money(i.total, i.currency)),
        Column("Type", lambda i: "Credit memo" if i.total < 0 else "Invoice"),
    ),
    all_url=lambda sub: changelist_url(Invoice, subscription__id__exact=sub.pk),
    empty="No invoice yet.",
)


# --- Suspensions -------------------------------------------------------------------------


def _suspensions(request: HttpRequest, sub: Subscription) -> QuerySet:
    qs = Suspension.objects.filter(subscription=sub).order_by("-suspend_date", "-id")
    return _visible(request, qs, "subscription__customer")


SUSPENSIONS = Panel(
    id="account-suspensions",
    title="Suspensions and free periods",
    records=_suspensions,
    columns=(
        Column("Kind", lambda s: link(s, s.get_mode_display())),
        Column("From", lambda s: s.suspend_date),
        Column("Resumes", lambda s: s.resume_date),
        Column("Days", lambda s: s.days),
        Column("Term extended", lambda s: "Yes" if s.extend_term else "No"),
        Column("Status", lambda s: s.get_status_display()),
    ),
    all_url=lambda sub: changelist_url(Suspension, subscription__id__exact=sub.pk),
    empty="Never suspended.",
)


# --- History -----------------------------------------------------------------------------


def _history(request: HttpRequest, sub: Subscription) -> QuerySet:
    # The subscription's page is only found for users who may see it; its history rows
    # are its own.
    return sub.history.select_related("history_user").order_by("-history_date", "-history_id")


def _value(field, value) -> str:
    if value in (None, ""):
        return "—"
    if field.choices:
        return str(dict(field.flatchoices).get(value, value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _prepare_changes(rows: list[Any]) -> None:
    """What each history row changed, against the row before it on the page (the oldest
    row of the page says only why)."""
    model = Subscription._meta
    shown = {f.name for f in model.concrete_fields} - {"updated_at", "created_at", "id"}
    for newer, older in zip(rows, [*rows[1:], None], strict=True):
        words = []
        if older is not None:
            for change in newer.diff_against(older).changes:
                if change.field not in shown:
                    continue
                field = model.get_field(change.field)
                if field.is_relation or not isinstance(field, Field):
                    continue
                words.append(
                    f"{str(field.verbose_name).capitalize()}: {_value(field, change.old)} → "
                    f"{_value(field, change.new)}"
                )
        newer.changed_words = "; ".join(words)


HISTORY = Panel(
    id="account-history",
    title="Recent history",
    records=_history,
    columns=(
        Column("When", lambda h: h.history_date.strftime("%Y-%m-%d %H:%M")),
        Column("Who", lambda h: h.history_user or "the portal (nightly run)"),
        Column("What", lambda h: HISTORY_TYPES.get(h.history_type, h.history_type)),
        Column("Why", lambda h: h.history_change_reason or "—"),
        Column("Changed", lambda h: h.changed_words or "—", prepare=_prepare_changes),
    ),
    all_url=lambda sub: reverse("admin:subscriptions_subscription_history", args=[sub.pk]),
    empty="No history kept.",
)

SUBSCRIPTION_PANELS = (RECONCILIATIONS, INVOICES, SUSPENSIONS, HISTORY)


# --- Summary and chart -------------------------------------------------------------------


def account_summary(sub: Subscription) -> list[tuple[str, str]]:
    """The few facts support reads first, linked where they are records."""
    ns = sub.namespace
    return [
        ("Customer", link(sub.customer)),
        ("Namespace", link(ns, f"{ns} ({ns.get_kind_display()})")),
        ("Status", sub.get_status_display()),
        ("Term", f"{sub.term_start} to {sub.term_end}"),
        ("Paid seats", f"{sub.seats:,}"),
        ("Seats in use", f"{ns.seats_in_use:,}"),
        ("Max seats used", f"{ns.max_seats_used:,}"),
        ("Price", f"{money(sub.annual_unit_price, sub.currency)} a seat a year"),
        ("QSR", qsr_label(sub)),
        ("Sales manager", str(sub.customer.owner or "—")),
    ]


def usage_chart(sub: Subscription) -> SafeString:
    return seat_usage_chart(seat_usage(sub), title=f"Seat usage of {sub.namespace}")


def usage_list_url(sub: Subscription) -> str:
    return changelist_url(SeatUsageReport, namespace__id__exact=sub.namespace_id)


def usage_link(sub: Subscription) -> str:
    return format_html('<a href="{}">Daily usage reports →</a>', usage_list_url(sub))


# --- A reconciliation's page -------------------------------------------------------------


def _reconciliation_invoices(request: HttpRequest, recon: Reconciliation) -> QuerySet:
    lines = InvoiceLine.objects.filter(reconciliation=recon).values("invoice_id")
    qs = Invoice.objects.filter(pk__in=lines).with_totals().order_by("-issue_date", "-id")
    return _visible(request, qs, "customer")


RECONCILIATION_INVOICES = Panel(
    id="reconciliation-invoices",
    title="Invoices",
    records=_reconciliation_invoices,
    columns=INVOICES.columns,
    empty="Not invoiced yet.",
)

RECONCILIATION_PANELS = (RECONCILIATION_INVOICES,)
