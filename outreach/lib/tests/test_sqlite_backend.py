"""lib.sqlite: the SQLite backend rewrites statements and reads datetimes as Django's does."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.backends.sqlite3 import base as django_sqlite
from hypothesis import given
from hypothesis import strategies as st

from outreach.campaigns.models import Lead
from outreach.lib.sqlite import base

STATEMENTS = [
    "SELECT 1",
    "SELECT * FROM t WHERE a = %s AND b IN (%s, %s)",
    "SELECT * FROM t WHERE name LIKE 'x%%' AND a = %s",
    "INSERT INTO t (a, b) VALUES " + ", ".join(["(%s, %s)"] * 2000),  # noqa: S608
]


def cursors() -> tuple[Any, base.SQLiteCursorWrapper]:
    """Django's cursor (its stubs do not know ``convert_query``) and this backend's."""
    db = sqlite3.connect(":memory:")
    return (
        db.cursor(factory=django_sqlite.SQLiteCursorWrapper),
        db.cursor(factory=base.SQLiteCursorWrapper),
    )


@pytest.mark.parametrize("statement", STATEMENTS)
def test_a_statement_is_rewritten_as_djangos_cursor_rewrites_it(statement: str) -> None:
    django_cursor, cursor = cursors()
    expected = django_cursor.convert_query(statement)
    # Twice: the second is the kept rewriting.
    assert cursor.convert_query(statement) == expected
    assert cursor.convert_query(statement) == expected


@given(st.text(alphabet="%s?ab ()'", max_size=40))
def test_any_text_is_rewritten_as_djangos_cursor_rewrites_it(statement: str) -> None:
    django_cursor, cursor = cursors()
    assert cursor.convert_query(statement) == django_cursor.convert_query(statement)


def test_named_parameters_are_rewritten_as_django_does() -> None:
    django_cursor, cursor = cursors()
    statement = "SELECT * FROM t WHERE a = %(a)s AND b = %(b)s"
    names = ["a", "b"]
    assert cursor.convert_query(statement, param_names=names) == django_cursor.convert_query(
        statement, param_names=names
    )


def test_statements_run_through_the_backend_cursor() -> None:
    _, cursor = cursors()
    cursor.execute("CREATE TABLE t (a INTEGER, b TEXT)")
    cursor.executemany("INSERT INTO t VALUES (%s, %s)", [(1, "x%"), (2, "y")])
    cursor.execute("SELECT a FROM t WHERE b LIKE 'x%%' AND a = %s", [1])
    assert cursor.fetchall() == [(1,)]


@pytest.mark.django_db
def test_datetimes_read_back_aware_and_equal() -> None:
    """A datetime read through the ORM is the one written, in UTC, on either database; on
    SQLite through this backend's converter."""
    if connection.vendor == "sqlite":
        assert isinstance(connections["default"], base.DatabaseWrapper)
    written = datetime(2026, 3, 4, 12, 0, 30, 123456, tzinfo=UTC) + timedelta(hours=1)
    lead = Lead.objects.create(
        email="a@company.example", email_domain="company.example", created_at=written
    )
    [(read, none)] = Lead.objects.filter(pk=lead.pk).values_list("created_at", "interested_at")
    assert read == written
    assert read.utcoffset() == timedelta(0)
    assert none is None


def test_the_converter_gives_a_naive_value_the_connections_zone() -> None:
    if connection.vendor != "sqlite":
        pytest.skip("the SQLite backend's converter")
    ops = base.DatabaseOperations(connection=connection)
    naive = datetime(2026, 3, 4, 12, 0, 30, 5)
    assert ops.convert_datetimefield_value(naive, None, connection) == naive.replace(tzinfo=UTC)
    assert ops.convert_datetimefield_value("2026-03-04 12:00:30.000005", None, connection) == (
        naive.replace(tzinfo=UTC)
    )
    assert ops.convert_datetimefield_value(None, None, connection) is None


def test_without_use_tz_the_converter_leaves_a_value_naive(settings: Any) -> None:
    """The zone comes from the connection, which Django drops when USE_TZ changes."""
    if connection.vendor != "sqlite":
        pytest.skip("the SQLite backend's converter")
    naive = datetime(2026, 3, 4, 12, 0, 30, 5)
    # An operations object of another connection, as a reader kept from another thread has.
    other = connections.create_connection(DEFAULT_DB_ALIAS)
    assert other.timezone == UTC
    settings.USE_TZ = False
    ops = base.DatabaseOperations(connection=other)
    read = ops.convert_datetimefield_value(naive, None, connection)
    assert read == naive and read is not None and read.tzinfo is None
    settings.USE_TZ = True
    assert ops.convert_datetimefield_value(naive, None, connection) == naive.replace(tzinfo=UTC)
