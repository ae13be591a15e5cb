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

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, Field, Lookup, Model
from django.db.models.base import ModelState
from django.db.models.sql.compiler import SQLCompiler

_M = TypeVar("_M", bound=Model)


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


def fetch(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def load(
    model: type[_M], pks: Iterable[int | None], *, follow: Sequence[str] = ()
) -> dict[int, _M]:
    """``model``'s rows of ``pks`` by pk, each with the rows of its foreign keys ``follow``
    (a path such as ``"enrollment__lead"``, as ``select_related`` takes) attached: the
    instances ``select_related`` gives, built for a fraction of its cost.

    The rows are read as values (one query, the fields' own conversions from the database
    applied, as for any model instance) and each instance is filled in directly: the ORM's
    ``Model.__init__`` runs every foreign key through its descriptor, which checks the cache
    of related objects field by field; with a few hundred messages, their enrollments, leads,
    mailboxes and domains per batch that was most of loading them. No model of the send path
    sets anything up in ``__init__`` or listens to ``pre_init``/``post_init``.
    """
    wanted = sorted({pk for pk in pks if pk is not None})
    if not wanted:
        return {}
    parts = [_Part("", "", model, "")]
    for path in follow:
        parent: _Part = parts[0]
        for name in path.split("__"):
            part = next((p for p in parts if p.prefix == f"{parent.prefix}{name}__"), None)
            if part is None:
                related = parent.model._meta.get_field(name).related_model
                assert isinstance(related, type) and issubclass(related, Model)
                part = _Part(parent.prefix, name, related, f"{parent.prefix}{name}__")
                parts.append(part)
            parent = part
    paths = [f"{part.prefix}{name}" for part in parts for name in part.attnames]
    alias = connection.alias
    loaded: dict[int, _M] = {}
    for row in model._default_manager.filter(AnyOf(F("pk"), wanted)).values_list(*paths):
        built: dict[str, Model | None] = {}
        start = 0
        for part in parts:
            values = row[start : start + len(part.attnames)]
            start += len(part.attnames)
            obj = None if values[part.pk_index] is None else _instance(part, values, alias)
            built[part.prefix] = obj
            holder = built.get(part.parent) if part.prefix else None
            if holder is not None:
                holder._state.fields_cache[part.name] = obj
        main = built[""]
        assert isinstance(main, model)
        loaded[main.pk] = main
    return loaded


class _Part:
    """One model of :func:`load`'s rows: reached through field ``name`` of the model whose
    columns are prefixed ``parent`` (the loaded model: no name), its own prefixed ``prefix``."""

    def __init__(self, parent: str, name: str, model: type[Model], prefix: str) -> None:
        self.parent, self.name, self.model, self.prefix = parent, name, model, prefix
        self.attnames = [f.attname for f in model._meta.concrete_fields]
        pk = model._meta.pk
        assert pk is not None
        self.pk_index = self.attnames.index(pk.attname)


def _instance(part: _Part, values: Sequence[Any], alias: str) -> Model:
    return build(part.model, part.attnames, values, alias)


def build(model: type[_M], attnames: Sequence[str], values: Sequence[Any], alias: str) -> _M:
    """What ``model.from_db(alias, attnames, values)`` returns, without ``Model.__init__``:
    the fields of ``attnames`` set (values as read from the database), any other field
    deferred (read from the database when first used). No model built so sets anything up in
    ``__init__`` (test_no_model_that_load_builds_sets_anything_up_at_init)."""
    obj = model.__new__(model)
    obj.__dict__.update(zip(attnames, values, strict=True))
    state = obj._state = ModelState()
    state.adding, state.db = False, alias
    return obj


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
