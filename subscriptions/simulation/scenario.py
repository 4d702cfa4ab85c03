"""A scenario once read: its types, the limits it must keep, and the error that lists
its problems. Pure: no Django, so a scenario is read and checked without a database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

EVENT_KINDS = ("usage", "suspend", "disable_qsr_bug", "enable_qsr", "pause_qsr_until")
# The models' choices a scenario may name (subscriptions/models.py), spelled out so that
# reading a scenario needs no Django; run.py refuses to load if they no longer match.
NAMESPACE_KINDS = ("saas", "self_managed")
CHANNELS = ("direct", "reseller")
PAYMENTS = ("card", "invoice", "purchase_order")
# A free period is a concession granted through an approval, not a suspension to preview.
SUSPEND_MODES = ("credit", "freeze")
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


class ScenarioError(Exception):
    """The scenario cannot run; each problem reads ``path: what is wrong``."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


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
