"""`manage.py simulate` with the files a typo, a wrong export or a probe hands it: each is
refused with exit status 2 and nothing but `path: problem` lines on stderr, before the
database is touched; never a traceback, never a run that overflows or goes on for hours
(subscriptions/simulation.py "Reading" and "Parsing")."""

from __future__ import annotations

import copy
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from subscriptions.management.commands.simulate import Command

# A month of a small subscription: quick to run when a test wants it to.
VALID = {
    "subscription": {
        "seats": 100,
        "annual_unit_price": "100.00",
        "currency": "USD",
        "term_start": "2026-01-01",
        "term_end": "2027-01-01",
    },
    "events": [],
    "until": "2026-02-01",
}
ROOT = Path(__file__).resolve().parents[2]
HUGE = "9" * 5001  # past the 4,300 digits Python converts from a string
RANGE = "must be a date in the years 1900 to 2200"


def scenario(*, events=None, until=None, **subscription) -> dict:
    data = copy.deepcopy(VALID)
    data["subscription"].update(subscription)
    if events is not None:
        data["events"] = events
    if until is not None:
        data["until"] = until
    return data


def as_json(data: dict, **raw: str) -> str:
    """`data` as JSON, each string "<name>" replaced by the raw JSON text `raw[name]`:
    what json.dumps cannot write (NaN where it is asked not to, 5,001 digits)."""
    text = json.dumps(data)
    for name, literal in raw.items():
        assert f'"<{name}>"' in text, name
        text = text.replace(f'"<{name}>"', literal)
    return text


def refusal(tmp_path, capsys, content: dict | str | bytes) -> list[str]:
    """Runs `manage.py simulate FILE` as the shell does; asserts it exits with status 2,
    prints nothing on stdout and no traceback; returns its stderr lines."""
    if isinstance(content, dict):
        content = json.dumps(content)
    if isinstance(content, str):
        content = content.encode()
    path = tmp_path / "scenario.json"
    path.write_bytes(content)

    with pytest.raises(SystemExit) as excinfo:
        Command().run_from_argv(["manage.py", "simulate", str(path)])

    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert (excinfo.value.code, out) == (2, "")
    return err.splitlines()


# Parse-time refusals touch no database: the marker makes any query an error.
no_database = pytest.mark.django_db(databases=[])


@no_database
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            scenario(term_start="9999-01-01", term_end="9999-07-01", until="9999-03-01"),
            [
                f"subscription.term_start: {RANGE}, got '9999-01-01'",
                f"subscription.term_end: {RANGE}, got '9999-07-01'",
                f"until: {RANGE}, got '9999-03-01'",
            ],
            id="year-9999",
        ),
        pytest.param(
            scenario(term_start="0001-01-01", term_end="0002-01-01", until="0001-02-01"),
            [
                f"subscription.term_start: {RANGE}, got '0001-01-01'",
                f"subscription.term_end: {RANGE}, got '0002-01-01'",
                f"until: {RANGE}, got '0001-02-01'",
            ],
            id="year-0001",
        ),
        pytest.param(
            scenario(
                events=[
                    {"date": "2026-01-10", "pause_qsr_until": "9999-12-31"},
                    {"date": "2026-01-11", "suspend": {"resume": "9999-12-31"}},
                ]
            ),
            [
                f"events[0].pause_qsr_until: {RANGE}, got '9999-12-31'",
                f"events[1].suspend.resume: {RANGE}, got '9999-12-31'",
            ],
            id="event-dates",
        ),
        pytest.param(
            scenario(until="2199-12-31"),
            ["until: at most 1,830 nights after subscription.term_start (2026-01-01), got 63,551"],
            id="until-decades-away",
        ),
        pytest.param(
            scenario(until="9999-12-31"),
            [f"until: {RANGE}, got '9999-12-31'"],
            id="until-millions-of-days-away",
        ),
    ],
)
def test_dates_out_of_range(tmp_path, capsys, data, expected):
    assert refusal(tmp_path, capsys, data) == expected


@no_database
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            as_json(scenario(seats="<n>"), n=HUGE),
            ["subscription.seats: must be at most 1,000,000, got a number of 5,001 digits"],
            id="seats",
        ),
        pytest.param(
            as_json(scenario(events=[{"date": "2026-01-05", "usage": "<n>"}]), n="-" + HUGE),
            ["events[0].usage: must not be negative, got a negative number of 5,001 digits"],
            id="negative-usage",
        ),
        pytest.param(
            as_json(scenario(term_start="<n>"), n=HUGE),
            ["subscription.term_start: must be a date YYYY-MM-DD, got a number of 5,001 digits"],
            id="where-a-date-goes",
        ),
    ],
)
def test_a_5001_digit_number_is_refused_where_it_stands(tmp_path, capsys, text, expected):
    assert refusal(tmp_path, capsys, text) == expected


