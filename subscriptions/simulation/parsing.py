"""Parsing a scenario: the decoded JSON value checked and typed into a `Scenario`
(`parse_scenario`). Every problem is collected, so one run reports all of them, each as
``path: what is wrong``. Pure: no Django, the bounds come from `subscriptions/billing.py`.
"""

from __future__ import annotations

import json
import re
import reprlib
from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from subscriptions import billing
from subscriptions.billing import MAX_ANNUAL_UNIT_PRICE, MAX_SEATS
from subscriptions.simulation.reading import LongInteger, NonNumber
from subscriptions.simulation.scenario import (
    CHANNELS,
    EVENT_KINDS,
    FIRST_DATE,
    LAST_DATE,
    MAX_EVENTS,
    MAX_NIGHTS,
    MAX_TERM_MONTHS,
    NAMESPACE_KINDS,
    PAYMENTS,
    SUSPEND_MODES,
    Event,
    Scenario,
    ScenarioError,
)

# ASCII digits only: \d and fromisoformat() also take full-width or Arabic-Indic digits.
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_]+")
# Control characters and lone surrogates: PostgreSQL stores neither in a text column.
_UNSTORABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


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
    if isinstance(value, LongInteger):
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
    if isinstance(value, NonNumber):
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
    kind = ""
    sub: dict[str, Any] = {}
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
    keys: tuple[str, ...] = (
        "namespace_kind",
        "seats",
        "annual_unit_price",
        "currency",
        "term_start",
    )
    keys += ("term_end", "channel", "payment", "program", "offline_license")
    sub = r.object(raw, "subscription", keys, prefix="subscription.")
    if sub is None:
        return "", {}

    def take(key: str, parse, default: Any = _REQUIRED) -> Any:
        return r.take(sub, "subscription.", key, parse, default)

    kind = take("namespace_kind", _choice(*NAMESPACE_KINDS), "saas")
    fields = {
        "seats": take("seats", _count),
        "currency": take("currency", _currency),
        "annual_unit_price": take("annual_unit_price", _price),
        "term_start": take("term_start", _date),
        "term_end": take("term_end", _date),
        "channel": take("channel", _choice(*CHANNELS), "direct"),
        "payment_method": take("payment", _choice(*PAYMENTS), "card"),
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
