"""The demo book written in one go (`seed`), in the order its records depend on each
other: customers and their owners, namespaces, usage, subscriptions, then their past.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from guardian.shortcuts import assign_perm
from simple_history.utils import bulk_create_with_history

from portal.policy import OWN_CUSTOMER
from subscriptions import billing
from subscriptions.demo_data.accounts import (
    CURRENCY_FOR_SUFFIX,
    PRICES,
    customer_names,
    eligibility_variant,
    subscription_rows,
)
from subscriptions.demo_data.history import (
    CHANGE_REASON,
    reconciliations_write,
    recurring_invoices_write,
    suspensions_write,
)
from subscriptions.demo_data.usage import USAGE_DAYS, usage_series
from subscriptions.models import (
    Customer,
    Invoice,
    Namespace,
    Reconciliation,
    SeatUsageReport,
    Subscription,
    Suspension,
)


@dataclass
class Seeded:
    counts: dict[str, int] = field(default_factory=dict)


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
        currency = CURRENCY_FOR_SUFFIX.get(name.rsplit(" ", 1)[1], "USD")
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
        # guardian assigns to a list of objects in bulk; its annotation names one model.
        owned = [c for c in customer_rows if c.owner == manager]
        assign_perm(OWN_CUSTOMER, manager, owned)  # type: ignore[arg-type]

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
    plans: list[dict[str, Any]] = []
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
        attrs = eligibility_variant(n, ns)
        plans.append(
            {
                "ns": ns,
                "plan": plan,
                "seats": seats,
                "price": PRICES[currency][plan],
                "currency": currency,
                "term_start": term_start,
                "variant": n,
                "attrs": attrs,
                "usage": usage_series(rng, seats, USAGE_DAYS),
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

    subs = subscription_rows(plans, anchor=anchor, support_user=support_user)
    subs = bulk_create_with_history(subs, Subscription, default_change_reason=CHANGE_REASON)
    result.counts["subscriptions"] = len(subs)
    for sub, p in zip(subs, plans, strict=True):
        p["sub"] = sub

    recurring_invoices_write(plans)
    suspensions = suspensions_write(plans, anchor=anchor)
    reconciliations_write(plans, anchor=anchor, first_day=first_day, suspensions=suspensions)
    result.counts["suspensions"] = Suspension.objects.count()
    result.counts["reconciliations"] = Reconciliation.objects.count()
    result.counts["invoices"] = Invoice.objects.count()
    return result
