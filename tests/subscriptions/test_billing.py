"""Tests of subscriptions/billing.py: the worked examples of docs/DOMAIN.md to the cent,
the rules around them, and hypothesis properties of the money math.

Plain functions, no database: billing.py is pure.
"""

from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from subscriptions.billing import (
    CURRENCIES,
    CURRENCY_DECIMALS,
    LINE_PRORATION_CHARGE,
    LINE_PRORATION_CREDIT,
    QSR_INELIGIBILITY_REASONS,
    SUSPENSION_MODES,
    BillingError,
    InvalidPeriod,
    ProrationResult,
    UnknownCurrency,
    add_months,
    annual_true_up,
    days_between,
    format_money,
    is_qsr_eligible,
    minor_unit,
    qsr_ineligibility_reasons,
    qsr_overage,
    qsr_reconcile,
    quarter_bounds,
    reconciliation_dates,
    remaining_quarters,
    round_money,
    suspension_proration,
    waived_amount,
)

D = Decimal
TERM_2017 = {"term_start": date(2017, 1, 1), "term_end": date(2018, 1, 1)}
CHARGE_12K = D("12000.00")  # DOMAIN.md: 10 seats at 1,200.00, prepaid for the year


def one_minor_unit(currency: str) -> Decimal:
    return D(1).scaleb(-minor_unit(currency))


# --- Money ------------------------------------------------------------------------------


def test_currency_table():
    assert CURRENCY_DECIMALS == {
        "USD": 2,
        "EUR": 2,
        "GBP": 2,
        "CAD": 2,
        "AUD": 2,
        "CHF": 2,
        "JPY": 0,
    }
    assert CURRENCIES == ("AUD", "CAD", "CHF", "EUR", "GBP", "JPY", "USD")
    assert minor_unit("USD") == 2
    assert minor_unit("JPY") == 0


@pytest.mark.parametrize("currency", ["XXX", "usd", "", None])
def test_unknown_currency_is_refused_everywhere(currency):
    with pytest.raises(UnknownCurrency, match="unknown currency"):
        minor_unit(currency)
    with pytest.raises(UnknownCurrency):
        round_money(D("1.00"), currency)
    with pytest.raises(UnknownCurrency):
        format_money(D("1.00"), currency)
    with pytest.raises(UnknownCurrency):
        annual_true_up(max_seats_used=2, paid_seats=1, annual_unit_price=D(1), currency=currency)
    with pytest.raises(UnknownCurrency):
        suspension_proration(
            mode="freeze",
            charge=CHARGE_12K,
            currency=currency,
            start=date(2017, 6, 1),
            end=date(2017, 6, 26),
            **TERM_2017,
        )


def test_errors_are_billing_errors_and_value_errors():
    assert issubclass(UnknownCurrency, BillingError)
    assert issubclass(InvalidPeriod, BillingError)
    assert issubclass(BillingError, ValueError)


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (D("0.005"), "USD", D("0.01")),
        (D("0.0049999"), "USD", D("0.00")),
        (D("0.015"), "USD", D("0.02")),
        # Half-even would give 0.02 here; the spec says half up.
        (D("0.025"), "USD", D("0.03")),
        (D("1.005"), "EUR", D("1.01")),
        (D("2.675"), "GBP", D("2.68")),
        # ROUND_HALF_UP rounds ties away from zero, so credits mirror charges.
        (D("-0.005"), "USD", D("-0.01")),
        (D("-2.675"), "USD", D("-2.68")),
        (D("7035.616438"), "USD", D("7035.62")),
        (7, "USD", D("7.00")),
        (D("0.5"), "JPY", D("1")),
        (D("1.5"), "JPY", D("2")),
        (D("2.5"), "JPY", D("3")),
        (D("0.49"), "JPY", D("0")),
        (D("-0.5"), "JPY", D("-1")),
        (D("14000"), "JPY", D("14000")),
    ],
)
def test_round_money_half_up(amount, currency, expected):
    rounded = round_money(amount, currency)
    assert rounded == expected
    assert rounded.as_tuple().exponent == -CURRENCY_DECIMALS[currency]


def test_round_money_never_returns_negative_zero():
    assert str(round_money(D("-0.004"), "USD")) == "0.00"
    assert str(round_money(D("-0.4"), "JPY")) == "0"


