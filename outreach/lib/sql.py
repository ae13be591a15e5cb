"""Statements written as SQL, the same on SQLite and PostgreSQL, for the paths that run per
batch or per message (the send path, the events collector, the checks after each batch).

A batch of a few hundred messages is read and recorded with a handful of statements; built by
the ORM, each costs more in Python than the database spends running it (and a batch of a few
messages costs mostly that). Three things make them cheap:

- a list of ids is one parameter on PostgreSQL (``id = ANY(%s)``): psycopg parses, in Python,
  every statement with more than 50 parameters each time it runs (its statement cache skips
  them), which cost more than the statement itself for an ``IN`` of 200 ids; SQLite takes the
  plain ``IN (...)``, which its driver hands over as it is;
- the statement text is put together once per shape, from the models' own table and column
  names (no ``db_column`` is hand-written here), with every value a parameter;
- rows are read into model instances (:func:`load`) without ``Model.__init__``, the fields'
  own conversions from the database applied.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any, TypeVar

from django.db import connection
from django.db.models import Field, Model
from django.db.models.base import ModelState

_M = TypeVar("_M", bound=Model)


def table(model: type[Model]) -> str:
    return _quoted(model._meta.db_table, connection.vendor)


def column(model: type[Model], name: str) -> str:
    """The quoted column of ``model``'s field ``name`` (``"pk"`` for the primary key)."""
    return _column(model, name, connection.vendor)


@functools.cache
def _column(model: type[Model], name: str, vendor: str) -> str:
    # Kept per database kind: a statement of a batch names a few dozen columns.
    field = model._meta.pk if name == "pk" else model._meta.get_field(name)
    assert isinstance(field, Field) and field.column
    return _quoted(field.column, vendor)


@functools.cache
def _quoted(name: str, vendor: str) -> str:
    return connection.ops.quote_name(name)


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


