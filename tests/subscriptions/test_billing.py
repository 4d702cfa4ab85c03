"""Tests of subscriptions/billing.py: the worked examples of docs/DOMAIN.md to the cent
and the rules around them: money, dates, QSR eligibility, QSR and waived amounts.
Proration is in test_billing_proration.py, the hypothesis properties in
test_billing_properties.py.

Plain functions, no database: billing.py is pure."""

from datetime import date, datetime
from decimal import Decimal

import pytest

from subscriptions.billing import (
    CURRENCIES,
    CURRENCY_DECIMALS,
    QSR_INELIGIBILITY_REASONS,
    BillingError,
    InvalidPeriod,
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
from tests.subscriptions.helpers import CHARGE_12K, TERM_2017

D = Decimal


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