@pytest.mark.parametrize("amount", [0.1, 1.0, True])
def test_round_money_refuses_floats_and_bools(amount):
    with pytest.raises(TypeError, match="Decimal or an int"):
        round_money(amount, "USD")


@pytest.mark.parametrize("amount", [D("NaN"), D("Infinity"), D("-Infinity")])
def test_round_money_refuses_non_finite_amounts(amount):
    with pytest.raises(BillingError, match="finite"):
        round_money(amount, "USD")


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (D("1000"), "USD", "USD 1,000.00"),
        (D("-821.92"), "USD", "USD -821.92"),
        (D("14000"), "JPY", "JPY 14,000"),
        (D("1234567.891"), "EUR", "EUR 1,234,567.89"),
        # Decimal's own formatting rounds half-even and would print 0.12.
        (D("0.125"), "USD", "USD 0.13"),
        (D("-1234.5"), "JPY", "JPY -1,235"),
        (D("-0.001"), "USD", "USD 0.00"),
        (0, "CHF", "CHF 0.00"),
    ],
)
def test_format_money(amount, currency, expected):
    assert format_money(amount, currency) == expected


def test_format_money_refuses_floats():
    with pytest.raises(TypeError):
        format_money(1000.0, "USD")


# --- Dates ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [
        (date(2017, 1, 1), date(2018, 1, 1), 365),
        (date(2024, 1, 1), date(2025, 1, 1), 366),
        (date(2017, 6, 1), date(2017, 6, 26), 25),
        (date(2017, 6, 1), date(2018, 1, 1), 214),
        (date(2017, 6, 1), date(2017, 6, 1), 0),
    ],
)
def test_days_between_counts_actual_days_end_exclusive(start, end, days):
    assert days_between(start, end) == days


def test_days_between_refuses_reversed_periods_and_datetimes():
    with pytest.raises(InvalidPeriod, match="2017-01-01"):
        days_between(date(2017, 1, 2), date(2017, 1, 1))
    with pytest.raises(TypeError, match="must be a date"):
        days_between(datetime(2017, 1, 1, 12), date(2017, 2, 1))


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2026, 11, 30), 3, date(2027, 2, 28)),
        (date(2027, 11, 30), 3, date(2028, 2, 29)),
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2024, 2, 29), 48, date(2028, 2, 29)),
        (date(2025, 1, 31), 1, date(2025, 2, 28)),
        (date(2025, 1, 31), 3, date(2025, 4, 30)),
        (date(2025, 12, 15), 1, date(2026, 1, 15)),
        (date(2025, 3, 31), -1, date(2025, 2, 28)),
        (date(2025, 1, 15), -1, date(2024, 12, 15)),
        (date(2025, 5, 17), 0, date(2025, 5, 17)),
    ],
)
def test_add_months_clamps_to_month_end(start, months, expected):
    assert add_months(start, months) == expected


def test_quarter_bounds_of_a_calendar_year_term():
    start = date(2017, 1, 1)
    assert [quarter_bounds(term_start=start, quarter=k) for k in (1, 2, 3, 4)] == [
        (date(2017, 1, 1), date(2017, 4, 1)),
        (date(2017, 4, 1), date(2017, 7, 1)),
        (date(2017, 7, 1), date(2017, 10, 1)),
        (date(2017, 10, 1), date(2018, 1, 1)),
    ]


def test_quarter_bounds_do_not_drift_from_a_31st_start():
    start = date(2024, 10, 31)
    # Chaining would give Jan 31, Apr 30, Jul 30, Oct 30: every later end one day early.
    assert [quarter_bounds(term_start=start, quarter=k)[1] for k in (1, 2, 3, 4)] == [
        date(2025, 1, 31),
        date(2025, 4, 30),
        date(2025, 7, 31),
        date(2025, 10, 31),
    ]


@pytest.mark.parametrize("quarter", [0, 5, -1, 1.0])
def test_quarter_bounds_refuses_other_quarters(quarter):
    with pytest.raises(InvalidPeriod, match="quarter"):
        quarter_bounds(term_start=date(2017, 1, 1), quarter=quarter)


