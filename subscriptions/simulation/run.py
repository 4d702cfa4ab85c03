"""Running a scenario (`run_scenario`): night by night through the real services and
nightly steps, in one transaction that is rolled back, and the ledger it returns (the
rules of the run are in this package's docstring).
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Context, Decimal, Inexact

from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, transaction

from portal.errors import DomainError
from portal.policy import SystemActor
from subscriptions import billing
from subscriptions.models import (
    Customer,
    Invoice,
    Namespace,
    Reconciliation,
    SeatUsageReport,
    Subscription,
    Suspension,
)
from subscriptions.services import subscriptions as services
from subscriptions.services.nightly import nightly_run
from subscriptions.simulation.scenario import (
    CHANNELS,
    NAMESPACE_KINDS,
    PAYMENTS,
    SUSPEND_MODES,
    Event,
    Scenario,
    ScenarioError,
)

# The services want a ticket on every change; a simulation has none to point to.
SIMULATION_TICKET = "https://simulation.invalid/scenario"
# Who the services act for: the portal itself, never a user.
SIMULATION = SystemActor("simulation")

# scenario.py spells out the models' choices so that reading a scenario needs no Django.
# If they drift apart, a scenario would be refused (or accepted) for the wrong reasons.
if (
    tuple(Namespace.Kind.values) != NAMESPACE_KINDS
    or tuple(Subscription.Channel.values) != CHANNELS
    or tuple(Subscription.Payment.values) != PAYMENTS
    or not set(SUSPEND_MODES) <= set(Suspension.Mode.values)
):
    raise ImproperlyConfigured(
        "subscriptions/simulation/scenario.py names choices the models do not have"
    )


class SimulationFailed(Exception):
    """The engine could not run the scenario (not the scenario's fault)."""


# Where a service's DomainError field shows in the scenario, per event kind.
_FIELD_PATHS = {
    "suspend": {"suspend_date": "date", "resume_date": "suspend.resume", "mode": "suspend.mode"},
    "disable_qsr_bug": {"bug_url": "disable_qsr_bug"},
    "pause_qsr_until": {"until": "pause_qsr_until"},
}


def run_scenario(scenario: Scenario) -> dict:
    """Run the scenario night by night, return its ledger, and roll everything back.

    Raises ScenarioError when a service refuses an event (naming the event), and
    SimulationFailed when the engine reports an error or another run holds its lock.
    """
    try:
        return _run(scenario)
    except DatabaseError as exc:
        raise SimulationFailed(f"the database refused the simulation: {exc}") from exc


def _run(scenario: Scenario) -> dict:
    by_day: dict[date, list[Event]] = {}
    for event in scenario.events:
        by_day.setdefault(event.date, []).append(event)
    with transaction.atomic():
        sub = _create_subscription(scenario)
        usage = peak = sub.seats
        day = sub.term_start
        while day < scenario.until:
            for event in by_day.get(day, []):
                if event.kind == "usage":
                    usage = event.value
                else:
                    _apply(event, sub)
            peak = max(peak, usage)
            SeatUsageReport.objects.create(
                namespace_id=sub.namespace_id,
                date=day,
                billable_users=usage,
                max_historical_user_count=peak if sub.namespace.kind == "self_managed" else None,
            )
            _night(day, sub)
            day += timedelta(days=1)
        ledger = _ledger(sub)
        transaction.set_rollback(True)
    return ledger


def _create_subscription(scenario: Scenario) -> Subscription:
    fields, tag = scenario.subscription, uuid.uuid4().hex[:12]
    customer = Customer.objects.create(
        name=f"Simulation {tag}",
        billing_email="billing@simulation.invalid",
        currency=fields["currency"],
    )
    self_managed = scenario.namespace_kind == Namespace.Kind.SELF_MANAGED
    namespace = Namespace.objects.create(
        customer=customer,
        kind=scenario.namespace_kind,
        name=f"simulation-{tag}.invalid" if self_managed else f"simulation-{tag}",
        license_key=f"SIMULATION-{tag}" if self_managed else "",
        seats_in_use=fields["seats"],
        max_seats_used=fields["seats"],
        usage_counted_from=fields["term_start"],
    )
    return Subscription.objects.create(customer=customer, namespace=namespace, **fields)


def _apply(event: Event, sub: Subscription) -> None:
    try:
        if event.kind == "suspend":
            services.suspension_schedule(
                subscription=sub,
                suspend_date=event.date,
                resume_date=event.value["resume"],
                mode=event.value["mode"],
                extend_term=event.value["extend_term"],
                ticket_url=SIMULATION_TICKET,
                actor=SIMULATION,
                reason="simulation",
            )
        elif event.kind == "disable_qsr_bug":
            services.subscription_qsr_disable_for_bug(
                subscription=sub,
                bug_url=event.value,
                ticket_url=SIMULATION_TICKET,
                actor=SIMULATION,
            )
        elif event.kind == "enable_qsr":
            services.subscription_qsr_enable(subscription=sub, actor=SIMULATION)
        else:
            services.subscription_qsr_pause(
                subscription=sub, until=event.value, actor=SIMULATION, today=event.date
            )
    except DomainError as exc:
        field = _FIELD_PATHS.get(event.kind, {}).get(exc.field or "", event.kind)
        raise ScenarioError([f"events[{event.index}].{field}: {exc.message}"]) from exc


def _night(day: date, sub: Subscription) -> None:
    # Limited to the scenario's subscription: no nightly lock, no real rows touched.
    result = nightly_run(run_date=day, trigger="simulation", only=[sub.pk])
    if result.errors:
        details = "; ".join(f"{e['step']}: {e['error']}" for e in result.errors)
        raise SimulationFailed(f"the nightly run for {day} reported errors: {details}")


def _ledger(sub: Subscription) -> dict:
    sub.refresh_from_db()
    sub.namespace.refresh_from_db()
    currency = sub.currency
    recons = Reconciliation.objects.filter(subscription=sub).order_by("reconciliation_date", "pk")
    invoices = (
        Invoice.objects.filter(subscription=sub)
        .prefetch_related("lines")
        .order_by("issue_date", "pk")
    )
    return {
        "reconciliations": [
            {
                "quarter": r.quarter,
                "date": r.reconciliation_date.isoformat(),
                "status": r.status,
                "max_seats_used": r.max_seats_used,
                "overage": r.overage_seats,
                "amount": _money(r.amount, currency),
                "skip_reason": r.skip_reason or None,
            }
            for r in recons
        ],
        "invoices": [
            {
                "date": inv.issue_date.isoformat(),
                # Totals are sums of the rounded lines (DOMAIN.md "Money").
                "total": _money(sum((x.amount for x in inv.lines.all()), Decimal(0)), currency),
                "lines": [
                    {
                        "kind": line.kind,
                        "quantity": line.quantity,
                        "amount": _money(line.amount, currency),
                        "period_start": line.period_start.isoformat(),
                        "period_end": line.period_end.isoformat(),
                    }
                    for line in inv.lines.all()
                ],
            }
            for inv in invoices
        ],
        "subscription": {
            "seats": sub.seats,
            "term_end": sub.term_end.isoformat(),
            "status": sub.status,
            "max_seats_used": sub.namespace.max_seats_used,
        },
    }


def _money(amount: Decimal | None, currency: str) -> str | None:
    """The stored amount with exactly the currency's decimals ("14000.00" -> "14000" in
    JPY). Amounts are rounded when written; the Inexact trap makes sure this only drops
    zeros and never rounds a second time."""
    if amount is None:
        return None
    exponent = Decimal(1).scaleb(-billing.minor_unit(currency))
    return str(amount.quantize(exponent, context=Context(prec=50, traps=[Inexact])))
