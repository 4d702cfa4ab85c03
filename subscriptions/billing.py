"""Money math of the portal, as pure functions over ``Decimal`` and ``date``.

Read it beside docs/DOMAIN.md: the sections "Money", "Quarterly subscription
reconciliation (QSR)", "Annual true-up and renewal", "Max seats reset" and
"Suspensions and proration" map onto the sections of this module, in that order.

Nothing here imports Django, touches the database or reads settings, so every rule can
be tested exhaustively and called from services, jobs, the admin and the API alike.

Rules that hold throughout:

- Amounts are ``Decimal`` (``int`` is accepted, ``float`` is refused with ``TypeError``).
- ``round_money`` is the only function that rounds; every other function computes the
  exact amount and rounds it once, at line level, through it.
- Periods are half-open: ``start`` inclusive, ``end`` exclusive, counted in actual days.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext

# `ProrationLine` has a field named `date`: its annotations name the type by this alias.
_Date = date


# --- Errors -----------------------------------------------------------------------------


class BillingError(ValueError):
    """A money rule was broken; the message names the value and the rule."""


class UnknownCurrency(BillingError):
    """The currency is not one the portal bills in."""


class InvalidPeriod(BillingError):
    """Dates that do not form a valid period, quarter or suspension."""


# --- Money ------------------------------------------------------------------------------

CURRENCY_DECIMALS: dict[str, int] = {
    "AUD": 2,
    "CAD": 2,
    "CHF": 2,
    "EUR": 2,
    "GBP": 2,
    "JPY": 0,
    "USD": 2,
}
CURRENCIES: tuple[str, ...] = tuple(sorted(CURRENCY_DECIMALS))

# Intermediate results carry 50 significant digits whatever the caller's decimal context
# says: far more than any amount needs, so the divisions below cannot move a value across
# a half-cent and the ROUND_HALF_UP in round_money is the only rounding that shows.
_CONTEXT = Context(prec=50)


def minor_unit(currency: str) -> int:
    """Number of decimals of ``currency`` (ISO 4217 minor unit): 2, or 0 for JPY."""
    try:
        return CURRENCY_DECIMALS[currency]
    except (KeyError, TypeError):
        raise UnknownCurrency(
            f"unknown currency {currency!r}: the portal bills in {', '.join(CURRENCIES)}"
        ) from None


def round_money(amount: Decimal | int, currency: str) -> Decimal:
    """Round ``amount`` to the minor unit of ``currency``, half up (away from zero)."""
    exponent = Decimal(1).scaleb(-minor_unit(currency))
    value = _amount(amount, name="amount")
    with localcontext(_CONTEXT):
        rounded = value.quantize(exponent, rounding=ROUND_HALF_UP)
    # A tiny negative rounds to -0.00, which would print as a negative nothing.
    return abs(rounded) if rounded.is_zero() else rounded


def format_money(amount: Decimal | int, currency: str) -> str:
    """``"USD 1,000.00"``, ``"USD -821.92"``, ``"JPY 14,000"``."""
    # Formatting goes through round_money: Decimal's own formatting would round half-even.
    return f"{currency} {round_money(amount, currency):,.{minor_unit(currency)}f}"


def _amount(value: Decimal | int, *, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(
            f"{name} must be a Decimal or an int, not {type(value).__name__} {value!r}: "
            "floats cannot hold money exactly"
        )
    result = Decimal(value)
    if not result.is_finite():
        raise BillingError(f"{name} must be a finite amount, got {value!r}")
    return result


def _non_negative_amount(value: Decimal | int, *, name: str) -> Decimal:
    result = _amount(value, name=name)
    if result < 0:
        raise BillingError(f"{name} must not be negative, got {value!r}")
    return result


def _seat_count(value: int, *, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int (whole seats), not {type(value).__name__}")
    if value < 0:
        raise BillingError(f"{name} must not be negative, got {value}")
    return value


# --- Bounds -----------------------------------------------------------------------------
#
# The ledger's money columns are numeric(14, 2): twelve digits before the point, so every
# amount stays below MONEY_LIMIT. The models hold seats and prices to the ceilings below
# (validators and database constraints), and the usage import holds counts to a setting
# that may not exceed MAX_SEATS, so no amount computed here can reach the limit. Each is
# at most seats x annual unit price:
#
# - recurring charge: seats x price (seats <= MAX_SEATS);
# - annual true-up: overage x price, overage <= max seats used <= MAX_SEATS;
# - QSR: overage x price / 4 x remaining quarters (3 at most), 3/4 of the above;
# - proration credit and charge: charge x days / days(term), never more days than the term
#   has, so at most the charge;
# - refund: a share of a QSR amount; waived amount: a QSR or true-up amount.
#
# MAX_SEATS x MAX_ANNUAL_UNIT_PRICE = 1,000,000 x 999,999.99 = 999,999,990,000.00, below
# 10**12 (rounding half up to a whole yen cannot carry a whole-yen product over it either).
# Seats grown by overages stay within MAX_SEATS: a reconciliation or true-up lifts the
# paid seats to the max seats used, which comes from usage reports bounded by MAX_SEATS.
# The ceilings are the same in every currency because the columns are: a JPY price is
# whole yen, up to 999,999 a seat a year (the demo's Ultimate is 178,000), and list prices
# in the two-decimal currencies are in the thousands.
MONEY_LIMIT = Decimal(10) ** 12
MAX_SEATS = 1_000_000
MAX_ANNUAL_UNIT_PRICE = Decimal("999999.99")


# --- Dates ------------------------------------------------------------------------------


def _plain_date(value: date, *, name: str) -> date:
    # datetime subclasses date, and a timestamp sneaking in would shift day counts by time
    # of day and time zone; billing periods are whole calendar days.
    if isinstance(value, datetime) or not isinstance(value, date):
        raise TypeError(f"{name} must be a date, not {type(value).__name__} {value!r}")
    return value


def days_between(start: date, end: date) -> int:
    """Actual days in ``[start, end)``: 2017-01-01 to 2018-01-01 is 365."""
    days = (_plain_date(end, name="end") - _plain_date(start, name="start")).days
    if days < 0:
        raise InvalidPeriod(f"period ends {end} before it starts {start}")
    return days


def add_months(d: date, months: int) -> date:
    """``d`` plus ``months`` calendar months, clamped to the end of the target month.

    30 Nov 2026 + 3 = 28 Feb 2027; 30 Nov 2027 + 3 = 29 Feb 2028; 29 Feb 2024 + 12 =
    28 Feb 2025.
    """
    _plain_date(d, name="d")
    month_index = d.year * 12 + (d.month - 1) + months
    year, month = divmod(month_index, 12)
    last_day = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(d.day, last_day))


# --- Quarterly subscription reconciliation (QSR) ---------------------------------------


def quarter_bounds(*, term_start: date, quarter: int) -> tuple[date, date]:
    """``[term_start + 3(k-1) months, term_start + 3k months)`` for quarter k in 1..4.

    Both ends are computed from ``term_start``: chaining quarter to quarter would let a
    31st-of-month start drift to the 28th after passing through February.
    """
    if type(quarter) is not int or not 1 <= quarter <= 4:
        raise InvalidPeriod(f"quarter must be 1, 2, 3 or 4, got {quarter!r}")
    return (add_months(term_start, 3 * (quarter - 1)), add_months(term_start, 3 * quarter))


def reconciliation_dates(term_start: date) -> tuple[date, date, date]:
    """The ends of quarters 1, 2 and 3: the days reconciliations happen (Q4 has none)."""
    q1, q2, q3 = (quarter_bounds(term_start=term_start, quarter=k)[1] for k in (1, 2, 3))
    return (q1, q2, q3)


def remaining_quarters(quarter: int) -> int:
    """Quarters still to pay for after reconciling ``quarter``: 3, 2, 1 after Q1, Q2, Q3."""
    if type(quarter) is not int or not 1 <= quarter <= 3:
        raise InvalidPeriod(f"quarter {quarter!r} has no reconciliation: only 1, 2 and 3 do")
    return 4 - quarter


QSR_INELIGIBILITY_REASONS: tuple[str, ...] = (
    "term_length",  # the term is not 12 months
    "reseller",  # bought through a reseller or channel, not direct
    "purchase_order",  # paid by purchase order, not by card or invoice
    "program",  # in the education, open source or startup program
    "offline_license",  # an offline-license install cannot report usage in time
)
QSR_PROGRAMS: tuple[str, ...] = ("education", "open_source", "startup")


def qsr_ineligibility_reasons(
    *,
    term_months: int,
    channel: str,
    payment_method: str,
    program: str | None,
    offline_license: bool,
) -> tuple[str, ...]:
    """Every reason the subscription is trued up annually instead; empty means eligible."""
    # An unknown program is refused rather than guessed: a misspelt "open_source" would
    # otherwise quietly put a program customer on quarterly charges.
    if program and program not in QSR_PROGRAMS:
        raise BillingError(
            f"unknown program {program!r}: expected one of {', '.join(QSR_PROGRAMS)} or no program"
        )
    broken = {
        "term_length": term_months != 12,
        "reseller": channel != "direct",
        "purchase_order": payment_method not in ("card", "invoice"),
        "program": bool(program),
        "offline_license": bool(offline_license),
    }
    return tuple(reason for reason in QSR_INELIGIBILITY_REASONS if broken[reason])


def is_qsr_eligible(
    *,
    term_months: int,
    channel: str,
    payment_method: str,
    program: str | None,
    offline_license: bool,
) -> bool:
    """True when no ineligibility reason applies."""
    return not qsr_ineligibility_reasons(
        term_months=term_months,
        channel=channel,
        payment_method=payment_method,
        program=program,
        offline_license=offline_license,
    )


def qsr_overage(*, max_seats_used: int, paid_seats: int) -> int:
    """Seats used above those paid for; never negative (unused seats are not refunded)."""
    used = _seat_count(max_seats_used, name="max_seats_used")
    return max(0, used - _seat_count(paid_seats, name="paid_seats"))


@dataclass(frozen=True)
class QsrResult:
    """One quarter's reconciliation, with the inputs kept so the record can show its sums."""

    quarter: int
    max_seats_used: int
    paid_seats: int
    overage: int
    remaining_quarters: int
    amount: Decimal  # rounded once: overage * amount_per_seat
    amount_per_seat: Decimal  # exact, unrounded: what one refunded seat gives back
    new_paid_seats: int  # paid_seats + overage, once invoiced