@pytest.mark.parametrize(
    ("term_start", "expected"),
    [
        (date(2017, 1, 1), (date(2017, 4, 1), date(2017, 7, 1), date(2017, 10, 1))),
        (date(2026, 11, 30), (date(2027, 2, 28), date(2027, 5, 30), date(2027, 8, 30))),
        (date(2024, 2, 29), (date(2024, 5, 29), date(2024, 8, 29), date(2024, 11, 29))),
        (date(2025, 8, 31), (date(2025, 11, 30), date(2026, 2, 28), date(2026, 5, 31))),
    ],
)
def test_reconciliation_dates(term_start, expected):
    assert reconciliation_dates(term_start) == expected


def test_remaining_quarters():
    assert [remaining_quarters(k) for k in (1, 2, 3)] == [3, 2, 1]
    for quarter in (0, 4, 5):
        with pytest.raises(InvalidPeriod, match=str(quarter)):
            remaining_quarters(quarter)


# --- QSR eligibility --------------------------------------------------------------------

ELIGIBLE = {
    "term_months": 12,
    "channel": "direct",
    "payment_method": "card",
    "program": None,
    "offline_license": False,
}


def test_ineligibility_reason_codes():
    assert QSR_INELIGIBILITY_REASONS == (
        "term_length",
        "reseller",
        "purchase_order",
        "program",
        "offline_license",
    )


@pytest.mark.parametrize(
    "changes",
    [{}, {"payment_method": "invoice"}, {"program": ""}, {"channel": "direct"}],
)
def test_eligible_subscription_has_no_reasons(changes):
    attributes = {**ELIGIBLE, **changes}
    assert qsr_ineligibility_reasons(**attributes) == ()
    assert is_qsr_eligible(**attributes) is True


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"term_months": 24}, "term_length"),
        ({"term_months": 1}, "term_length"),
        ({"channel": "reseller"}, "reseller"),
        ({"channel": "marketplace"}, "reseller"),
        ({"payment_method": "purchase_order"}, "purchase_order"),
        ({"program": "education"}, "program"),
        ({"program": "open_source"}, "program"),
        ({"program": "startup"}, "program"),
        ({"offline_license": True}, "offline_license"),
    ],
)
def test_each_ineligibility_reason_on_its_own(changes, reason):
    attributes = {**ELIGIBLE, **changes}
    assert qsr_ineligibility_reasons(**attributes) == (reason,)
    assert is_qsr_eligible(**attributes) is False


def test_ineligibility_reasons_combine_in_a_fixed_order():
    assert (
        qsr_ineligibility_reasons(
            term_months=36,
            channel="reseller",
            payment_method="purchase_order",
            program="education",
            offline_license=True,
        )
        == QSR_INELIGIBILITY_REASONS
    )
    assert qsr_ineligibility_reasons(
        **{**ELIGIBLE, "offline_license": True, "channel": "partner"}
    ) == ("reseller", "offline_license")


def test_unknown_program_is_refused_rather_than_guessed():
    with pytest.raises(BillingError, match="'open source'"):
        qsr_ineligibility_reasons(**{**ELIGIBLE, "program": "open source"})


# --- QSR amounts ------------------------------------------------------------------------


def test_qsr_worked_example():
    """100 seats at 100.00: Q1 max 110, Q2 max 105, Q3 max 120 -> 1,000.00 in all."""
    paid_seats = 100
    amounts = []
    for quarter, max_seats_used in ((1, 110), (2, 105), (3, 120)):
        result = qsr_reconcile(
            quarter=quarter,
            max_seats_used=max_seats_used,
            paid_seats=paid_seats,
            annual_unit_price=D("100.00"),
            currency="USD",
        )
        amounts.append(result.amount)
        paid_seats = result.new_paid_seats

    assert amounts == [D("750.00"), D("0.00"), D("250.00")]
    assert paid_seats == 120
    assert format_money(sum(amounts), "USD") == "USD 1,000.00"


def test_qsr_result_keeps_its_working():
    result = qsr_reconcile(
        quarter=1, max_seats_used=110, paid_seats=100, annual_unit_price=D("100.00"), currency="USD"
    )
    assert result.quarter == 1
    assert result.max_seats_used == 110
    assert result.paid_seats == 100
    assert result.overage == 10
    assert result.remaining_quarters == 3
    assert result.amount_per_seat == D("75.00")
    assert result.amount == D("750.00")
    assert result.new_paid_seats == 110


