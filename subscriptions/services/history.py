"""History rows for set-based changes.

django-simple-history writes a row per `save()`. Jobs that change thousands of rows in
one statement write the history rows in that statement too (`update_with_history`, or
`history_insert_from` after an `INSERT/UPDATE ... RETURNING *` named as a CTE), or call
`history_snapshot` afterwards, so those changes keep their trail (who, when, why)
without a model object per row.

Who: a user, or the portal itself (`policy.SystemActor`), whose rows have no user.
`None` is still taken for the portal itself while the nightly steps move to `SYSTEM`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from django.db import connection
from django.db.models import Field, Model

from portal.policy import Actor, SystemActor

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
from subscriptions.services.sql import column, pg_array, pk_array, table

REASON_MAX_LENGTH = 100  # simple-history's history_change_reason column
HISTORY_TYPES = ("+", "~", "-")


def history_user(actor: Actor | None) -> AbstractBaseUser | None:
    """The user a history row records for `actor`: None for the portal itself."""
    return None if actor is None or isinstance(actor, SystemActor) else actor


def history_params(*, reason: str, user: Actor | None = None) -> dict[str, Any]:
    """The parameters the history-writing statements take: why, and who."""
    who = history_user(user)
    return {"history_reason": reason[:REASON_MAX_LENGTH], "history_user": getattr(who, "pk", None)}


def _history_insert_sql(model: type[Model], *, select_from: str, history_type: str) -> str:
    """`INSERT` into `model`'s history table one row per row of `select_from`: SQL that
    follows FROM and yields the model's columns (its table with a WHERE, or a CTE such as
    `UPDATE ... RETURNING *`). Takes the `history_params` as named parameters.

    Private to the services package: `select_from` is an SQL fragment, spliced in as it
    is, so only the package's own statements (written from `_meta`) may pass one."""
    if history_type not in HISTORY_TYPES:
        raise ValueError(f"history_type must be one of {HISTORY_TYPES}, not {history_type!r}")
    quote = connection.ops.quote_name
    # A concrete field always has a column; the stubs allow None for the others.
    columns = ", ".join(quote(cast(str, f.column)) for f in model._meta.concrete_fields)
    # `history` is the manager simple-history adds to the models it tracks.
    history = model.history.model._meta  # type: ignore[attr-defined]
    user_type = history.get_field("history_user").db_type(connection)
    # Set-based: one history row per changed row, in the statement that changes them.
    return (
        f"INSERT INTO {quote(history.db_table)} "
        f"({columns}, history_date, history_change_reason, history_type, history_user_id) "
        f"SELECT {columns}, now(), %(history_reason)s, '{history_type}', "
        f"%(history_user)s::{user_type} FROM {select_from}"
    )


_CTE_NAME = re.compile(r"[a-z_][a-z0-9_]*\Z")


def history_insert_from(model: type[Model], *, cte: str, history_type: str) -> str:
    """`INSERT` into `model`'s history table one row per row of the statement's CTE named
    `cte` (an `INSERT/UPDATE ... RETURNING *` of `model`'s rows), to follow it in the same
    `WITH`. Takes the `history_params` as named parameters. `cte` is a name, never SQL."""
    if not _CTE_NAME.match(cte):
        raise ValueError(f"cte must be a plain lower-case name, not {cte!r}")
    return _history_insert_sql(
        model, select_from=connection.ops.quote_name(cte), history_type=history_type
    )


def history_snapshot(
    model: type[Model],
    *,
    ids: Sequence[int],
    reason: str,
    user: Actor | None = None,
    history_type: str = "~",
) -> int:
    """Record the current state of `model` rows `ids` as a history entry."""
    if not ids:
        return 0
    # Set-based: a job's thousands of changed rows get their history in one statement.
    sql = _history_insert_sql(
        model,
        select_from=f"{table(model)} "
        f"WHERE {column(model, model._meta.pk.name)} = ANY(%(ids)s::{pk_array(model)})",
        history_type=history_type,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, {"ids": pg_array(ids), **history_params(reason=reason, user=user)})
        return cursor.rowcount


def save_with_reason(
    obj: Model, fields: list[str], *, reason: str, actor: Actor | None = None
) -> None:
    """Save only `fields` (and `updated_at`), with who and why on the history row."""
    # simple-history reads these two attributes off the instance when it saves.
    obj._change_reason = reason  # type: ignore[attr-defined]
    obj._history_user = history_user(actor)  # type: ignore[attr-defined]
    obj.save(update_fields=[*fields, "updated_at"])


def update_with_history(
    model: type[Model],
    *,
    pks: Sequence[int],
    values: Mapping[str, Sequence[Any]],
    stamps: Mapping[str, Sequence[bool]] | None = None,
    reason: str,
    user: Actor | None = None,
) -> int:
    """Set, row by row, the fields in `values` (field name -> one value per pk) of
    `model` rows `pks`, in one UPDATE ... FROM unnest(...) that also writes their
    history rows. The fields in `stamps` are set to the transaction time where their
    flag is true and left alone where false; `updated_at`, if the model has it, always.

    Values go in as they are: money must come rounded (billing.py rounds, not this).
    Returns the number of rows updated.
    """
    if not pks:
        return 0
    stamps = stamps or {}
    meta = model._meta
    quote = connection.ops.quote_name
    pk = meta.pk
    # `values` and `stamps` name concrete fields, never relations' reverse sides.
    columns = [(cast(Field, meta.get_field(name)), given) for name, given in values.items()]
    flags = [(cast(Field, meta.get_field(name)), flag) for name, flag in stamps.items()]
    for name, given in [*values.items(), *stamps.items()]:
        if len(given) != len(pks):
            raise ValueError(f"{name}: {len(given)} values for {len(pks)} rows")

    arrays = [f"%(pk)s::{pk_array(model)}"]
    aliases = ["pk"]
    assignments = []
    params: dict[str, Any] = {"pk": pg_array(pks), **history_params(reason=reason, user=user)}
    for i, (field, given) in enumerate(columns):
        arrays.append(f"%(v{i})s::{field.db_type(connection)}[]")
        aliases.append(f"v{i}")
        assignments.append(f"{quote(cast(str, field.column))} = v.v{i}")
        params[f"v{i}"] = pg_array(given)
    for i, (field, flag) in enumerate(flags):
        arrays.append(f"%(s{i})s::boolean[]")
        aliases.append(f"s{i}")
        target = quote(cast(str, field.column))
        assignments.append(f"{target} = CASE WHEN v.s{i} THEN now() ELSE t.{target} END")
        params[f"s{i}"] = pg_array(flag)
    if "updated_at" in {f.name for f in meta.concrete_fields} and "updated_at" not in stamps:
        assignments.append(f"{quote('updated_at')} = now()")
    # Set-based: a batch's rows each get their own values, in one statement, not a save each.
    sql = (
        f"WITH changed AS ("
        f"UPDATE {table(model)} AS t SET {', '.join(assignments)} "
        f"FROM unnest({', '.join(arrays)}) AS v({', '.join(aliases)}) "
        f"WHERE t.{column(model, pk.name)} = v.pk RETURNING t.*) "
        + _history_insert_sql(model, select_from="changed", history_type="~")
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