@no_database
@pytest.mark.parametrize(
    "text",
    [
        pytest.param("[" * 100_000 + "]" * 100_000, id="lists"),
        pytest.param('{"subscription": ' + '{"a": ' * 100_000 + "1" + "}" * 100_001, id="objects"),
    ],
)
def test_deep_nesting(tmp_path, capsys, text):
    assert refusal(tmp_path, capsys, text) == [
        "scenario: lists and objects nested too deep to read"
    ]


LATIN_1 = '{\n  "until": "2026-02-01",\n  "note": "café"\n}'


@no_database
def test_a_latin_1_file_names_the_first_bad_byte(tmp_path, capsys):
    assert refusal(tmp_path, capsys, LATIN_1.encode("latin-1")) == [
        "scenario: not UTF-8: byte 0xe9 at line 3, column 15 (byte 42 of the file); "
        "save the file as UTF-8"
    ]


def test_a_latin_1_file_on_stdin_of_the_real_command(tmp_path):
    # A separate process: the real sys.stdin, stderr and exit status, as a shell sees them.
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings.test"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "simulate", "-"],
        input=LATIN_1.encode("latin-1"),
        capture_output=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=False,
    )

    assert (result.returncode, result.stdout) == (2, b"")
    assert result.stderr.decode().splitlines() == [
        "scenario: not UTF-8: byte 0xe9 at line 3, column 15 (byte 42 of the file); "
        "save the file as UTF-8"
    ]


@no_database
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            scenario(seats=1_000_001, annual_unit_price="999999.99"),
            ["subscription.seats: must be at most 1,000,000, got 1000001"],
            id="seats",
        ),
        pytest.param(
            scenario(seats=1_000_000, annual_unit_price="1000000.00"),
            [
                "subscription.annual_unit_price: must be an amount from 0 to 999,999.99, "
                "got '1000000.00'"
            ],
            id="price",
        ),
        pytest.param(
            scenario(
                annual_unit_price="999999.99",
                events=[{"date": "2026-01-05", "usage": 2_000_000}],
            ),
            ["events[0].usage: must be at most 1,000,000, got 2000000"],
            id="usage",
        ),
    ],
)
def test_amounts_beyond_the_money_columns_are_refused_before_the_database(
    tmp_path, capsys, data, expected
):
    assert refusal(tmp_path, capsys, data) == expected


@no_database
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            scenario(seats=True, offline_license=1),
            [
                "subscription.seats: must be a whole number, got true",
                "subscription.offline_license: must be true or false, got 1",
            ],
            id="subscription",
        ),
        pytest.param(
            scenario(
                events=[
                    {"date": "2026-01-05", "usage": False},
                    {"date": "2026-01-06", "enable_qsr": 1},
                ]
            ),
            [
                "events[0].usage: must be a whole number, got false",
                "events[1].enable_qsr: must be true, got 1",
            ],
            id="events",
        ),
    ],
)
def test_booleans_and_numbers_are_not_each_other(tmp_path, capsys, data, expected):
    assert refusal(tmp_path, capsys, data) == expected


@no_database
def test_nan_and_infinity_are_named_as_written(tmp_path, capsys):
    data = scenario(seats="<nan>", annual_unit_price="<inf>", events=[{"date": "<-inf>"}])
    text = as_json(data, nan="NaN", inf="Infinity", **{"-inf": "-Infinity"})

    assert refusal(tmp_path, capsys, text) == [
        "subscription.seats: must be a whole number, got NaN",
        'subscription.annual_unit_price: must be a string like "100.00", got Infinity',
        "events[0]: no event kind: expected one of usage, suspend, disable_qsr_bug, "
        "enable_qsr, pause_qsr_until",
        "events[0].date: must be a date YYYY-MM-DD, got -Infinity",
    ]


@no_database
def test_too_many_events(tmp_path, capsys):
    events = [{"date": "2026-01-05", "usage": 100}] * 10_001

    assert refusal(tmp_path, capsys, scenario(events=events)) == [
        "events: at most 10,000 events, got 10,001"
    ]


