"""`manage.py simulate`: the DOMAIN.md worked examples run through the real services and
nightly steps, day by day, and nothing of it kept (subscriptions/simulation.py)."""

import copy
import io
import json
from datetime import date, timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError

from subscriptions.management.commands.simulate import Command
from subscriptions.models import (
    Customer,
    Invoice,
    JobRun,
    Namespace,
    Reconciliation,
    SeatUsageReport,
    Subscription,
    Suspension,
)
from tests.factories import SubscriptionFactory

pytestmark = pytest.mark.django_db

# DOMAIN.md "QSR" worked example: 100 seats at 100.00, max 110 in Q1, 105 in Q2, 120 in Q3.
QSR = {
    "subscription": {
        "namespace_kind": "saas",
        "seats": 100,
        "annual_unit_price": "100.00",
        "currency": "USD",
        "term_start": "2026-01-01",
        "term_end": "2027-01-01",
        "channel": "direct",
        "payment": "card",
        "program": None,
        "offline_license": False,
    },
    # Out of order on purpose: events apply on their date whatever their position.
    "events": [
        {"date": "2026-08-15", "usage": 120},
        {"date": "2026-02-10", "usage": 110},
        {"date": "2026-04-15", "usage": 105},
    ],
    "until": "2027-01-02",
}
# DOMAIN.md "Suspensions and proration": 10 seats at 1,200.00 (the term comes with each
# example). Usage stays at the seats (no usage event), so QSR adds nothing.
SUSPENSION = {
    "subscription": {"seats": 10, "annual_unit_price": "1200.00", "currency": "USD"},
    "events": [],
}


def scenario(base: dict, *, until: str | None = None, events=None, **subscription) -> dict:
    result = copy.deepcopy(base)
    result["subscription"].update(subscription)
    if events is not None:
        result["events"] = events
    if until:
        result["until"] = until
    return result


def simulate(data: dict) -> dict:
    out = io.StringIO()
    call_command("simulate", "-", stdin=io.StringIO(json.dumps(data)), stdout=out)
    return json.loads(out.getvalue())


def refused(data) -> str:
    """The command refuses `data` as bad input (exit status 2); returns its message."""
    text = data if isinstance(data, str) else json.dumps(data)
    with pytest.raises(CommandError) as excinfo:
        call_command("simulate", "-", stdin=io.StringIO(text), stdout=io.StringIO())
    assert excinfo.value.returncode == 2
    return str(excinfo.value)


def recon(quarter, date, status, max_seats=None, overage=None, amount=None, skip=None):
    return {
        "quarter": quarter,
        "date": date,
        "status": status,
        "max_seats_used": max_seats,
        "overage": overage,
        "amount": amount,
        "skip_reason": skip,
    }


def line(kind, quantity, amount, start, end):
    return {
        "kind": kind,
        "quantity": quantity,
        "amount": amount,
        "period_start": start,
        "period_end": end,
    }


def proration_lines(ledger: dict) -> list[tuple[str, str, str]]:
    return [
        (invoice["date"], line["kind"], line["amount"])
        for invoice in ledger["invoices"]
        for line in invoice["lines"]
        if line["kind"].startswith("proration")
    ]


# --- DOMAIN.md worked examples ------------------------------------------------------------