def test_annual_true_up_of_the_worked_example():
    assert annual_true_up(
        max_seats_used=120, paid_seats=100, annual_unit_price=D("100.00"), currency="USD"
    ) == D("2000.00")
    assert annual_true_up(
        max_seats_used=90, paid_seats=100, annual_unit_price=D("100.00"), currency="USD"
    ) == D("0.00")


def test_qsr_amount_is_rounded_once_not_per_seat():
    result = qsr_reconcile(
        quarter=1, max_seats_used=10, paid_seats=0, annual_unit_price=D("0.01"), currency="USD"
    )
    # 0.0075 a seat: rounding per seat would give 10 x 0.01 = 0.10.
    assert result.amount_per_seat == D("0.0075")
    assert result.amount == D("0.08")


def test_qsr_amount_per_seat_is_exact():
    result = qsr_reconcile(
        quarter=1, max_seats_used=103, paid_seats=100, annual_unit_price=D("99.99"), currency="USD"
    )
    assert result.amount_per_seat == D("74.9925")
    assert result.amount == D("224.98")  # 224.9775


def test_qsr_in_yen():
    result = qsr_reconcile(
        quarter=3, max_seats_used=11, paid_seats=10, annual_unit_price=D("56000"), currency="JPY"
    )
    assert result.amount == D("14000")
    assert format_money(result.amount, "JPY") == "JPY 14,000"
    odd = qsr_reconcile(
        quarter=1, max_seats_used=1, paid_seats=0, annual_unit_price=D("1001"), currency="JPY"
    )
    assert odd.amount == D("751")  # 750.75


def test_qsr_overage_is_never_negative():
    assert qsr_overage(max_seats_used=110, paid_seats=100) == 10
    assert qsr_overage(max_seats_used=100, paid_seats=100) == 0
    assert qsr_overage(max_seats_used=90, paid_seats=100) == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_seats_used": -1, "paid_seats": 0, "annual_unit_price": D("1")},
        {"max_seats_used": 1, "paid_seats": -1, "annual_unit_price": D("1")},
        {"max_seats_used": 1, "paid_seats": 0, "annual_unit_price": D("-0.01")},
    ],
)
def test_negative_seats_and_prices_are_refused(kwargs):
    with pytest.raises(BillingError, match="must not be negative"):
        qsr_reconcile(quarter=1, currency="USD", **kwargs)
    with pytest.raises(BillingError, match="must not be negative"):
        annual_true_up(currency="USD", **kwargs)


def test_float_prices_and_seats_are_refused():
    with pytest.raises(TypeError):
        qsr_reconcile(
            quarter=1, max_seats_used=2, paid_seats=1, annual_unit_price=100.0, currency="USD"
        )
    with pytest.raises(TypeError):
        annual_true_up(max_seats_used=2.0, paid_seats=1, annual_unit_price=D(1), currency="USD")


def test_fourth_quarter_has_no_reconciliation():
    with pytest.raises(InvalidPeriod, match="quarter 4"):
        qsr_reconcile(
            quarter=4, max_seats_used=2, paid_seats=1, annual_unit_price=D(1), currency="USD"
        )


# --- Waived amounts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quarter", "expected"),
    [(None, D("1000.00")), (1, D("750.00")), (2, D("500.00")), (3, D("250.00"))],
)
def test_waived_amount_prices_the_next_charge(quarter, expected):
    assert (
        waived_amount(
            waived_seats=10, annual_unit_price=D("100.00"), currency="USD", quarter=quarter
        )
        == expected
    )


def test_waived_amount_refuses_negative_seats_and_the_fourth_quarter():
    with pytest.raises(BillingError):
        waived_amount(waived_seats=-1, annual_unit_price=D(1), currency="USD", quarter=None)
    with pytest.raises(InvalidPeriod):
        waived_amount(waived_seats=1, annual_unit_price=D(1), currency="USD", quarter=4)


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


# --- Properties -------------------------------------------------------------------------

currencies = st.sampled_from(CURRENCIES)
charges = st.decimals(min_value=0, max_value=10**9, places=2)
prices = st.decimals(min_value=0, max_value=10**6, places=2)
# Wide, but leaving room for term ends and extensions before date.max.
term_starts = st.dates(min_value=date(1900, 1, 1), max_value=date(9000, 12, 31))


