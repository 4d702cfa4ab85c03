"""Preview what the nightly engine does to one subscription: `manage.py simulate`.

A scenario is one subscription and a timeline of events, as JSON (the format, with its
optional keys, is in `subscriptions/management/commands/simulate.py`).

Rules of the run:

- The nightly run (`nightly_run`, every step, the real code) runs once for each date in
  ``[term_start, until)``: ``until`` is exclusive like every period end in the portal,
  so ``until`` = term end + 1 day includes the renewal night. (`run_nightly --until` is
  inclusive; a scenario is a period, a backfill a list of nights.)
- Events may come in any order. On its date each is applied through the real services
  before that night's run; events of one date in the order given. A ``suspend`` is
  scheduled on its date, so that night's run starts it.
- Usage: each day gets one seat usage report before the night's run, with the billable
  users of the latest ``usage`` event so far (the purchased seats before the first).
- The subscription starts paid: the invoice of its first term is not written, so the
  ledger shows only what the run adds (QSR, prorations, true-ups, renewal invoices).
- Everything happens in one transaction that is rolled back at the end, with its own
  customer and namespace (unique names): nothing is kept and no email leaves (they are
  sent on commit). The nightly steps also see the real subscriptions while they run,
  but only the simulated one is reported, and the rollback undoes the rest.
"""

from __future__ import annotations

import json
import re
import reprlib
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Context, Decimal, Inexact, InvalidOperation
from typing import Any

from django.db import DatabaseError, transaction

from approvals.policy import SystemActor
from subscriptions import billing
from subscriptions.billing import MAX_ANNUAL_UNIT_PRICE, MAX_SEATS
from subscriptions.errors import DomainError
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

EVENT_KINDS = ("usage", "suspend", "disable_qsr_bug", "enable_qsr", "pause_qsr_until")
# A free period is a concession granted through an approval, not a suspension to preview.
SUSPEND_MODES = (Suspension.Mode.CREDIT.value, Suspension.Mode.FREEZE.value)
MAX_NIGHTS = 5 * 366  # a runaway `until` would hold a transaction open for hours
MAX_TERM_MONTHS = 60
# Every date of a scenario falls in these years. They hold any real term, and keep every
# date the run computes (a few days before the term start; a renewal of up to 60 months
# plus a suspension's extension, and a few weeks, past `until`) centuries inside
# Python's dates, which end at the years 1 and 9999.
FIRST_DATE = date(1900, 1, 1)
LAST_DATE = date(2200, 12, 31)
# A day's usage changing every night of the longest run is 1,830 events; this leaves
# room for several changes a day and keeps a run to minutes.
MAX_EVENTS = 10_000
# Ten thousand events pretty-printed come to about 2 MiB; the size is checked before
# anything is decoded, so a huge file costs neither memory nor time.
MAX_SCENARIO_BYTES = 4 * 2**20
# Python converts at most 4,300 digits (less when configured); no count comes near this.
_LONGEST_INTEGER = 100
# The services want a ticket on every change; a simulation has none to point to.
SIMULATION_TICKET = "https://simulation.invalid/scenario"
# Who the services act for: the portal itself, never a user.
SIMULATION = SystemActor("simulation")
# ASCII digits only: \d and fromisoformat() also take full-width or Arabic-Indic digits.
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_]+")
# Control characters and lone surrogates: PostgreSQL stores neither in a text column.
_UNSTORABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


