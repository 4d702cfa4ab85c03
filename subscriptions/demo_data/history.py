"""The demo book's past up to the anchor date: the invoice of each term, suspensions
with their proration lines, and every quarter's reconciliation with its QSR invoice.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from subscriptions import billing
from subscriptions.models import (
    Invoice,
    InvoiceLine,
    Namespace,
    Reconciliation,
    Subscription,
    Suspension,
    qsr_ineligibility,
)
from subscriptions.services.ledger import invoices_write, recurring_invoice_spec

# The change reason on every history row the demo book writes (django-simple-history).
CHANGE_REASON = "demo data"


def _write_invoice(*, sub: Subscription, issue_date: date, key: str, lines: list[dict]):
    invoice = Invoice.objects.create(
        customer=sub.customer,
        subscription=sub,
        issue_date=issue_date,
        currency=sub.currency,
        idempotency_key=key,
    )
    InvoiceLine.objects.bulk_create(InvoiceLine(invoice=invoice, **line) for line in lines)
    return invoice


def recurring_invoices_write(plans: list[dict]) -> None:
    specs = [
        recurring_invoice_spec(
            p["sub"], description=f"{p['sub'].get_plan_display()} annual subscription"
        )
        for p in plans
    ]
    invoices_write(specs=specs, reason=CHANGE_REASON)


def suspensions_write(plans: list[dict], *, anchor: date) -> dict[int, list[Suspension]]:
    """A few suspensions: past ones with their lines, one running today, one upcoming."""
    by_sub: dict[int, list[Suspension]] = {}
    eligible = [p for p in plans if p["attrs"] == {"qsr_state": "enabled"}]
    cases = [  # (days after term start, length, mode, extend, when)
        (40, 25, "credit", True, "past"),
        (60, 30, "credit", False, "past"),
        (50, 20, "freeze", True, "past"),
        (30, 14, "free_period", True, "past"),
        (0, 21, "credit", False, "now"),
        (0, 30, "freeze", True, "upcoming"),
    ]
    for p, (offset, length, mode, extend, when) in zip(eligible[::7], cases, strict=False):
        sub: Subscription = p["sub"]
        if when == "past":
            start = sub.term_start + timedelta(days=offset)
        elif when == "now":
            start = anchor - timedelta(days=3)
        else:
            start = anchor + timedelta(days=10)
        end = start + timedelta(days=length)
        if not (
            sub.term_start <= start and end <= sub.term_end and (when != "past" or end <= anchor)
        ):
            continue
        status = {"past": "resumed", "now": "active", "upcoming": "scheduled"}[when]
        suspension = Suspension(
            subscription=sub,
            suspend_date=start,
            resume_date=end,
            mode=mode,
            extend_term=extend,
            status=status,
            ticket_url=f"https://support.example.com/tickets/{77000 + sub.pk}",
            reason="Customer asked to pause service during a migration.",
        )
        suspension.save()
        by_sub.setdefault(sub.pk, []).append(suspension)
        if when == "now":
            sub.status = Subscription.Status.SUSPENDED
            sub.save(update_fields=["status"])
        if when != "past":
            continue
        proration = billing.suspension_proration(
            mode=mode,
            charge=sub.seats * sub.annual_unit_price,
            currency=sub.currency,
            term_start=sub.term_start,
            term_end=sub.term_end,
            start=start,
            end=end,
            extend_term=extend,
        )
        for line in proration.lines:
            _write_invoice(
                sub=sub,
                issue_date=line.date,
                key=f"suspension:{suspension.pk}:{line.kind}",
                lines=[
                    {
                        "kind": line.kind,
                        "description": f"{suspension.get_mode_display()}, {line.days} days",
                        "quantity": sub.seats,
                        "unit_price": sub.annual_unit_price,
                        "period_start": line.period_start,
                        "period_end": line.period_end,
                        "amount": line.amount,
                        "suspension": suspension,
                    }
                ],
            )
        if proration.new_term_end != sub.term_end:
            sub.term_end = proration.new_term_end
            sub.save(update_fields=["term_end"])
    return by_sub


def reconciliations_write(
    plans: list[dict], *, anchor: date, first_day: date, suspensions: dict[int, list[Suspension]]
) -> None:
    """Every quarter end up to today, priced as the nightly job would have priced it."""
    for p in plans:
        sub: Subscription = p["sub"]
        ns: Namespace = p["ns"]
        eligible = not qsr_ineligibility(sub)
        paid = sub.seats
        self_managed = ns.kind == Namespace.Kind.SELF_MANAGED
        for quarter, when in enumerate(billing.reconciliation_dates(sub.term_start), start=1):
            if when > anchor:
                break
            notify = when + timedelta(days=6 if self_managed else 0)
            recon = Reconciliation(
                subscription=sub,
                term_start=sub.term_start,
                quarter=quarter,
                reconciliation_date=when,
                notify_date=notify,
                invoice_date=notify + timedelta(days=7),
                currency=sub.currency,
            )
            suspended = any(
                s.suspend_date <= when < s.resume_date and s.mode != "free_period"
                for s in suspensions.get(sub.pk, [])
            )
            skip = (
                "disabled_for_bug"
                if sub.qsr_state == "disabled_for_bug"
                else "paused"
                if sub.qsr_state == "paused"
                else "ineligible"
                if not eligible
                else "suspended"
                if suspended
                else ""
            )
            if skip:
                recon.status, recon.skip_reason = Reconciliation.Status.SKIPPED, skip
                recon.save()
                continue
            if notify > anchor:
                recon.save()  # scheduled: priced by the nightly job on its notice day
                continue
            window = p["usage"][(sub.term_start - first_day).days : (when - first_day).days]
            result = billing.qsr_reconcile(
                quarter=quarter,
                max_seats_used=max(window),
                paid_seats=paid,
                annual_unit_price=sub.annual_unit_price,
                currency=sub.currency,
            )
            recon.seats_paid = paid
            recon.max_seats_used = result.max_seats_used
            recon.overage_seats = result.overage
            recon.annual_unit_price = sub.annual_unit_price
            recon.remaining_quarters = result.remaining_quarters
            recon.amount = result.amount
            if result.overage == 0:
                recon.status = Reconciliation.Status.PROCESSED
            elif recon.invoice_date <= anchor:
                recon.status = Reconciliation.Status.PROCESSED
                recon.notified_at = datetime.combine(notify, datetime.min.time(), UTC)
                recon.invoiced_at = datetime.combine(recon.invoice_date, datetime.min.time(), UTC)
                paid = result.new_paid_seats
            else:
                recon.status = Reconciliation.Status.PENDING
                recon.notified_at = datetime.combine(notify, datetime.min.time(), UTC)
            recon.save()
            if recon.invoiced_at:
                _write_invoice(
                    sub=sub,
                    issue_date=recon.invoice_date,
                    key=f"qsr:{recon.pk}",
                    lines=[
                        {
                            "kind": InvoiceLine.Kind.QSR_OVERAGE,
                            "description": f"QSR Q{quarter}: {result.overage} seats over",
                            "quantity": result.overage,
                            "unit_price": billing.round_money(result.amount_per_seat, sub.currency),
                            "period_start": when,
                            "period_end": sub.term_end,
                            "amount": result.amount,
                            "reconciliation": recon,
                        }
                    ],
                )
        if paid != sub.seats:
            sub.seats = paid
            sub.save(update_fields=["seats"])