def test_qsr_worked_example_to_the_cent():
    ledger = simulate(QSR)

    assert ledger == {
        "reconciliations": [
            recon(1, "2026-04-01", "processed", 110, 10, "750.00"),
            recon(2, "2026-07-01", "processed", 110, 0, "0.00"),
            recon(3, "2026-10-01", "processed", 120, 10, "250.00"),
        ],
        "invoices": [
            {
                "date": "2026-04-08",
                "total": "750.00",
                "lines": [line("qsr_overage", 10, "750.00", "2026-04-01", "2027-01-01")],
            },
            # Q2 is processed at 0.00 and invoices nothing.
            {
                "date": "2026-10-08",
                "total": "250.00",
                "lines": [line("qsr_overage", 10, "250.00", "2026-10-01", "2027-01-01")],
            },
            # The renewal night (until is exclusive: 2027-01-01 is the last night run).
            {
                "date": "2027-01-01",
                "total": "12000.00",
                "lines": [line("recurring", 120, "12000.00", "2027-01-01", "2028-01-01")],
            },
        ],
        # A new term: max seats used restarts from the seats in use.
        "subscription": {
            "seats": 120,
            "term_end": "2028-01-01",
            "status": "active",
            "max_seats_used": 120,
        },
    }
    qsr_total = sum(float(r["amount"]) for r in ledger["reconciliations"])
    assert f"{qsr_total:.2f}" == "1000.00"


def test_ineligible_subscription_is_trued_up_annually_instead():
    # Into the next term's first quarter: reconciliations of all terms, in date order.
    ledger = simulate(scenario(QSR, channel="reseller", until="2027-04-02"))

    assert [(r["date"], r["status"], r["skip_reason"]) for r in ledger["reconciliations"]] == [
        ("2026-04-01", "skipped", "ineligible"),
        ("2026-07-01", "skipped", "ineligible"),
        ("2026-10-01", "skipped", "ineligible"),
        ("2027-04-01", "skipped", "ineligible"),
    ]
    assert ledger["invoices"] == [
        {
            "date": "2027-01-01",
            "total": "2000.00",
            "lines": [line("annual_true_up", 20, "2000.00", "2026-01-01", "2027-01-01")],
        },
        {
            "date": "2027-01-01",
            "total": "12000.00",
            "lines": [line("recurring", 120, "12000.00", "2027-01-01", "2028-01-01")],
        },
    ]
    assert ledger["subscription"]["seats"] == 120


@pytest.mark.parametrize(
    ("term", "suspend", "expected_lines", "term_end"),
    [
        pytest.param(
            ("2017-01-01", "2018-01-01"),
            {"date": "2017-06-01", "resume": "2017-06-26", "mode": "credit", "extend": True},
            [
                ("2017-06-01", "proration_credit", "-7035.62"),
                ("2017-06-26", "proration_charge", "7035.62"),
            ],
            "2018-01-26",
            id="credit-extend",
        ),
        pytest.param(
            ("2017-01-01", "2018-01-01"),
            {"date": "2017-06-01", "resume": "2017-06-26", "mode": "credit", "extend": False},
            [
                ("2017-06-01", "proration_credit", "-7035.62"),
                ("2017-06-26", "proration_charge", "6213.70"),
            ],
            "2018-01-01",
            id="credit-no-extension",
        ),
        pytest.param(
            ("2025-01-01", "2026-01-01"),
            {"date": "2025-04-01", "resume": "2025-06-01", "mode": "credit", "extend": False},
            [
                ("2025-04-01", "proration_credit", "-9041.10"),
                ("2025-06-01", "proration_charge", "7035.62"),
            ],
            "2026-01-01",
            id="credit-2025",
        ),
        pytest.param(
            ("2017-01-01", "2018-01-01"),
            {"date": "2017-06-01", "resume": "2017-06-26", "mode": "freeze", "extend": True},
            [],
            "2018-01-26",
            id="freeze",
        ),
    ],
)
def test_suspension_worked_examples(term, suspend, expected_lines, term_end):
    start, end = term
    event = {
        "date": suspend["date"],
        "suspend": {
            "resume": suspend["resume"],
            "mode": suspend["mode"],
            "extend_term": suspend["extend"],
        },
    }
    # Stop the day after the resume: nothing but the suspension can add lines by then.
    until = (date.fromisoformat(suspend["resume"]) + timedelta(days=1)).isoformat()
    data = scenario(SUSPENSION, term_start=start, term_end=end, until=until, events=[event])

    ledger = simulate(data)

    assert proration_lines(ledger) == expected_lines
    assert [i["total"] for i in ledger["invoices"]] == [amount for *_, amount in expected_lines]
    assert ledger["subscription"]["term_end"] == term_end
    assert ledger["subscription"]["status"] == "active"  # resumed