@st.composite
def suspensions(draw):
    """A term of 1..800 days and a suspension window that fits inside it."""
    term_start = draw(term_starts)
    term_days = draw(st.integers(min_value=1, max_value=800))
    start_offset = draw(st.integers(min_value=0, max_value=term_days - 1))
    end_offset = draw(st.integers(min_value=start_offset + 1, max_value=term_days))
    return {
        "term_start": term_start,
        "term_end": term_start + timedelta(days=term_days),
        "start": term_start + timedelta(days=start_offset),
        "end": term_start + timedelta(days=end_offset),
    }


@given(window=suspensions(), charge=charges, currency=currencies)
def test_with_extension_credit_and_charge_cancel_exactly(window, charge, currency):
    result = suspension_proration(
        mode="credit", charge=charge, currency=currency, extend_term=True, **window
    )
    credit, recharge = result.lines
    assert recharge.days == credit.days
    assert recharge.amount == -credit.amount
    assert result.net == 0
    suspended = days_between(window["start"], window["end"])
    assert result.new_term_end == window["term_end"] + timedelta(days=suspended)


@given(window=suspensions(), charge=charges, currency=currencies, extend_term=st.booleans())
def test_credits_are_never_positive_and_charges_never_negative(
    window, charge, currency, extend_term
):
    result = suspension_proration(
        mode="credit", charge=charge, currency=currency, extend_term=extend_term, **window
    )
    # Rounding is monotonic, so no share of the charge exceeds the charge rounded.
    whole_charge = round_money(charge, currency)
    for line in result.lines:
        assert line.days > 0
        assert line.amount == round_money(line.amount, currency)
        if line.kind == LINE_PRORATION_CREDIT:
            assert -whole_charge <= line.amount <= 0
        else:
            assert 0 <= line.amount <= whole_charge
    # Suspending never costs the customer money.
    assert result.net <= 0


@given(
    window=suspensions(),
    charge=charges,
    currency=currencies,
    mode=st.sampled_from(["freeze", "free_period"]),
)
def test_freeze_and_free_period_only_move_the_term_end(window, charge, currency, mode):
    result = suspension_proration(mode=mode, charge=charge, currency=currency, **window)
    assert result.lines == ()
    suspended = days_between(window["start"], window["end"])
    assert result.new_term_end == window["term_end"] + timedelta(days=suspended)


# Linearity. Each rounded amount A = round(x) differs from its exact value x by an error e
# with -1/2 < e <= 1/2 minor unit (ROUND_HALF_UP on a non-negative x). The exact values
# scale exactly, x(k * n) = k * x(n), so
#     A(k * n) - k * A(n) = e(k * n) - k * e(n),  strictly between -(k + 1)/2 and (k + 1)/2.
# Being a whole number of minor units, its size is then at most floor(k / 2) minor units:
# for k = 2, within one cent of twice the amount.


