"""Rows inserted by the thousand without the ORM's cost per object.

``bulk_create`` runs every field of every object through the ORM's compiler (prepare,
convert, adapt, quote): for the tens of thousands of rows that planning writes in a day or
a large simulation sets up, that is most of the time spent. :func:`insert` prepares one
multi-row INSERT per batch size and adapts each value with its column's own database rule
(dates and times by the backend's adapter, anything unusual by the field itself); plain
strings, numbers and ids go as they are, which is all the ORM does with them too.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connection, models
from django.db.models.constants import OnConflict

# Fields whose Python value is already what the database driver takes.
_AS_IS = (
    models.CharField,
    models.TextField,
    models.IntegerField,
    models.BooleanField,
    models.ForeignKey,
)
BATCH = 500


def insert(
    model: type[models.Model],
    objs: Sequence[models.Model],
    *,
    ignore_conflicts: bool = False,
    set_pks: bool = False,
    batch_size: int = BATCH,
) -> None:
    """INSERT ``objs`` (unsaved instances of ``model``), ``batch_size`` rows a statement.

    With ``ignore_conflicts`` a row that breaks a unique constraint is skipped (as
    ``bulk_create(ignore_conflicts=True)``); otherwise the IntegrityError is raised and, in a
    transaction, nothing of the failed statement is kept. With ``set_pks`` each object gets
    the primary key it was given (``RETURNING``, in the order of the rows, as ``bulk_create``
    relies on).
    """
    if not objs:
        return
    if set_pks and ignore_conflicts:
        raise ValueError("a skipped row has no primary key to return")
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    adapters = [_adapter(f) for f in fields]
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    on_conflict = OnConflict.IGNORE if ignore_conflicts else None
    head = f"{connection.ops.insert_statement(on_conflict=on_conflict)} {table} ({columns}) VALUES "
    tail = connection.ops.on_conflict_suffix_sql(fields, on_conflict, [], []) or ""
    if set_pks:
        tail += f" RETURNING {connection.ops.quote_name(model._meta.pk.column)}"
    row_sql = "(" + ", ".join(["%s"] * len(fields)) + ")"
    batch_size = max(1, min(batch_size, _max_params() // len(fields)))
    with connection.cursor() as cursor:
        for start in range(0, len(objs), batch_size):
            batch = objs[start : start + batch_size]
            params: list[Any] = []
            for obj in batch:
                for field, adapt in zip(fields, adapters, strict=True):
                    params.append(adapt(obj, field))
            cursor.execute(head + ", ".join([row_sql] * len(batch)) + " " + tail, params)
            if set_pks:
                for obj, (pk,) in zip(batch, cursor.fetchall(), strict=True):
                    obj.pk = pk
                    obj._state.adding = False
                    obj._state.db = connection.alias


def _max_params() -> int:
    """How many parameters one statement may carry on this connection."""
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        return int(connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
    return 65_535  # PostgreSQL's protocol: a 16-bit count


def _adapter(field: models.Field[Any, Any]) -> Callable[[models.Model, Any], Any]:
    ops = connection.ops
    attname = field.attname
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return lambda obj, f: f.get_db_prep_save(f.pre_save(obj, True), connection)
    if isinstance(field, models.DateTimeField):
        return lambda obj, f: ops.adapt_datetimefield_value(getattr(obj, attname))
    if isinstance(field, models.DateField):
        return lambda obj, f: ops.adapt_datefield_value(getattr(obj, attname))
    if isinstance(field, _AS_IS) and (
        not isinstance(field, models.ForeignKey)
        or isinstance(field.target_field, models.IntegerField)
    ):
        return lambda obj, f: getattr(obj, attname)
    return lambda obj, f: f.get_db_prep_save(getattr(obj, attname), connection)