def qsr_reconcile(
    *, quarter: int, max_seats_used: int, paid_seats: int, annual_unit_price: Decimal, currency: str
) -> QsrResult:
    """``overage * annual_unit_price / 4 * remaining_quarters``, rounded once at the end."""
    remaining = remaining_quarters(quarter)
    overage = qsr_overage(max_seats_used=max_seats_used, paid_seats=paid_seats)
    price = _non_negative_amount(annual_unit_price, name="annual_unit_price")
    with localcontext(_CONTEXT):
        amount_per_seat = price / 4 * remaining
        amount = round_money(overage * amount_per_seat, currency)
    return QsrResult(
        quarter=quarter,
        max_seats_used=max_seats_used,
        paid_seats=paid_seats,
        overage=overage,
        remaining_quarters=remaining,
        amount=amount,
        amount_per_seat=amount_per_seat,
        new_paid_seats=paid_seats + overage,
    )


# --- Annual true-up and renewal ---------------------------------------------------------


def annual_true_up(
    *, max_seats_used: int, paid_seats: int, annual_unit_price: Decimal, currency: str
) -> Decimal:
    """What a subscription not on QSR pays at term end: a full year per seat of overage."""
    overage = qsr_overage(max_seats_used=max_seats_used, paid_seats=paid_seats)
    price = _non_negative_amount(annual_unit_price, name="annual_unit_price")
    with localcontext(_CONTEXT):
        return round_money(overage * price, currency)


