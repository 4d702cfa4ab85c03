"""The small SQL layer of the set-based statements: names and arrays.

Names: statements take table and column names from the models' `_meta`, quoted by the
connection (`table`, `column`), and type their id arrays after the primary key
(`pk_array`), so a renamed table or a wider key changes no SQL by hand.

Arrays of values as statement parameters: a batch job sends its rows to PostgreSQL as one
array per column and unpacks them with `unnest(%s::<type>[], ...)`: one statement for a
thousand rows. psycopg adapts a Python list element by element, in Python, which costs
more than the statement itself once a batch has a dozen columns; `pg_array` builds the
array's text form in one pass instead, and the statement casts it to the column type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any, cast

from django.db import connection
from django.db.models import Field, Model


def table(model: type[Model]) -> str:
    """`model`'s table, quoted."""
    return connection.ops.quote_name(model._meta.db_table)


def column(model: type[Model], name: str) -> str:
    """The column of `model`'s field `name` (for a foreign key, its `_id` column), quoted."""
    # The names given are concrete fields, which always have a column.
    field = cast(Field, model._meta.get_field(name))
    return connection.ops.quote_name(cast(str, field.column))


def pk_array(model: type[Model]) -> str:
    """The array type of `model`'s primary keys (`bigint[]`), to cast an id array to."""
    return f"{cast(str, model._meta.pk.db_type(connection))}[]"


def pg_array(values: Iterable) -> str:
    """The PostgreSQL array literal of `values`: None, bool, int, Decimal, date,
    datetime or str elements (pass it as one parameter cast to `<type>[]`)."""
    values = values if isinstance(values, list | tuple) else list(values)
    kinds = set(map(type, values))
    # Columns of one plain type, the usual case, need no per-element dispatch.
    if kinds == {int} or kinds == {Decimal}:
        return "{" + ",".join(map(str, values)) + "}"
    if kinds == {date}:
        return "{" + ",".join(map(date.isoformat, values)) + "}"
    return "{" + ",".join(map(_element, values)) + "}"


def _quoted(text: str) -> str:
    # Quoted, so that commas, braces, blanks or the word NULL stay text.
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _iso(value: date) -> str:
    return f'"{value.isoformat()}"'  # a datetime keeps its offset


_ENCODERS: dict[type, Callable[[Any], str]] = {
    type(None): lambda _: "NULL",
    bool: lambda value: "t" if value else "f",
    int: str,
    Decimal: str,
    date: _iso,
    datetime: _iso,
    str: _quoted,
}

# The types whose subclasses (a TextChoices member, an IntegerChoices one) go in as them.
_SUBCLASSED: tuple[type[Any], ...] = (bool, int, Decimal, date, str)


def _element(value: Any) -> str:
    encode = _ENCODERS.get(type(value))
    if encode is not None:
        return encode(value)
    # Subclasses, such as a TextChoices member (a str) or an IntegerChoices one.
    for kind in _SUBCLASSED:
        if isinstance(value, kind):
            return _ENCODERS[kind](value if kind is date else kind(value))
    raise TypeError(f"cannot put a {type(value).__name__} into an SQL array: {value!r}")


def pg_arrays(rows: Iterable[tuple], width: int) -> list[str]:
    """One array literal per column of `rows` (tuples of `width` values)."""
    columns = list(zip(*rows, strict=True)) or [()] * width
    return [pg_array(column) for column in columns]
