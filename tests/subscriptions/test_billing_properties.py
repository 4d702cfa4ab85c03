"""Hypothesis properties of the money math in subscriptions/billing.py: credits and
charges cancel, amounts scale within the rounding bound, dates stay inside the term.

Plain functions, no database: billing.py is pure."""

from datetime import date, timedelta
from decimal import Decimal
from itertools import pairwise

from hypothesis import example, given
from hypothesis import strategies as st

from subscriptions.billing import (
    CURRENCIES,
    LINE_PRORATION_CREDIT,
    add_months,
    annual_true_up,
    days_between,
    qsr_reconcile,
    quarter_bounds,
    reconciliation_dates,
    round_money,
    suspension_proration,
    waived_amount,
)
from tests.subscriptions.helpers import one_minor_unit

D = Decimal


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