def test_jpy_amounts_have_no_decimals():
    events = [{"date": "2026-02-10", "usage": 110}]
    data = scenario(
        QSR, currency="JPY", annual_unit_price="14000", events=events, until="2026-04-09"
    )

    ledger = simulate(data)

    assert ledger["reconciliations"][0]["amount"] == "105000"  # 10 x 14000 / 4 x 3
    assert ledger["invoices"][0]["total"] == "105000"


# --- Timeline, QSR states, suspension across a quarter end --------------------------------


@pytest.mark.parametrize(
    ("kind", "until", "status", "invoice_dates"),
    [
        ("saas", "2026-04-02", ["pending"], []),
        ("saas", "2026-04-09", ["processed"], ["2026-04-08"]),
        # Self-managed: notified 6 days after the quarter end, invoiced 7 days later.
        ("self_managed", "2026-04-07", ["scheduled"], []),
        ("self_managed", "2026-04-08", ["pending"], []),
        ("self_managed", "2026-04-15", ["processed"], ["2026-04-14"]),
    ],
)
def test_notice_and_invoice_timeline(kind, until, status, invoice_dates):
    events = [{"date": "2026-02-10", "usage": 110}]
    ledger = simulate(scenario(QSR, namespace_kind=kind, events=events, until=until))

    assert [r["status"] for r in ledger["reconciliations"]] == status
    assert [i["date"] for i in ledger["invoices"]] == invoice_dates


def test_qsr_disabled_for_a_bug_skips_until_re_enabled():
    events = [
        {"date": "2026-02-10", "usage": 110},
        {"date": "2026-03-20", "disable_qsr_bug": "https://bugs.example.com/123"},
        {"date": "2026-05-01", "enable_qsr": True},
    ]
    ledger = simulate(scenario(QSR, events=events, until="2026-07-09"))

    assert ledger["reconciliations"] == [
        recon(1, "2026-04-01", "skipped", skip="disabled_for_bug"),
        recon(2, "2026-07-01", "processed", 110, 10, "500.00"),  # 10 x 25.00 x 2
    ]
    assert [i["total"] for i in ledger["invoices"]] == ["500.00"]


@pytest.mark.parametrize(
    ("pause_until", "skipped"),
    [("2026-05-15", ["paused", None, None]), (None, ["paused", "paused", "paused"])],
)
def test_paused_qsr_is_skipped_until_the_pause_ends(pause_until, skipped):
    events = [
        {"date": "2026-02-10", "usage": 110},
        {"date": "2026-03-01", "pause_qsr_until": pause_until},
    ]
    ledger = simulate(scenario(QSR, events=events, until="2026-10-02"))

    assert [r["skip_reason"] for r in ledger["reconciliations"]] == skipped


def test_suspended_across_a_quarter_end_is_skipped():
    events = [
        {"date": "2026-02-10", "usage": 110},
        {"date": "2026-03-15", "suspend": {"resume": "2026-04-10", "mode": "freeze"}},
    ]
    ledger = simulate(scenario(QSR, events=events, until="2026-05-01"))

    assert ledger["reconciliations"] == [recon(1, "2026-04-01", "skipped", skip="suspended")]
    assert ledger["invoices"] == []
    assert ledger["subscription"]["term_end"] == "2027-01-27"  # frozen 26 days


def test_a_suspension_after_the_quarter_end_defers_the_invoice_to_the_resume():
    events = [
        {"date": "2026-02-10", "usage": 110},
        {"date": "2026-04-03", "suspend": {"resume": "2026-04-20", "mode": "freeze"}},
    ]
    ledger = simulate(scenario(QSR, events=events, until="2026-05-01"))

    assert ledger["reconciliations"] == [recon(1, "2026-04-01", "processed", 110, 10, "750.00")]
    (invoice,) = ledger["invoices"]
    # Invoiced, and dated, on the resume day rather than the invoice day it missed.
    assert (invoice["date"], invoice["total"]) == ("2026-04-20", "750.00")
    assert ledger["subscription"]["seats"] == 110