class ScenarioError(Exception):
    """The scenario cannot run; each problem reads ``path: what is wrong``."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class SimulationFailed(Exception):
    """The engine could not run the scenario (not the scenario's fault)."""


@dataclass(frozen=True)
class Event:
    index: int  # position in the scenario's list, for messages
    date: date
    kind: str
    value: Any


@dataclass(frozen=True)
class Scenario:
    namespace_kind: str
    subscription: dict[str, Any]  # Subscription field -> value
    events: tuple[Event, ...]  # in date order, then as given
    until: date


# --- Reading ----------------------------------------------------------------------------


TOO_LARGE = f"scenario: larger than {MAX_SCENARIO_BYTES // 2**20} MiB, the most a scenario may be"


def decode_scenario(raw: bytes) -> Any:
    """The JSON value in a scenario file's bytes. ScenarioError names a problem of the file
    as a whole (path ``scenario``): too large, not UTF-8, not JSON, nested too deep."""
    if len(raw) > MAX_SCENARIO_BYTES:
        raise ScenarioError([TOO_LARGE])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError([f"scenario: {_not_utf8(raw, exc.start)}"]) from None
    try:
        return json.loads(
            text.removeprefix("\ufeff"),  # the mark some editors put before UTF-8
            parse_int=_integer,
            parse_constant=_NonNumber,
            object_pairs_hook=_object,
        )
    except json.JSONDecodeError as exc:
        raise ScenarioError([f"scenario: not valid JSON: {exc}"]) from None
    except RecursionError:
        # json recurses once per level, so Python's recursion limit (about a thousand)
        # stops it; a scenario has four levels.
        raise ScenarioError(["scenario: lists and objects nested too deep to read"]) from None


def _not_utf8(raw: bytes, start: int) -> str:
    line_start = raw.rfind(b"\n", 0, start) + 1
    line = raw.count(b"\n", 0, line_start) + 1
    # What comes before the first bad byte is valid UTF-8: count it in characters, as the
    # JSON errors do.
    column = len(raw[line_start:start].decode("utf-8")) + 1
    return (
        f"not UTF-8: byte 0x{raw[start]:02x} at line {line}, column {column} "
        f"(byte {start + 1} of the file); save the file as UTF-8"
    )


@dataclass(frozen=True)
class _LongInteger:
    """A JSON integer too long to convert: refused by the parser that meets it."""

    negative: bool
    digits: int

    def __repr__(self) -> str:
        return f"a {'negative ' if self.negative else ''}number of {self.digits:,} digits"


@dataclass(frozen=True)
class _NonNumber:
    """NaN, Infinity or -Infinity: Python's json reads them, JSON has no such numbers."""

    literal: str

    def __repr__(self) -> str:
        return self.literal


def _integer(text: str) -> int | _LongInteger:
    digits = len(text.removeprefix("-"))
    if digits > _LONGEST_INTEGER:
        return _LongInteger(negative=text.startswith("-"), digits=digits)
    return int(text)


class _Object(dict):
    """A JSON object that remembers the keys given more than once (json keeps the last)."""

    repeated: tuple[str, ...] = ()


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object(pairs)
    if len(obj) < len(pairs):
        obj.repeated = tuple(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
    return obj


# --- Parsing ----------------------------------------------------------------------------


class _Bad(ValueError):
    pass


_REQUIRED = object()

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlong = 40


def _shown(value: Any) -> str:
    """`value` for a message: JSON's words for true, false and null, long values cut."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return _REPR.repr(value)


def _key(prefix: str, key: str) -> str:
    """The path of `key`; quoted when it holds more than letters, digits and _, so that a
    key cannot add lines or fake a path."""
    return prefix + (key if _PLAIN_KEY.fullmatch(key) else _shown(key))


def _date(value: Any) -> date:
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise _Bad(f"must be a date YYYY-MM-DD, got {_shown(value)}")
    try:
        result = date.fromisoformat(value)
    except ValueError:
        raise _Bad(f"not a calendar date: {value!r}") from None
    if not FIRST_DATE <= result <= LAST_DATE:
        years = f"{FIRST_DATE.year} to {LAST_DATE.year}"
        raise _Bad(f"must be a date in the years {years}, got {value!r}")
    return result


def _count(value: Any) -> int:
    """Seats or billable users: bounded like the models, so the ledger cannot overflow."""
    if isinstance(value, _LongInteger):
        if value.negative:
            raise _Bad(f"must not be negative, got {value!r}")
        raise _Bad(f"must be at most {MAX_SEATS:,}, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"must be a whole number, got {_shown(value)}")
    if value < 0:
        raise _Bad(f"must not be negative, got {value}")
    if value > MAX_SEATS:
        raise _Bad(f"must be at most {MAX_SEATS:,}, got {value}")
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Bad(f"must be true or false, got {_shown(value)}")
    return value


def _choice(*choices: str | None) -> Callable[[Any], Any]:
    def parse(value: Any) -> Any:
        if value not in choices:
            shown = ", ".join("null" if c is None else c for c in choices)
            raise _Bad(f"must be one of {shown}, got {_shown(value)}")
        return value

    return parse


def _currency(value: Any) -> str:
    if not isinstance(value, str) or value not in billing.CURRENCIES:
        bills_in = ", ".join(billing.CURRENCIES)
        raise _Bad(f"unknown currency {_shown(value)}: the portal bills in {bills_in}")
    return value


def _price(value: Any) -> Decimal:
    # A JSON number is read as a float, which cannot hold every price exactly.
    if not isinstance(value, str):
        raise _Bad(f'must be a string like "100.00", got {_shown(value)}')
    expected = f"must be an amount from 0 to {MAX_ANNUAL_UNIT_PRICE:,}, got {_shown(value)}"
    if len(value) > 40:  # no amount in range is written that long
        raise _Bad(expected)
    try:
        price = Decimal(value)
    except InvalidOperation:
        raise _Bad(f"not an amount: {value!r}") from None
    # The bound of the models (billing.py "Bounds"): seats x price fits the ledger.
    if not price.is_finite() or not 0 <= price <= MAX_ANNUAL_UNIT_PRICE:
        raise _Bad(expected)
    return price


def _link(value: Any) -> str:
    if not isinstance(value, str):
        raise _Bad(f"must be the bug report's link, got {_shown(value)}")
    bad = _UNSTORABLE.search(value)
    if bad:
        where = f"{bad.group()!r} at character {bad.start() + 1:,}"
        raise _Bad(f"must not contain control characters or lone surrogates, got {where}")
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, _NonNumber):
        return value.literal
    kinds = ((bool, "a boolean"), (dict, "an object"), (list, "a list"), (str, "a string"))
    return next((name for kind, name in kinds if isinstance(value, kind)), "a number")


class _Reader:
    """Collects every problem of a scenario, so one run reports all of them."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def object(self, value: Any, path: str, keys: tuple[str, ...], prefix: str) -> dict | None:
        if not isinstance(value, dict):
            self.fail(path, f"must be an object, got {_json_type(value)}")
            return None
        for key in value:
            if key not in keys:
                self.fail(_key(prefix, key), "unknown key")
        self.repeated(value, prefix)
        return value

    def repeated(self, obj: dict, prefix: str) -> None:
        for key in getattr(obj, "repeated", ()):
            self.fail(_key(prefix, key), "given more than once")

    def take(self, obj: dict, prefix: str, key: str, parse, default: Any = _REQUIRED) -> Any:
        """`parse(obj[key])`, or `default` when the key is missing; None on a problem."""
        if key not in obj:
            if default is _REQUIRED:
                self.fail(prefix + key, "required")
            return None if default is _REQUIRED else default
        try:
            return parse(obj[key])
        except _Bad as exc:
            self.fail(prefix + key, str(exc))
            return None


def parse_scenario(data: Any) -> Scenario:
    """Check a decoded scenario and return it typed; ScenarioError lists every problem."""
    r = _Reader()
    top = r.object(data, "scenario", ("subscription", "events", "until"), prefix="")
    if top is None:
        raise ScenarioError(r.problems)
    kind, sub = "", {}
    if "subscription" in top:
        kind, sub = _parse_subscription(r, top["subscription"])
    else:
        r.fail("subscription", "required")
    until = r.take(top, "", "until", _date)
    start = sub.get("term_start")
    if until and start and until <= start:
        r.fail("until", f"must be after subscription.term_start ({start})")
    elif until and start and (nights := (until - start).days) > MAX_NIGHTS:
        limit = f"at most {MAX_NIGHTS:,} nights after subscription.term_start ({start})"
        r.fail("until", f"{limit}, got {nights:,}")
    raw_events = top.get("events", [])
    if not isinstance(raw_events, list):
        r.fail("events", f"must be a list, got {_json_type(raw_events)}")
        raw_events = []
    elif len(raw_events) > MAX_EVENTS:
        r.fail("events", f"at most {MAX_EVENTS:,} events, got {len(raw_events):,}")
        raw_events = []
    events = [_parse_event(r, raw, i, start, until) for i, raw in enumerate(raw_events)]
    if r.problems:
        raise ScenarioError(r.problems)
    ordered = sorted((e for e in events if e), key=lambda e: (e.date, e.index))
    return Scenario(namespace_kind=kind, subscription=sub, events=tuple(ordered), until=until)


def _parse_subscription(r: _Reader, raw: Any) -> tuple[str, dict[str, Any]]:
    keys = ("namespace_kind", "seats", "annual_unit_price", "currency", "term_start")
    keys += ("term_end", "channel", "payment", "program", "offline_license")
    sub = r.object(raw, "subscription", keys, prefix="subscription.")
    if sub is None:
        return "", {}

    def take(key: str, parse, default: Any = _REQUIRED) -> Any:
        return r.take(sub, "subscription.", key, parse, default)

    kind = take("namespace_kind", _choice(*Namespace.Kind.values), "saas")
    fields = {
        "seats": take("seats", _count),
        "currency": take("currency", _currency),
        "annual_unit_price": take("annual_unit_price", _price),
        "term_start": take("term_start", _date),
        "term_end": take("term_end", _date),
        "channel": take("channel", _choice(*Subscription.Channel.values), "direct"),
        "payment_method": take("payment", _choice(*Subscription.Payment.values), "card"),
        "program": take("program", _choice(None, *billing.QSR_PROGRAMS), None) or "",
        "offline_license": take("offline_license", _boolean, False),
    }
    price, currency = fields["annual_unit_price"], fields["currency"]
    decimals = billing.minor_unit(currency) if currency else None
    if price is not None and decimals is not None and price.as_tuple().exponent < -decimals:
        r.fail("subscription.annual_unit_price", f"{currency} amounts have {decimals} decimals")
    start, end = fields["term_start"], fields["term_end"]
    if start and end and end <= start:
        r.fail("subscription.term_end", "must be after subscription.term_start")
    elif start and end:
        months = [m for m in range(1, MAX_TERM_MONTHS + 1) if billing.add_months(start, m) == end]
        if not months:
            r.fail("subscription.term_end", f"must be a whole number of months after {start}")
        fields["term_months"] = months[0] if months else None
    return kind, fields


def _parse_event(r: _Reader, raw: Any, index: int, start, until) -> Event | None:
    path = f"events[{index}]"
    if not isinstance(raw, dict):
        r.fail(path, f"must be an object, got {_json_type(raw)}")
        return None
    before = len(r.problems)
    expected = f"expected one of {', '.join(EVENT_KINDS)}"
    unknown = [key for key in raw if key != "date" and key not in EVENT_KINDS]
    for key in unknown:
        r.fail(_key(f"{path}.", key), f"unknown event kind: {expected}")
    r.repeated(raw, f"{path}.")
    kinds = [key for key in EVENT_KINDS if key in raw]
    if not kinds and not unknown:
        r.fail(path, f"no event kind: {expected}")
    elif len(kinds) > 1:
        r.fail(path, f"one event kind per event, got {' and '.join(kinds)}")
    when = r.take(raw, f"{path}.", "date", _date)
    if when and start and when < start:
        r.fail(f"{path}.date", f"before subscription.term_start ({start})")
    if when and until and when >= until:
        r.fail(f"{path}.date", f"not before until ({until}): the event would never run")
    if len(kinds) != 1:
        return None
    kind = kinds[0]
    value, prefix = raw[kind], f"{path}."
    if kind == "usage":
        value = r.take(raw, prefix, kind, _count)
    elif kind == "disable_qsr_bug":
        value = r.take(raw, prefix, kind, _link)
    elif kind == "enable_qsr" and value is not True:
        r.fail(path + ".enable_qsr", f"must be true, got {_shown(value)}")
    elif kind == "pause_qsr_until" and value is not None:
        value = r.take(raw, prefix, kind, _date)
    elif kind == "suspend":
        value = _parse_suspend(r, value, f"{path}.suspend", when)
    if len(r.problems) > before:
        return None
    return Event(index=index, date=when, kind=kind, value=value)


def _parse_suspend(r: _Reader, value: Any, path: str, when: date | None) -> dict | None:
    suspend = r.object(value, path, ("resume", "mode", "extend_term"), prefix=f"{path}.")
    if suspend is None:
        return None
    resume = r.take(suspend, f"{path}.", "resume", _date)
    if resume and when and resume <= when:
        r.fail(f"{path}.resume", f"must be after the event date ({when})")
    return {
        "resume": resume,
        "mode": r.take(suspend, f"{path}.", "mode", _choice(*SUSPEND_MODES), "credit"),
        "extend_term": r.take(suspend, f"{path}.", "extend_term", _boolean, False),
    }


# --- Running ----------------------------------------------------------------------------

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