# --- Max seats reset --------------------------------------------------------------------


def waived_amount(
    *, waived_seats: int, annual_unit_price: Decimal, currency: str, quarter: int | None
) -> Decimal:
    """What waiving ``waived_seats`` costs at the next charge they would have triggered.

    ``quarter`` is the quarter of the next reconciliation (1..3), or None when the next
    charge is the annual true-up. The same functions price both, so a waiver and the
    charge it replaces can never disagree.
    """
    if quarter is None:
        return annual_true_up(
            max_seats_used=waived_seats,
            paid_seats=0,
            annual_unit_price=annual_unit_price,
            currency=currency,
        )
    return qsr_reconcile(
        quarter=quarter,
        max_seats_used=waived_seats,
        paid_seats=0,
        annual_unit_price=annual_unit_price,
        currency=currency,
    ).amount


# --- QSR refund -------------------------------------------------------------------------


def qsr_refund_amount(
    *,
    quarter: int,
    refunded_seats: int,
    overage: int,
    already_refunded: int,
    annual_unit_price: Decimal,
    currency: str,
) -> Decimal:
    """What refunding ``refunded_seats`` of a reconciliation gives back: the seats times
    the reconciliation's amount per seat, in whole seats, never more than the overage not
    refunded yet. Refunding all of them gives back exactly what was charged."""
    seats = _seat_count(refunded_seats, name="refunded_seats")
    left = _seat_count(overage, name="overage") - _seat_count(already_refunded, name="refunded")
    if seats < 1:
        raise BillingError("Refund at least one seat.")
    if seats > left:
        raise BillingError(
            f"Only {max(left, 0)} of the reconciliation's {overage} overage seats are left to "
            f"refund; {seats} is more than was reconciled."
        )
    return qsr_reconcile(
        quarter=quarter,
        max_seats_used=seats,
        paid_seats=0,
        annual_unit_price=annual_unit_price,
        currency=currency,
    ).amount


# --- Free period ------------------------------------------------------------------------


