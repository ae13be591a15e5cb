"""Rows inserted by the thousand without the ORM's cost per object.

``bulk_create`` builds a model instance per row and runs every field of every object through
the ORM's compiler (prepare, convert, adapt): for the tens of thousands of rows that planning
writes in a day or a large simulation sets up, that is most of the time spent. :func:`insert`
takes plain rows (or instances), prepares one multi-row INSERT per batch size and adapts each
value with its column's own database rule (dates and times by the backend's adapter, anything
unusual by the field itself); plain strings, numbers and ids go as they are, which is all the
ORM does with them too.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from django.db import connection, models
from django.db.models.constants import OnConflict
from django.utils import timezone

# Fields whose Python value is already what the database driver takes.
_AS_IS = (
    models.CharField,
    models.TextField,
    models.IntegerField,
    models.BooleanField,
    models.ForeignKey,
)
BATCH = 500

Row = Mapping[str, Any] | models.Model


def insert(
    model: type[models.Model],
    rows: Sequence[Row],
    *,
    ignore_conflicts: bool = False,
    returning_pks: bool = False,
    batch_size: int = BATCH,
) -> list[Any]:
    """INSERT ``rows`` into ``model``'s table, ``batch_size`` rows a statement.

    A row is a mapping of field attnames (``campaign_id``, not ``campaign``) to values, or an
    unsaved instance. A field a mapping leaves out takes its default, evaluated once for the
    call (a ``clock.now`` default is the same instant for every row); ``auto_now`` fields
    take the call's time. With ``ignore_conflicts`` a row that breaks a unique constraint is
    skipped (as ``bulk_create(ignore_conflicts=True)``); otherwise the IntegrityError is raised
    and, in a transaction, nothing of the failed statement is kept. With ``returning_pks``
    the new primary keys come back in the order of ``rows`` (``RETURNING``, as
    ``bulk_create`` relies on), and instances get theirs.
    """
    if not rows:
        return []
    if returning_pks and ignore_conflicts:
        raise ValueError("a skipped row has no primary key to return")
    ops = connection.ops
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    columns = [_Column.of(f) for f in fields]
    on_conflict = OnConflict.IGNORE if ignore_conflicts else None
    head = (
        f"{ops.insert_statement(on_conflict=on_conflict)} {ops.quote_name(model._meta.db_table)} "
        f"({', '.join(ops.quote_name(f.column) for f in fields)}) VALUES "
    )
    tail = ops.on_conflict_suffix_sql(fields, on_conflict, [], []) or ""
    if returning_pks:
        tail += f" RETURNING {ops.quote_name(model._meta.pk.column)}"
    row_sql = "(" + ", ".join(["%s"] * len(fields)) + ")"
    batch_size = max(1, min(batch_size, _max_params() // len(fields)))
    pks: list[Any] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            params: list[Any] = []
            for row in batch:
                values = row.__dict__ if isinstance(row, models.Model) else row
                params += [column.value(values) for column in columns]
            cursor.execute(f"{head}{', '.join([row_sql] * len(batch))} {tail}", params)
            if returning_pks:
                pks += [pk for (pk,) in cursor.fetchall()]
    if returning_pks:
        for row, pk in zip(rows, pks, strict=True):
            if isinstance(row, models.Model):
                row.pk = pk
                row._state.adding = False
                row._state.db = connection.alias
    return pks


class _Column:
    """How one field's value goes into the statement."""

    def __init__(
        self,
        attname: str,
        default: Any,
        adapt: Callable[[Any], Any] | None,
        *,
        repeats: bool = False,
    ):
        self.attname = attname
        self.default = default
        self.adapt = adapt
        # Dates and times repeat from row to row (a batch planned or imported at one instant,
        # a backlog due at one opening): the last one adapted is kept.
        self.repeats = repeats
        self.last: tuple[Any, Any] = (None, None)

    @classmethod
    def of(cls, field: models.Field[Any, Any]) -> _Column:
        ops = connection.ops
        adapt: Callable[[Any], Any] | None
        repeats = False
        if isinstance(field, models.DateTimeField):
            adapt, repeats = ops.adapt_datetimefield_value, True
        elif isinstance(field, models.DateField):
            adapt, repeats = ops.adapt_datefield_value, True
        elif isinstance(field, _AS_IS) and (
            not isinstance(field, models.ForeignKey)
            or isinstance(field.target_field, models.IntegerField)
        ):
            adapt = None
        else:

            def adapt(value: Any) -> Any:
                return field.get_db_prep_save(value, connection)

        column = cls(field.attname, field.get_default(), adapt, repeats=repeats)
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            column.attname = ""  # never taken from the row
            column.default = timezone.now()
        return column

    def value(self, values: Mapping[str, Any]) -> Any:
        value = values.get(self.attname, self.default) if self.attname else self.default
        if self.adapt is None or value is None:
            return value
        if not self.repeats:
            return self.adapt(value)
        last, adapted = self.last
        # Equal and of the same type: a date is never taken for the datetime it equals.
        if value is last or (type(value) is type(last) and value == last):
            return adapted
        adapted = self.adapt(value)
        self.last = (value, adapted)
        return adapted


def _max_params() -> int:
    """How many parameters one statement may carry on this connection."""
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        return int(connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
    return 65_535  # PostgreSQL's protocol: a 16-bit count
