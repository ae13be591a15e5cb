"""Statements of the send path written as SQL, the same on SQLite and PostgreSQL.

A batch of a few hundred messages is read and recorded with a handful of statements; built by
the ORM, each costs more in Python than the database spends running it. Two things make them
cheap:

- a list of ids is one parameter on PostgreSQL (``id = ANY(%s)``): psycopg parses, in Python,
  every statement with more than 50 parameters each time it runs (its statement cache skips
  them), which cost more than the statement itself for an ``IN`` of 200 ids; SQLite takes the
  plain ``IN (...)``, which its driver hands over as it is;
- the statement text is put together once per shape, from the models' own table and column
  names (no ``db_column`` is hand-written here), with every value a parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Lookup, Model
from django.db.models.sql.compiler import SQLCompiler


def table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def column(model: type[Model], name: str) -> str:
    """The quoted column of ``model``'s field ``name`` (``"pk"`` for the primary key)."""
    field = model._meta.pk if name == "pk" else model._meta.get_field(name)
    assert isinstance(field, Field) and field.column
    return connection.ops.quote_name(field.column)


def any_of(expression: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
    """``expression`` is one of ``values``: the condition and its parameters."""
    if connection.vendor == "postgresql":
        return f"{expression} = ANY(%s)", [list(values)]
    if not values:
        return "1 = 0", []
    return f"{expression} IN ({', '.join(['%s'] * len(values))})", list(values)


def pick(
    key: str, values: dict[int, str], default: str, *, every_row: bool = True
) -> tuple[str, list[Any]]:
    """An expression worth ``values[key]`` for the rows whose ``key`` is in ``values``, else
    ``default`` (a column): ``CASE`` on SQLite, an array lookup on PostgreSQL (two
    parameters however many rows). ``every_row``: the statement changes only rows of
    ``values``."""
    if every_row and len(set(values.values())) == 1:
        # One value for all (an SMTP server that names no queue id): no lookup per row.
        return "%s", [next(iter(values.values()))]
    if connection.vendor == "postgresql":
        return (
            f"COALESCE((%s::text[])[array_position(%s::bigint[], {key})], {default})",
            [list(values.values()), list(values)],
        )
    branches = " ".join(["WHEN %s THEN %s"] * len(values))
    return f"CASE {key} {branches} ELSE {default} END", [x for pair in values.items() for x in pair]


def when(value: datetime | None) -> Any:
    """A datetime as the database takes it (the ORM's own conversion)."""
    return connection.ops.adapt_datetimefield_value(value)


def execute(sql: str, params: Sequence[Any]) -> int:
    """Run one statement; returns the rows it changed."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


def insert(model: type[Model], fields: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[int]:
    """INSERT ``rows`` (values of ``fields`` in the database's terms, :func:`when` for a
    datetime) into ``model``'s table; returns their new primary keys, in the order of ``rows``.

    PostgreSQL takes one array per column (``unnest``: as many parameters as columns, however
    many rows); SQLite a ``VALUES`` row per row, in chunks within its limit of parameters.
    Either way the keys of one statement come from the table's sequence in the order the rows
    go in, so the keys it returns, sorted, are the rows' own: neither database promises the
    order in which ``RETURNING`` lists them.
    """
    if not rows:
        return []
    names = ", ".join(column(model, name) for name in fields)
    # Identifiers come from the model; every value is a parameter.
    head = f"INSERT INTO {table(model)} ({names}) "
    returning = f" RETURNING {column(model, 'pk')}"
    if connection.vendor == "postgresql":
        types = [_array_type(model, name) for name in fields]
        arrays = ", ".join(f"%s::{kind}" for kind in types)
        aliases = ", ".join(f"c{i}" for i in range(len(fields)))
        statement = (
            f"{head}SELECT {aliases} FROM unnest({arrays}) WITH ORDINALITY "  # noqa: S608
            f"AS u({aliases}, n) ORDER BY n{returning}"
        )
        values = [[row[i] for row in rows] for i in range(len(fields))]
        return sorted(pk for (pk,) in fetch(statement, values))
    per_row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    chunk = max(1, int(connection.features.max_query_params or 999) // len(fields))
    keys: list[int] = []
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        statement = f"{head}VALUES {', '.join([per_row] * len(part))}{returning}"
        keys += sorted(pk for (pk,) in fetch(statement, [v for row in part for v in row]))
    return keys


def _array_type(model: type[Model], name: str) -> str:
    field = model._meta.get_field(name)
    assert isinstance(field, Field)
    kind = field.db_type(connection)
    assert kind is not None
    return f"{kind}[]"


def fetch(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


class AnyOf(Lookup):  # type: ignore[type-arg]
    """``filter(AnyOf(F("pk"), ids))``: :func:`any_of` for ORM queries, whose ``pk__in`` is
    one parameter per id."""

    lookup_name = "any_of"

    def as_sql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper
    ) -> tuple[str, list[Any]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        values = list(self.rhs)
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(%s)", [*lhs_params, values]
        if not values:
            return "1 = 0", list(lhs_params)
        return f"{lhs} IN ({', '.join(['%s'] * len(values))})", [*lhs_params, *values]

    def get_prep_lookup(self) -> Any:
        return [int(v) for v in self.rhs]