def free_period_value(
    *, charge: Decimal, currency: str, term_start: date, term_end: date, days: int
) -> Decimal:
    """What ``days`` free days of a term whose prepaid charge is ``charge`` are worth:
    ``charge * days / days(term)``, the same proration as a suspension credit."""
    term_days = days_between(term_start, term_end)
    if days < 1:
        raise BillingError("A free period is at least one day.")
    with localcontext(_CONTEXT):
        return round_money(_non_negative_amount(charge, name="charge") * days / term_days, currency)


# --- Suspensions and proration ----------------------------------------------------------

LINE_PRORATION_CREDIT = "proration_credit"
LINE_PRORATION_CHARGE = "proration_charge"
SUSPENSION_MODES: tuple[str, ...] = ("credit", "freeze", "free_period")


@dataclass(frozen=True)
class ProrationLine:
    """An invoice line for part of a term: credits are negative, charges positive."""

    kind: str
    date: _Date  # the day the line is written
    period_start: _Date
    period_end: _Date  # exclusive
    days: int
    amount: Decimal


@dataclass(frozen=True)
class ProrationResult:
    lines: tuple[ProrationLine, ...]
    new_term_end: date

    @property
    def net(self) -> Decimal:
        """Sum of the (already rounded) line amounts; 0 when there are no lines."""
        return sum((line.amount for line in self.lines), Decimal(0))


def suspension_proration(
    *,
    mode: str,
    charge: Decimal,
    currency: str,
    term_start: date,
    term_end: date,
    start: date,
    end: date,
    extend_term: bool = False,
) -> ProrationResult:
    """The invoice lines and new term end of suspending ``[start, end)``.

    ``charge`` is the prepaid annual charge (seats * annual unit price); shares of it are
    taken over ``days(term_start, term_end)`` of the term passed in.

    - ``"credit"``: on ``start`` credit ``charge * days(start, term_end) / days(term)``;
      on ``end`` charge ``charge * days(end, new_term_end) / days(term)``. The term grows
      by the suspended days only when ``extend_term``; then the two lines cancel exactly.
    - ``"freeze"``: no lines; the term always grows by the suspended days.
    - ``"free_period"``: service continues and ``[start, end)`` are the free days; no
      lines; the term always grows by them.

    ``extend_term`` only chooses between the two credit variants: freeze and free period
    extend the term by definition, so it is ignored for them rather than contradicted.
    A line covering no days (resuming on the term end without extension) is left out.
    """
    if mode not in SUSPENSION_MODES:
        raise BillingError(f"unknown suspension mode {mode!r}: expected one of {SUSPENSION_MODES}")
    charge = _non_negative_amount(charge, name="charge")
    minor_unit(currency)  # an unknown currency fails for every mode, not just "credit"
    _check_suspension(mode=mode, term_start=term_start, term_end=term_end, start=start, end=end)
    suspended = timedelta(days=days_between(start, end))
    if mode != "credit":
        return ProrationResult(lines=(), new_term_end=term_end + suspended)

    term_days = days_between(term_start, term_end)
    new_term_end = term_end + suspended if extend_term else term_end

    def prorated(*, kind: str, period_start: date, period_end: date) -> ProrationLine:
        days = days_between(period_start, period_end)
        # The share is rounded before the sign is applied, so a credit and a charge over
        # the same number of days are exact opposites.
        with localcontext(_CONTEXT):
            share = round_money(charge * days / term_days, currency)
            amount = -share if kind == LINE_PRORATION_CREDIT else share
        return ProrationLine(
            kind=kind,
            date=period_start,
            period_start=period_start,
            period_end=period_end,
            days=days,
            amount=amount,
        )

    credit = prorated(kind=LINE_PRORATION_CREDIT, period_start=start, period_end=term_end)
    recharge = prorated(kind=LINE_PRORATION_CHARGE, period_start=end, period_end=new_term_end)
    return ProrationResult(
        lines=tuple(line for line in (credit, recharge) if line.days), new_term_end=new_term_end
    )


def _check_suspension(
    *, mode: str, term_start: date, term_end: date, start: date, end: date
) -> None:
    if not term_start < term_end:
        raise InvalidPeriod(
            f"term [{term_start}, {term_end}) is empty: it must end after it starts"
        )
    if not term_start <= start < term_end:
        raise InvalidPeriod(
            f"suspension start {start} is outside the term [{term_start}, {term_end})"
        )
    if not end > start:
        raise InvalidPeriod(f"suspension end {end} must be after its start {start}")
    # A free period may run past the term end: it gives days, it does not pause service
    # already paid for.
    if mode != "free_period" and end > term_end:
        raise InvalidPeriod(
            f"suspension end {end} is after the term end {term_end}: resume by then"
        )
