"""Deterministic demo data for `manage.py seed_demo`.

The same seed and anchor date always give the same records: customers and their
namespaces, a year of daily usage with growth and dips, subscriptions in every QSR state,
reconciliations priced by the real money functions, suspensions with their proration
lines, and the invoices of all of it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from guardian.shortcuts import assign_perm
from simple_history.utils import bulk_create_with_history

from approvals.policy import OWN_CUSTOMER
from subscriptions import billing
from subscriptions.models import (
    Customer,
    Invoice,
    InvoiceLine,
    Namespace,
    Reconciliation,
    SeatUsageReport,
    Subscription,
    Suspension,
    qsr_ineligibility,
)
from subscriptions.services.ledger import invoices_write, recurring_invoice_spec

CHANGE_REASON = "demo data"
USAGE_DAYS = 365

_ADJECTIVES = [
    "Acme",
    "Apex",
    "Blue",
    "Bright",
    "Cedar",
    "Copper",
    "Delta",
    "Eagle",
    "Ember",
    "Falcon",
    "Granite",
    "Harbor",
    "Indigo",
    "Juniper",
    "Keystone",
    "Lunar",
    "Maple",
    "Nimbus",
    "Northern",
    "Oak",
    "Orbit",
    "Pioneer",
    "Quartz",
    "Redwood",
    "Silver",
    "Summit",
    "Tidal",
    "Unity",
    "Vertex",
    "Willow",
    "Zenith",
]
_NOUNS = [
    "Analytics",
    "Biotech",
    "Cloud",
    "Dynamics",
    "Energy",
    "Foods",
    "Freight",
    "Games",
    "Health",
    "Labs",
    "Logistics",
    "Media",
    "Networks",
    "Robotics",
    "Software",
    "Systems",
    "Telecom",
    "Ventures",
]
_SUFFIXES = ("Inc", "GmbH", "Ltd", "KK", "SA", "LLC")
_CURRENCY_FOR_SUFFIX = {"GmbH": "EUR", "SA": "EUR", "Ltd": "GBP", "KK": "JPY"}
_PRICES = {  # annual price per seat, by currency and plan
    "USD": {"premium": Decimal("348.00"), "ultimate": Decimal("1188.00")},
    "EUR": {"premium": Decimal("319.00"), "ultimate": Decimal("1090.00")},
    "GBP": {"premium": Decimal("276.00"), "ultimate": Decimal("945.00")},
    "JPY": {"premium": Decimal("52000"), "ultimate": Decimal("178000")},
}


@dataclass
class Seeded:
    counts: dict[str, int] = field(default_factory=dict)


def customer_names(count: int) -> list[str]:
    names = [f"{a} {n} {s}" for s in _SUFFIXES for a in _ADJECTIVES for n in _NOUNS]
    random.Random(7).shuffle(names)
    return names[:count]


def _usage_series(rng: random.Random, seats: int, days: int) -> list[int]:
    """Daily billable users: a drift (growth or shrink), weekend dips, a layoff or two."""
    level = seats * rng.uniform(0.8, 1.0)
    yearly_growth = rng.choice([-0.1, 0.0, 0.05, 0.1, 0.2, 0.3, 0.5])
    daily = (1 + yearly_growth) ** (1 / 365)
    dips = {rng.randrange(days): rng.uniform(0.7, 0.95) for _ in range(rng.randrange(3))}
    series = []
    for day in range(days):
        level *= daily * rng.uniform(0.995, 1.005)
        level *= dips.get(day, 1.0)
        weekend = 0.97 if day % 7 in (5, 6) else 1.0
        series.append(max(0, round(level * weekend)))
    return series


def seed(
    *,
    anchor: date,
    customers: int,
    sales_managers: list,
    support_user,
    progress: Callable[[Iterable, str, int], Iterable] = lambda it, desc, total: it,
    rng_seed: int = 2026,
) -> Seeded:
    """Write the demo records. Call inside a transaction; the caller checks emptiness."""
    rng = random.Random(rng_seed)
    result = Seeded()
    first_day = anchor - timedelta(days=USAGE_DAYS - 1)

    customer_rows = []
    for i, name in enumerate(customer_names(customers)):
        currency = _CURRENCY_FOR_SUFFIX.get(name.rsplit(" ", 1)[1], "USD")
        customer_rows.append(
            Customer(
                name=name,
                billing_email=f"billing@{name.split()[0].lower()}-{i}.example.com",
                currency=currency,
                owner=sales_managers[i % len(sales_managers)],
            )
        )
    customer_rows = bulk_create_with_history(
        customer_rows, Customer, default_change_reason=CHANGE_REASON
    )
    for manager in sales_managers:
        # Ownership is what scopes a sales manager to their accounts (django-guardian).
        assign_perm(OWN_CUSTOMER, manager, [c for c in customer_rows if c.owner == manager])

    namespaces: list[Namespace] = []
    for i, customer in enumerate(customer_rows):
        slug = customer.name.lower().replace(" ", "-")
        kinds = ["saas"] if i % 4 else ["self_managed"]
        if i % 9 == 0:
            kinds.append("saas" if kinds[0] == "self_managed" else "self_managed")
        for kind in kinds:
            if kind == "saas":
                namespaces.append(Namespace(customer=customer, kind=kind, name=slug))
            else:
                namespaces.append(
                    Namespace(
                        customer=customer,
                        kind=kind,
                        name=f"gitlab.{slug}.example.com",
                        license_key=f"LIC-{i:05d}-{rng.randrange(16**8):08X}",
                        instance_id=f"inst-{rng.randrange(16**12):012x}",
                    )
                )

    # Plan each namespace's subscription and usage before writing anything.
    plans = []
    usage_rows: list[SeatUsageReport] = []
    for n, ns in enumerate(namespaces):
        currency = ns.customer.currency
        plan = "ultimate" if rng.random() < 0.3 else "premium"
        seats = int(rng.choice([5, 10, 25, 50, 100, 250, 500]) * rng.uniform(0.8, 1.6))
        term_start = anchor - timedelta(days=rng.randrange(20, 340))
        if n % 20 in (8, 9):
            # Q1 ended three days ago: SaaS ones are notified and pending, self-managed
            # ones still scheduled (their notice goes out six days after the quarter end).
            term_start = billing.add_months(anchor - timedelta(days=3), -3)
        attrs = _eligibility_variant(n, ns)
        plans.append(
            {
                "ns": ns,
                "plan": plan,
                "seats": seats,
                "price": _PRICES[currency][plan],
                "currency": currency,
                "term_start": term_start,
                "variant": n,
                "attrs": attrs,
                "usage": _usage_series(rng, seats, USAGE_DAYS),
            }
        )
    # Seats: today's usage and the high-water mark of the current term.
    for p in plans:
        ns, usage = p["ns"], p["usage"]
        ns.seats_in_use = usage[-1]
        offset = (p["term_start"] - first_day).days
        in_term = usage[offset:]
        ns.max_seats_used = max(in_term)
        peak_day = first_day + timedelta(days=offset + in_term.index(ns.max_seats_used))
        ns.max_seats_used_changed_at = datetime.combine(peak_day, datetime.min.time(), UTC)
    namespaces = bulk_create_with_history(
        namespaces, Namespace, default_change_reason=CHANGE_REASON
    )
    result.counts["customers"] = len(customer_rows)
    result.counts["namespaces"] = len(namespaces)

    # A year of usage reports; usage is the bulk of the data, so it goes in batches.
    for p in progress(plans, "usage", len(plans)):
        ns = p["ns"]
        running_max = 0
        for day, users in enumerate(p["usage"]):
            running_max = max(running_max, users)
            self_managed = ns.kind == Namespace.Kind.SELF_MANAGED
            usage_rows.append(
                SeatUsageReport(
                    namespace=ns,
                    date=first_day + timedelta(days=day),
                    billable_users=users,
                    max_historical_user_count=running_max if self_managed else None,
                    instance_id=ns.instance_id if self_managed else "",
                )
            )
        if len(usage_rows) >= 20_000:
            SeatUsageReport.objects.bulk_create(usage_rows)
            usage_rows.clear()
    # Seed usage is the starting point, not a change anyone made: no history rows for it.
    SeatUsageReport.objects.bulk_create(usage_rows)
    result.counts["usage reports"] = len(plans) * USAGE_DAYS

    subs = _subscriptions(plans, anchor=anchor, support_user=support_user)
    subs = bulk_create_with_history(subs, Subscription, default_change_reason=CHANGE_REASON)
    result.counts["subscriptions"] = len(subs)
    for sub, p in zip(subs, plans, strict=True):
        p["sub"] = sub

    _recurring_invoices(plans)
    suspensions = _suspensions(plans, anchor=anchor)
    _reconciliations(plans, anchor=anchor, first_day=first_day, suspensions=suspensions)
    result.counts["suspensions"] = Suspension.objects.count()
    result.counts["reconciliations"] = Reconciliation.objects.count()
    result.counts["invoices"] = Invoice.objects.count()
    return result


def _eligibility_variant(n: int, ns: Namespace) -> dict:
    """Spread the QSR states and every ineligibility reason over the book."""
    attrs: dict = {"qsr_state": "enabled"}
    match n % 20:
        case 1:
            attrs["channel"] = "reseller"
        case 2:
            attrs["payment_method"] = "purchase_order"
        case 3:
            attrs["program"] = ("education", "open_source", "startup")[n % 3]
        case 4:
            attrs["term_months"] = 24
        case 5 if ns.kind == Namespace.Kind.SELF_MANAGED:
            attrs["offline_license"] = True
        case 6:
            attrs["qsr_state"] = "disabled_for_bug"
        case 7:
            attrs["qsr_state"] = "paused"
    if n % 5 == 0:
        attrs["payment_method"] = attrs.get("payment_method", "invoice")
    return attrs


def _subscriptions(plans: list[dict], *, anchor: date, support_user) -> list[Subscription]:
    subs = []
    for p in plans:
        attrs = dict(p["attrs"])
        months = attrs.pop("term_months", 12)
        state = attrs.pop("qsr_state")
        sub = Subscription(
            customer=p["ns"].customer,
            namespace=p["ns"],
            plan=p["plan"],
            seats=p["seats"],
            annual_unit_price=p["price"],
            currency=p["currency"],
            term_start=p["term_start"],
            term_end=billing.add_months(p["term_start"], months),
            term_months=months,
            qsr_state=state,
            **attrs,
        )
        if state == "disabled_for_bug":
            sub.qsr_bug_url = f"https://bugs.example.com/issues/{4100 + p['variant']}"
            sub.qsr_ticket_url = f"https://support.example.com/tickets/{88000 + p['variant']}"
            sub.qsr_changed_by = support_user
            sub.qsr_changed_at = datetime.combine(p["term_start"], datetime.min.time(), UTC)
        elif state == "paused":
            sub.qsr_paused_until = anchor + timedelta(days=45)
        subs.append(sub)
    return subs


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


def _recurring_invoices(plans: list[dict]) -> None:
    specs = [
        recurring_invoice_spec(
            p["sub"], description=f"{p['sub'].get_plan_display()} annual subscription"
        )
        for p in plans
    ]
    invoices_write(specs=specs, reason=CHANGE_REASON)


def _suspensions(plans: list[dict], *, anchor: date) -> dict[int, list[Suspension]]:
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


def _reconciliations(
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