def day(value: date) -> Any:
    """A date as the database takes it (the ORM's own conversion)."""
    return connection.ops.adapt_datefield_value(value)


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

    One statement, written once per model and paths (:class:`_Reader`), the fields' own
    conversions from the database applied to each value, as for any model instance; each
    instance is filled in directly: the ORM's ``Model.__init__`` runs every foreign key
    through its descriptor, which checks the cache of related objects field by field, and
    the ORM compiles the query again for every batch. No model of the send path sets
    anything up in ``__init__`` or listens to ``pre_init``/``post_init``.
    """
    wanted = sorted({pk for pk in pks if pk is not None})
    if not wanted:
        return {}
    reader = _reader(model, tuple(follow), connection.vendor)
    return reader.read(*any_of(reader.key, wanted))  # type: ignore[return-value]


def load_every(model: type[_M], *, follow: Sequence[str] = ()) -> dict[int, _M]:
    """Every row of ``model`` by pk, as :func:`load` builds them: for the small tables a
    batch reads whole (the accounts' circuits and provider health, a row per account)."""
    return _reader(model, tuple(follow), connection.vendor).read("1 = 1", [])  # type: ignore[return-value]


@functools.cache
def _reader(model: type[Model], follow: tuple[str, ...], vendor: str) -> _Reader:
    return _Reader(model, follow)


class _Reader:
    """:func:`load`'s statement for one model and its paths, and how to turn each row into
    instances: the columns of every model reached, each model's table joined once, and the
    database converters of each column (the ones the ORM applies). The joins are
    ``select_related``'s: an inner join for a foreign key that cannot be null (a row whose
    key finds nothing, as a deferred constraint allows until its transaction commits, is
    left out), a ``LEFT JOIN`` from the first that can on (a null key gives no instance)."""

    def __init__(self, model: type[Model], follow: tuple[str, ...]) -> None:
        q = connection.ops.quote_name
        self.parts = [_Part("", "", model, "", "t0")]
        joins: list[str] = []
        for path in follow:
            parent = self.parts[0]
            for name in path.split("__"):
                prefix = f"{parent.prefix}{name}__"
                part = next((p for p in self.parts if p.prefix == prefix), None)
                if part is None:
                    field = parent.model._meta.get_field(name)
                    related = field.related_model
                    assert isinstance(field, Field) and field.column
                    assert isinstance(related, type) and issubclass(related, Model)
                    part = _Part(parent.prefix, name, related, prefix, f"t{len(self.parts)}")
                    part.inner = parent.inner and not field.null
                    self.parts.append(part)
                    joins.append(
                        f"{'' if part.inner else 'LEFT '}JOIN {q(related._meta.db_table)} "
                        f"{part.alias} ON "
                        f"{part.alias}.{q(part.pk_column)} = {parent.alias}.{q(field.column)}"
                    )
                parent = part
        columns = [f"{p.alias}.{q(column)}" for p in self.parts for column in p.columns]
        self.select = (
            f"SELECT {', '.join(columns)} FROM {q(model._meta.db_table)} t0 "  # noqa: S608
            f"{' '.join(joins)} WHERE "
        )
        self.key = f"t0.{q(self.parts[0].pk_column)}"
        self.converters = [
            (index, converter, column)
            for index, column in enumerate(c for p in self.parts for c in p.cols)
            for converter in (
                connection.ops.get_db_converters(column) + column.get_db_converters(connection)
            )
        ]

    def read(self, condition: str, params: Sequence[Any]) -> dict[int, Model]:
        """The rows of the loaded model meeting ``condition`` (on its table, ``t0``)."""
        db = connection
        alias = db.alias
        loaded: dict[int, Model] = {}
        converters = self.converters
        parts = self.parts
        for fetched in fetch(self.select + condition, params):
            row = list(fetched)
            for index, converter, column in converters:
                row[index] = converter(row[index], column, db)
            built: dict[str, Model | None] = {}
            start = 0
            for part in parts:
                end = start + len(part.attnames)
                values = row[start:end]
                start = end
                obj = (
                    None
                    if values[part.pk_index] is None
                    else build(part.model, part.attnames, values, alias)
                )
                built[part.prefix] = obj
                holder = built.get(part.parent) if part.prefix else None
                if holder is not None:
                    holder._state.fields_cache[part.name] = obj
            main = built[""]
            assert main is not None
            loaded[main.pk] = main
        return loaded


class _Part:
    """One model of :func:`load`'s rows: reached through field ``name`` of the model whose
    columns are prefixed ``parent`` (the loaded model: no name), its own prefixed ``prefix``,
    its table named ``alias`` in the statement."""

    def __init__(self, parent: str, name: str, model: type[Model], prefix: str, alias: str) -> None:
        self.parent, self.name, self.model, self.prefix = parent, name, model, prefix
        fields = model._meta.concrete_fields
        self.attnames = [f.attname for f in fields]
        self.columns = [f.column for f in fields]
        self.cols = [f.get_col(alias) for f in fields]
        self.alias = alias
        pk = model._meta.pk
        assert pk is not None and pk.column
        self.pk_index = self.attnames.index(pk.attname)
        self.pk_column = pk.column
        # Reached through foreign keys that cannot be null only (the loaded model: True).
        self.inner = True


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


def new(model: type[_M], **values: Any) -> _M:
    """An unsaved instance, as ``model(**values)`` builds it from every concrete field's
    attname but the primary key, without ``Model.__init__`` (for rows made by the hundred
    per batch: its ``pre_init``/``post_init`` signals and its pass over every field cost
    more than the rest of building them). No field default is applied: ``values`` names
    them all (an assertion says which are missing)."""
    pk_attname, wanted = _unsaved_fields(model)
    assert values.keys() == wanted, f"{model.__name__}: give {sorted(wanted ^ values.keys())}"
    obj = model.__new__(model)
    obj.__dict__[pk_attname] = None
    obj.__dict__.update(values)
    obj._state = ModelState()
    return obj


@functools.cache
def _unsaved_fields(model: type[Model]) -> tuple[str, frozenset[str]]:
    """The primary key's attname, and the attnames :func:`new` takes."""
    pk = model._meta.pk
    assert pk is not None
    return pk.attname, frozenset(f.attname for f in model._meta.concrete_fields) - {pk.attname}
