"""Arrays of values as statement parameters, for set-based writes.

A batch job sends its rows to PostgreSQL as one array per column and unpacks them with
`unnest(%s::<type>[], ...)`: one statement for a thousand rows. psycopg adapts a Python
list element by element, in Python, which costs more than the statement itself once a
batch has a dozen columns; `pg_array` builds the array's text form in one pass instead,
and the statement casts it to the column type.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal


def pg_array(values: Iterable) -> str:
    """The PostgreSQL array literal of `values`: None, bool, int, Decimal, date,
    datetime or str elements (pass it as one parameter cast to `<type>[]`)."""
    return "{" + ",".join(map(_element, values)) + "}"


def _element(value) -> str:
    if value is None:
        return "NULL"
    if value is True or value is False:
        return "t" if value else "f"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, date):  # datetime too: isoformat() keeps its offset
        return f'"{value.isoformat()}"'
    if isinstance(value, str):
        # Quoted, so that commas, braces, blanks or the word NULL stay text.
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise TypeError(f"cannot put a {type(value).__name__} into an SQL array: {value!r}")


def pg_arrays(rows: Iterable[tuple], width: int) -> list[str]:
    """One array literal per column of `rows` (tuples of `width` values)."""
    columns = list(zip(*rows, strict=True)) or [()] * width
    return [pg_array(column) for column in columns]