def test_usage_after_the_quarter_end_counts_for_the_next_quarter():
    # Self-managed: the Q1 notice goes out six days late, when Q2 usage is already in.
    events = [{"date": "2026-04-02", "usage": 130}]
    ledger = simulate(
        scenario(QSR, events=events, until="2026-07-20", namespace_kind="self_managed")
    )

    assert ledger["reconciliations"] == [
        recon(1, "2026-04-01", "processed", 100, 0, "0.00"),
        recon(2, "2026-07-01", "processed", 130, 30, "1500.00"),
    ]


# --- Nothing kept, no collision with real data ------------------------------------------


MODELS = (Customer, Namespace, Subscription, SeatUsageReport, Reconciliation, Suspension)


@pytest.mark.django_db(transaction=True)
def test_nothing_is_kept_and_no_email_leaves():
    events = [
        {"date": "2026-02-10", "usage": 110},  # a Q1 notice and invoice
        {"date": "2026-06-01", "suspend": {"resume": "2026-06-26"}},  # proration lines
    ]

    ledger = simulate(scenario(QSR, events=events, until="2026-06-27"))

    assert ledger["reconciliations"]  # the run did happen, notices and all
    for model in (*MODELS, Invoice, JobRun):
        assert not model.objects.exists(), model.__name__
    assert mail.outbox == []


def test_real_data_is_left_as_it_was():
    real = SubscriptionFactory()
    names = (real.customer.name, real.namespace.name)

    # The nightly runs see the real subscription too (its Q1 falls in the simulated days).
    simulate(scenario(QSR, events=[], until="2026-04-09"))

    real.refresh_from_db()
    assert (real.term_start.isoformat(), real.seats) == ("2026-01-01", 100)
    assert (real.customer.name, real.namespace.name) == names
    assert Customer.objects.count() == 1 and Subscription.objects.count() == 1
    assert not Reconciliation.objects.exists()
    assert not Invoice.objects.exists()


def test_reads_a_scenario_file(tmp_path):
    path = tmp_path / "scenario.json"
    events = [{"date": "2026-02-10", "usage": 110}]
    path.write_text(json.dumps(scenario(QSR, events=events, until="2026-04-09")))
    out = io.StringIO()

    call_command("simulate", str(path), stdout=out)

    assert json.loads(out.getvalue())["invoices"][0]["total"] == "750.00"


# --- Bad input ------------------------------------------------------------------------------