def linearity_bound(k: int, currency: str) -> Decimal:
    return (k // 2) * one_minor_unit(currency)


@given(
    seats=st.integers(min_value=0, max_value=10_000),
    k=st.integers(min_value=1, max_value=50),
    price=prices,
    quarter=st.sampled_from([1, 2, 3]),
    currency=currencies,
)
@example(seats=1, k=2, price=D("0.01"), quarter=1, currency="USD")  # 0.0075: 0.01 vs 0.02
def test_qsr_amount_scales_with_seats_within_the_rounding_bound(seats, k, price, quarter, currency):
    def amount(n: int) -> Decimal:
        return qsr_reconcile(
            quarter=quarter,
            max_seats_used=n,
            paid_seats=0,
            annual_unit_price=price,
            currency=currency,
        ).amount

    assert abs(amount(seats * k) - k * amount(seats)) <= linearity_bound(k, currency)


@given(
    seats=st.integers(min_value=0, max_value=10_000),
    k=st.integers(min_value=1, max_value=50),
    price=prices,
    quarter=st.sampled_from([1, 2, 3]),
    currency=currencies,
)
def test_qsr_amount_scales_with_price_within_the_rounding_bound(seats, k, price, quarter, currency):
    def amount(unit_price: Decimal) -> Decimal:
        return qsr_reconcile(
            quarter=quarter,
            max_seats_used=seats,
            paid_seats=0,
            annual_unit_price=unit_price,
            currency=currency,
        ).amount

    assert abs(amount(price * k) - k * amount(price)) <= linearity_bound(k, currency)


@given(
    window=suspensions(),
    charge=charges,
    k=st.integers(min_value=1, max_value=50),
    currency=currencies,
)
def test_proration_scales_with_the_charge_within_the_rounding_bound(window, charge, k, currency):
    def amounts(scaled: Decimal) -> list[Decimal]:
        result = suspension_proration(mode="credit", charge=scaled, currency=currency, **window)
        return [line.amount for line in result.lines]

    for scaled, single in zip(amounts(charge * k), amounts(charge), strict=True):
        assert abs(scaled - k * single) <= linearity_bound(k, currency)


@given(
    seats=st.integers(min_value=0, max_value=10_000),
    price=prices,
    quarter=st.sampled_from([None, 1, 2, 3]),
    currency=currencies,
)
def test_waived_amount_is_the_charge_it_replaces(seats, price, quarter, currency):
    waived = waived_amount(
        waived_seats=seats, annual_unit_price=price, currency=currency, quarter=quarter
    )
    if quarter is None:
        charged = annual_true_up(
            max_seats_used=seats, paid_seats=0, annual_unit_price=price, currency=currency
        )
    else:
        charged = qsr_reconcile(
            quarter=quarter,
            max_seats_used=seats,
            paid_seats=0,
            annual_unit_price=price,
            currency=currency,
        ).amount
    assert waived == charged


@given(
    amount=st.decimals(min_value=-(10**12), max_value=10**12, places=6),
    currency=currencies,
)
def test_round_money_is_within_half_a_minor_unit_and_idempotent(amount, currency):
    rounded = round_money(amount, currency)
    assert abs(rounded - amount) <= one_minor_unit(currency) / 2
    assert round_money(rounded, currency) == rounded


TRICKY_STARTS = [
    date(2024, 2, 29),
    date(2023, 2, 28),
    date(2024, 1, 31),
    date(2025, 3, 31),
    date(2025, 5, 31),
    date(2025, 8, 31),
    date(2025, 10, 31),
    date(2025, 11, 30),
    date(2026, 12, 31),
]


def with_tricky_starts(test):
    for term_start in TRICKY_STARTS:
        test = example(term_start=term_start)(test)
    return test


@with_tricky_starts
@given(term_start=term_starts)
def test_reconciliation_dates_increase_strictly_inside_the_term(term_start):
    term_end = add_months(term_start, 12)
    q1, q2, q3 = reconciliation_dates(term_start)
    assert term_start < q1 < q2 < q3 < term_end
    assert days_between(term_start, term_end) in (365, 366)


@with_tricky_starts
@given(term_start=term_starts)
def test_quarter_bounds_are_contiguous_and_cover_the_term(term_start):
    quarters = [quarter_bounds(term_start=term_start, quarter=k) for k in (1, 2, 3, 4)]
    assert quarters[0][0] == term_start
    assert quarters[-1][1] == add_months(term_start, 12)
    for (_, end), (next_start, _) in pairwise(quarters):
        assert end == next_start
    for start, end in quarters:
        assert 89 <= days_between(start, end) <= 92
    assert reconciliation_dates(term_start) == tuple(end for _, end in quarters[:3])


@with_tricky_starts
@given(term_start=term_starts)
def test_reconciliation_happens_on_the_start_day_or_the_month_end(term_start):
    for reconciliation in reconciliation_dates(term_start):
        next_day = reconciliation + timedelta(days=1)
        assert reconciliation.day == term_start.day or next_day.month != reconciliation.month
        assert reconciliation.day <= term_start.day


@given(
    d=term_starts,
    months=st.integers(min_value=-1200, max_value=1200),
)
def test_add_months_moves_whole_months_and_clamps(d, months):
    moved = add_months(d, months)
    assert (moved.year * 12 + moved.month) - (d.year * 12 + d.month) == months
    assert moved.day == d.day or (moved.day < d.day and (moved + timedelta(days=1)).day == 1)


@given(a=term_starts, gaps=st.tuples(st.integers(0, 1000), st.integers(0, 1000)))
def test_days_between_adds_up(a, gaps):
    b = a + timedelta(days=gaps[0])
    c = b + timedelta(days=gaps[1])
    assert days_between(a, b) + days_between(b, c) == days_between(a, c)