@no_database
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            json.dumps(
                scenario(events=[{"date": "2026-01-05", "disable_qsr_bug": "https://b.example/\0"}])
            ),
            [
                "events[0].disable_qsr_bug: must not contain control characters or lone "
                "surrogates, got '\\x00' at character 19"
            ],
            id="in-the-stored-link",
        ),
        pytest.param(
            json.dumps(scenario(**{"se\0ats\nuntil: fine": 1})),
            ["subscription.'se\\x00ats\\nuntil: fine': unknown key"],
            id="in-a-key",
        ),
        pytest.param(
            json.dumps(scenario(currency="US\0D")),
            [
                "subscription.currency: unknown currency 'US\\x00D': the portal bills in "
                "AUD, CAD, CHF, EUR, GBP, JPY, USD"
            ],
            id="in-a-choice",
        ),
    ],
)
def test_nul_and_control_characters(tmp_path, capsys, text, expected):
    assert refusal(tmp_path, capsys, text) == expected


@no_database
def test_a_file_of_hundreds_of_megabytes_is_not_read(tmp_path, capsys):
    path = tmp_path / "scenario.json"
    with path.open("wb") as f:
        f.truncate(300 * 2**20)  # sparse: no disk, and a read would take seconds

    with pytest.raises(SystemExit) as excinfo:
        Command().run_from_argv(["manage.py", "simulate", str(path)])

    assert excinfo.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "scenario: larger than 4 MiB, the most a scenario may be"
    ]


@no_database
def test_stdin_is_read_no_further_than_the_limit():
    stdin = io.StringIO(json.dumps(VALID) + " " * 4 * 2**20)

    with pytest.raises(CommandError) as excinfo:
        call_command("simulate", "-", stdin=stdin, stdout=io.StringIO())

    assert excinfo.value.returncode == 2
    assert str(excinfo.value) == "scenario: larger than 4 MiB, the most a scenario may be"


@no_database
def test_a_key_given_twice_is_refused(tmp_path, capsys):
    text = json.dumps(scenario()).replace('"seats": 100', '"seats": 10, "seats": 100')
    text = text.replace('"until"', '"until": "2026-01-20", "until"')

    assert refusal(tmp_path, capsys, text) == [
        "until: given more than once",
        "subscription.seats: given more than once",
    ]


@no_database
def test_thousands_of_problems_show_the_first_hundred(tmp_path, capsys):
    data = scenario(**{f"extra{i}": 0 for i in range(150)})

    lines = refusal(tmp_path, capsys, data)

    assert lines[:2] == ["subscription.extra0: unknown key", "subscription.extra1: unknown key"]
    assert lines[100:] == ["scenario: 50 more problems not shown"]
    assert len(lines) == 101


# --- What stays allowed runs as before ----------------------------------------------------


def simulate(text: str | bytes) -> dict:
    out = io.StringIO()
    stdin = io.BytesIO(text if isinstance(text, bytes) else text.encode())
    call_command("simulate", "-", stdin=stdin, stdout=out)
    return json.loads(out.getvalue())


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("term", "until", "renewed_to"),
    [
        # The first years allowed: the nightly steps look back days before the start.
        (("1900-01-01", "1900-02-01"), "1900-02-02", "1900-03-01"),
        # The last: the renewal on the last night computes a term past 2200.
        (("2200-09-30", "2200-12-30"), "2200-12-31", "2201-03-30"),
    ],
)
def test_the_first_and_last_years_allowed_run(term, until, renewed_to):
    start, end = term

    ledger = simulate(json.dumps(scenario(term_start=start, term_end=end, until=until)))

    assert ledger["subscription"]["term_end"] == renewed_to
    assert [i["date"] for i in ledger["invoices"]] == [end]


@pytest.mark.django_db
def test_the_largest_seats_and_price_run_and_fit_the_ledger():
    # A renewal invoices seats x the annual price whatever the term's length.
    data = scenario(
        seats=1_000_000,
        annual_unit_price="999999.99",
        term_end="2026-02-01",
        events=[{"date": "2026-01-10", "usage": 1_000_000}],
        until="2026-02-02",
    )

    ledger = simulate(json.dumps(data))

    assert [i["total"] for i in ledger["invoices"]] == ["999999990000.00"]  # < 10**12


@pytest.mark.django_db
def test_a_utf_8_file_with_a_byte_order_mark_runs(tmp_path):
    # Some editors start a UTF-8 file with the mark; json alone refuses it.
    path = tmp_path / "scenario.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(VALID).encode())
    out = io.StringIO()

    call_command("simulate", str(path), stdout=out)

    assert json.loads(out.getvalue())["subscription"]["term_end"] == "2027-01-01"
