"""History rows for set-based changes.

django-simple-history writes a row per `save()`. Jobs that change thousands of rows in
one statement call `history_snapshot` afterwards, so those changes keep their trail
(who, when, why) at the cost of one INSERT ... SELECT.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection
from django.db.models import Model


def history_snapshot(
    model: type[Model], *, ids: Sequence[int], reason: str, user=None, history_type: str = "~"
) -> int:
    """Record the current state of `model` rows `ids` as a history entry."""
    if not ids:
        return 0
    history_model = model.history.model
    columns = [f.column for f in model._meta.concrete_fields]
    quote = connection.ops.quote_name
    column_list = ", ".join(quote(c) for c in columns)
    sql = (
        f"INSERT INTO {quote(history_model._meta.db_table)} "
        f"({column_list}, history_date, history_change_reason, history_type, history_user_id) "
        f"SELECT {column_list}, now(), %s, %s, %s FROM {quote(model._meta.db_table)} "
        f"WHERE {quote(model._meta.pk.column)} = ANY(%s)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [reason[:100], history_type, getattr(user, "pk", None), list(ids)])
        return cursor.rowcount


def save_with_reason(obj: Model, fields: list[str], *, reason: str, actor=None) -> None:
    """Save only `fields` (and `updated_at`), with who and why on the history row."""
    obj._change_reason = reason
    obj._history_user = actor
    obj.save(update_fields=[*fields, "updated_at"])


def update_with_history(
    objs: Sequence[Model], fields: Sequence[str], *, reason: str, user=None
) -> int:
    """Write `fields` of many rows in one UPDATE ... FROM unnest(...) and record their
    history in one INSERT ... SELECT.

    Django's bulk_update builds a CASE per field over every row, which PostgreSQL plans
    poorly for thousands of rows; arrays of values join in linear time.
    """
    if not objs:
        return 0
    model = type(objs[0])
    meta = model._meta
    quote = connection.ops.quote_name
    columns = [meta.get_field(name) for name in fields]
    assignments = ", ".join(f"{quote(f.column)} = v.{quote(f.column)}" for f in columns)
    arrays = ", ".join(f"%s::{f.db_type(connection)}[]" for f in columns)
    names = ", ".join(quote(f.column) for f in columns)
    pk = meta.pk
    sql = (
        f"UPDATE {quote(meta.db_table)} AS t SET {assignments} "
        f"FROM unnest(%s::{pk.db_type(connection)}[], {arrays}) AS v(pk, {names}) "
        f"WHERE t.{quote(pk.column)} = v.pk"
    )
    params = [[obj.pk for obj in objs]]
    for field in columns:
        params.append(
            [field.get_db_prep_save(getattr(obj, field.attname), connection) for obj in objs]
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        updated = cursor.rowcount
    history_snapshot(model, ids=[obj.pk for obj in objs], reason=reason, user=user)
    return updated
