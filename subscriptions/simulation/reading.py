"""Reading a scenario file: its bytes to the JSON value in them (`decode_scenario`).

A problem of the file as a whole (too large, not UTF-8, not JSON, nested too deep) is a
ScenarioError with the path ``scenario``. What JSON holds but Python's json would turn
into something else (NaN, integers too long to convert, a key given twice) is kept
here as a value the parser refuses with its path (`LongInteger`, `NonNumber`,
`_Object.repeated`).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from subscriptions.simulation.scenario import MAX_SCENARIO_BYTES, ScenarioError

# Python converts at most 4,300 digits (less when configured); no count comes near this.
_LONGEST_INTEGER = 100

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
            parse_constant=NonNumber,
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
class LongInteger:
    """A JSON integer too long to convert: refused by the parser that meets it."""

    negative: bool
    digits: int

    def __repr__(self) -> str:
        return f"a {'negative ' if self.negative else ''}number of {self.digits:,} digits"


@dataclass(frozen=True)
class NonNumber:
    """NaN, Infinity or -Infinity: Python's json reads them, JSON has no such numbers."""

    literal: str

    def __repr__(self) -> str:
        return self.literal


def _integer(text: str) -> int | LongInteger:
    digits = len(text.removeprefix("-"))
    if digits > _LONGEST_INTEGER:
        return LongInteger(negative=text.startswith("-"), digits=digits)
    return int(text)


class _Object(dict):
    """A JSON object that remembers the keys given more than once (json keeps the last)."""

    repeated: tuple[str, ...] = ()


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object(pairs)
    if len(obj) < len(pairs):
        obj.repeated = tuple(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
    return obj