def with_events(*events) -> dict:
    return scenario(QSR, events=list(events))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (scenario(QSR, currency="XYZ"), "subscription.currency: unknown currency 'XYZ'"),
        (
            with_events({"date": "2026-03-01", "upgrade": 5}),
            "events[0].upgrade: unknown event kind",
        ),
        (with_events({"date": "2026-03-01"}), "events[0]: no event kind"),
        (
            with_events({"date": "2026-03-01", "usage": 1, "enable_qsr": True}),
            "events[0]: one event kind per event, got usage and enable_qsr",
        ),
        (with_events({"date": "2026-02-30", "usage": 5}), "events[0].date: not a calendar date"),
        (with_events({"date": "1 March", "usage": 5}), "events[0].date: must be a date"),
        (with_events({"usage": 5}), "events[0].date: required"),
        (with_events({"date": "2026-03-01", "usage": -1}), "events[0].usage: must not be neg"),
        (with_events({"date": "2026-03-01", "usage": 1.5}), "events[0].usage: must be a whole"),
        (
            with_events(
                {"date": "2026-03-01", "usage": 1},
                {"date": "2026-06-01", "suspend": {"resume": "2026-05-01"}},
            ),
            "events[1].suspend.resume: must be after the event date (2026-06-01)",
        ),
        (
            with_events({"date": "2026-06-01", "suspend": {"mode": "credit"}}),
            "events[0].suspend.resume: required",
        ),
        (
            with_events({"date": "2026-06-01", "suspend": {"resume": "2026-06-09", "mode": "x"}}),
            "events[0].suspend.mode: must be one of credit, freeze",
        ),
        (
            with_events({"date": "2026-06-01", "enable_qsr": False}),
            "events[0].enable_qsr: must be true",
        ),
        (with_events({"date": "2025-12-31", "usage": 1}), "events[0].date: before subscription"),
        (with_events({"date": "2027-01-02", "usage": 1}), "events[0].date: not before until"),
        (scenario(QSR, until="2025-12-01"), "until: must be after subscription.term_start"),
        (scenario(QSR, term_end="2026-12-15"), "subscription.term_end: must be a whole number"),
        (scenario(QSR, annual_unit_price=100.0), 'annual_unit_price: must be a string like "'),
        (scenario(QSR, annual_unit_price="1.005"), "USD amounts have 2 decimals"),
        (scenario(QSR, annual_unit_price="-1.00"), "annual_unit_price: must be an amount from 0"),
        (scenario(QSR, seats=1_000_001), "subscription.seats: must be at most 1,000,000, got"),
        (scenario(QSR, channel="partner"), "subscription.channel: must be one of direct, res"),
        (scenario(QSR, program="charity"), "subscription.program: must be one of null, educ"),
        (scenario(QSR, color="blue"), "subscription.color: unknown key"),
        ({"events": []}, "subscription: required\nuntil: required"),
        ([], "scenario: must be an object, got a list"),
        ("{not json", "scenario: not valid JSON"),
    ],
)
def test_bad_input_names_the_field(data, message):
    assert message in refused(data)


def test_missing_subscription_keys_are_all_reported():
    data = copy.deepcopy(QSR)
    del data["subscription"]["seats"], data["subscription"]["term_start"]

    message = refused(data)

    assert "subscription.seats: required" in message
    assert "subscription.term_start: required" in message


@pytest.mark.parametrize(
    ("events", "message"),
    [
        (
            [
                {"date": "2026-06-01", "suspend": {"resume": "2026-06-26"}},
                {"date": "2026-06-10", "suspend": {"resume": "2026-06-30"}},
            ],
            "events[1].date: Overlaps the active suspension from 2026-06-01 to 2026-06-26.",
        ),
        (
            [{"date": "2026-01-05", "suspend": {"resume": "2027-01-10"}}],
            "events[0].suspend.resume: suspension end 2027-01-10 is after the term end",
        ),
        (
            [{"date": "2026-03-01", "disable_qsr_bug": "not a link"}],
            "events[0].disable_qsr_bug: Enter a valid http(s) link to the bug report.",
        ),
        (
            [{"date": "2026-03-01", "pause_qsr_until": "2027-03-01"}],
            "events[0].pause_qsr_until: The pause must end within the term",
        ),
        (
            [
                {"date": "2026-03-01", "disable_qsr_bug": "https://bugs.example.com/1"},
                {"date": "2026-03-02", "pause_qsr_until": None},
            ],
            "events[1].pause_qsr_until: QSR is disabled for the bug",
        ),
    ],
)
def test_an_event_a_service_refuses_names_the_event(events, message):
    assert message in refused(scenario(QSR, events=events))
    assert not Subscription.objects.exists()


@pytest.mark.django_db(databases=[])
def test_bad_input_exits_with_status_2_on_stderr(tmp_path, capsys):
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(scenario(QSR, currency="XYZ")))

    with pytest.raises(SystemExit) as excinfo:
        Command().run_from_argv(["manage.py", "simulate", str(path)])

    assert excinfo.value.code == 2
    assert "subscription.currency: unknown currency 'XYZ'" in capsys.readouterr().err
