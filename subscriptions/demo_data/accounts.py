"""The demo's customers and what they buy: company names, the currency each bills in,
the price lists, and subscriptions spread over every QSR state and ineligibility reason.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from subscriptions import billing
from subscriptions.models import Namespace, Subscription

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
CURRENCY_FOR_SUFFIX = {"GmbH": "EUR", "SA": "EUR", "Ltd": "GBP", "KK": "JPY"}
PRICES = {  # annual price per seat, by currency and plan
    "USD": {"premium": Decimal("348.00"), "ultimate": Decimal("1188.00")},
    "EUR": {"premium": Decimal("319.00"), "ultimate": Decimal("1090.00")},
    "GBP": {"premium": Decimal("276.00"), "ultimate": Decimal("945.00")},
    "JPY": {"premium": Decimal("52000"), "ultimate": Decimal("178000")},
}


def customer_names(count: int) -> list[str]:
    names = [f"{a} {n} {s}" for s in _SUFFIXES for a in _ADJECTIVES for n in _NOUNS]
    random.Random(7).shuffle(names)
    return names[:count]


def eligibility_variant(n: int, ns: Namespace) -> dict:
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


def subscription_rows(plans: list[dict], *, anchor: date, support_user) -> list[Subscription]:
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
