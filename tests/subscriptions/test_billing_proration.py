"""Suspensions and proration in subscriptions/billing.py (DOMAIN.md "Suspensions and
proration"): the worked examples to the cent and the rules around them.

Plain functions, no database: billing.py is pure."""

from datetime import date
from decimal import Decimal

import pytest

from subscriptions.billing import (
    LINE_PRORATION_CHARGE,
    LINE_PRORATION_CREDIT,
    SUSPENSION_MODES,
    BillingError,
    InvalidPeriod,
    ProrationResult,
    format_money,
    suspension_proration,
)
from tests.subscriptions.helpers import CHARGE_12K, TERM_2017

D = Decimal


# --- Suspensions and proration ----------------------------------------------------------


def suspend(**kwargs) -> ProrationResult:
    arguments = {"charge": CHARGE_12K, "currency": "USD", **TERM_2017, **kwargs}
    return suspension_proration(**arguments)


def test_suspension_with_credit_and_extension():
    result = suspend(mode="credit", start=date(2017, 6, 1), end=date(2017, 6, 26), extend_term=True)
    credit, charge = result.lines

    assert credit.kind == LINE_PRORATION_CREDIT
    assert credit.date == date(2017, 6, 1)
    assert (credit.period_start, credit.period_end) == (date(2017, 6, 1), date(2018, 1, 1))
    assert credit.days == 214
    assert credit.amount == D("-7035.62")

    assert charge.kind == LINE_PRORATION_CHARGE
    assert charge.date == date(2017, 6, 26)
    assert (charge.period_start, charge.period_end) == (date(2017, 6, 26), date(2018, 1, 26))
    assert charge.days == 214
    assert charge.amount == D("7035.62")

    assert result.net == D("0.00")
    assert result.new_term_end == date(2018, 1, 26)


def test_suspension_with_credit_without_extension():
    result = suspend(mode="credit", start=date(2017, 6, 1), end=date(2017, 6, 26))
    credit, charge = result.lines

    assert (credit.days, credit.amount) == (214, D("-7035.62"))
    assert (charge.days, charge.amount) == (189, D("6213.70"))
    assert charge.period_end == date(2018, 1, 1)
    assert result.net == D("-821.92")
    assert format_money(result.net, "USD") == "USD -821.92"
    assert result.new_term_end == date(2018, 1, 1)


def test_suspension_with_credit_in_the_2025_term():
    result = suspend(
        mode="credit",
        term_start=date(2025, 1, 1),
        term_end=date(2026, 1, 1),
        start=date(2025, 4, 1),
        end=date(2025, 6, 1),
    )
    credit, charge = result.lines

    assert (credit.days, credit.amount) == (275, D("-9041.10"))
    assert (charge.days, charge.amount) == (214, D("7035.62"))
    assert result.net == D("-2005.48")
    assert result.new_term_end == date(2026, 1, 1)


@pytest.mark.parametrize("extend_term", [False, True])
def test_freeze_writes_no_lines_and_always_extends(extend_term):
    result = suspend(
        mode="freeze", start=date(2017, 6, 1), end=date(2017, 6, 26), extend_term=extend_term
    )
    assert result.lines == ()
    assert result.net == 0
    assert result.new_term_end == date(2018, 1, 26)


def test_free_period_extends_the_term_by_the_free_days():
    result = suspend(mode="free_period", start=date(2017, 12, 1), end=date(2018, 1, 31))
    assert result.lines == ()
    assert result.new_term_end == date(2018, 3, 3)  # 61 free days


def test_resuming_on_the_term_end_without_extension_writes_only_the_credit():
    result = suspend(mode="credit", start=date(2017, 12, 1), end=date(2018, 1, 1))
    (credit,) = result.lines
    assert credit.kind == LINE_PRORATION_CREDIT
    assert credit.amount == D("-1019.18")  # 12,000.00 x 31 / 365 = 1,019.178...
    assert result.net == D("-1019.18")


def test_suspension_in_yen():
    result = suspend(
        mode="credit",
        charge=D("1200000"),
        currency="JPY",
        start=date(2017, 6, 1),
        end=date(2017, 6, 26),
    )
    assert [line.amount for line in result.lines] == [D("-703562"), D("621370")]


def test_modes():
    assert SUSPENSION_MODES == ("credit", "freeze", "free_period")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": date(2016, 12, 31), "end": date(2017, 2, 1)}, "outside the term"),
        ({"start": date(2018, 1, 1), "end": date(2018, 2, 1)}, "outside the term"),
        ({"start": date(2017, 6, 1), "end": date(2017, 6, 1)}, "after its start"),
        ({"start": date(2017, 6, 1), "end": date(2017, 5, 1)}, "after its start"),
        ({"start": date(2017, 6, 1), "end": date(2018, 1, 2)}, "after the term end"),
        (
            {"term_start": date(2018, 1, 1), "start": date(2017, 6, 1), "end": date(2017, 7, 1)},
            "empty",
        ),
    ],
)
@pytest.mark.parametrize("mode", ["credit", "freeze"])
def test_suspension_dates_outside_the_rules_are_refused(mode, kwargs, message):
    with pytest.raises(InvalidPeriod, match=message):
        suspend(mode=mode, **kwargs)


def test_free_period_may_run_past_the_term_end_but_must_start_inside_it():
    suspend(mode="free_period", start=date(2017, 6, 1), end=date(2018, 2, 1))
    with pytest.raises(InvalidPeriod, match="outside the term"):
        suspend(mode="free_period", start=date(2018, 1, 1), end=date(2018, 2, 1))
    with pytest.raises(InvalidPeriod, match="after its start"):
        suspend(mode="free_period", start=date(2017, 6, 1), end=date(2017, 6, 1))


def test_suspension_refuses_bad_mode_and_bad_charges():
    window = {"start": date(2017, 6, 1), "end": date(2017, 6, 26)}
    with pytest.raises(BillingError, match="'pause'"):
        suspend(mode="pause", **window)
    with pytest.raises(BillingError, match="must not be negative"):
        suspend(mode="credit", charge=D("-0.01"), **window)
    with pytest.raises(TypeError):
        suspend(mode="credit", charge=12000.0, **window)
