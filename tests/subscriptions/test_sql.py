"""Array literals built for set-based statements read back as the values put in."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.db import connection

from subscriptions.models import InvoiceLine
from subscriptions.services.sql import pg_array, pg_arrays

pytestmark = pytest.mark.django_db


def read_back(values: list, pg_type: str) -> list:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT %s::{pg_type}[]", [pg_array(values)])
        return cursor.fetchone()[0]


@pytest.mark.parametrize(
    ("values", "pg_type"),
    [
        ([1, None, -7, 2**40], "bigint"),
        ([Decimal("0.00"), Decimal("-821.92"), Decimal("1E+2"), None], "numeric"),
        ([date(2026, 2, 28), None, date(1999, 12, 31)], "date"),
        ([True, False, None], "boolean"),
        (
            [
                "plain", "", "NULL", "null", 'a "quoted" word', "back\\slash", "{braces}",
                "a, b", "  spaced  ", "new\nline", "Ünïcödé €", "'single'",
            ],
            "text",
        ),
    ],
)  # fmt: skip
def test_values_read_back_unchanged(values, pg_type):
    assert read_back(values, pg_type) == values


def test_timestamps_keep_their_instant():
    moment = datetime(2026, 4, 8, 23, 59, 59, 123456, tzinfo=UTC)
    assert read_back([moment], "timestamptz") == [moment]


def test_an_empty_list_is_an_empty_array():
    assert read_back([], "bigint") == []
    assert pg_arrays([], 3) == ["{}", "{}", "{}"]


def test_choices_go_in_as_their_values():
    assert read_back([InvoiceLine.Kind.QSR_OVERAGE], "text") == ["qsr_overage"]


def test_floats_are_refused():
    with pytest.raises(TypeError, match="float"):
        pg_array([Decimal("1.10"), 1.1])


def test_history_rows_follow_a_named_statement_never_a_fragment():
    from subscriptions.models import Invoice
    from subscriptions.services.history import history_insert_from

    assert 'FROM "invoices"' in history_insert_from(Invoice, cte="invoices", history_type="+")
    for hostile in ("invoices; DROP TABLE x", "Invoices", "a b", ""):
        with pytest.raises(ValueError, match="plain lower-case name"):
            history_insert_from(Invoice, cte=hostile, history_type="+")
