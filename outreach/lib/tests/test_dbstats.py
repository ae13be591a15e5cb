"""Planner statistics: ANALYZE on SQLite once an interval per process, nothing on PostgreSQL."""

from __future__ import annotations

import pytest
from django.db import connection

from outreach.lib import dbstats
from outreach.testing import make_pool

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dbstats, "_last", None)


def _analyzed_tables() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'")
        if cursor.fetchone() is None:
            return set()
        cursor.execute("SELECT DISTINCT tbl FROM sqlite_stat1")
        return {row[0] for row in cursor.fetchall()}


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite keeps no statistics itself")
def test_it_analyzes_sqlite_once_an_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    make_pool(2, 2)
    clock = [1000.0]
    monkeypatch.setattr(dbstats.time, "monotonic", lambda: clock[0])

    assert dbstats.refresh(every_seconds=3600) is True
    assert "pool_mailbox" in _analyzed_tables()
    clock[0] += 3599
    assert dbstats.refresh(every_seconds=3600) is False
    clock[0] += 2
    assert dbstats.refresh(every_seconds=3600) is True


@pytest.mark.skipif(connection.vendor == "sqlite", reason="PostgreSQL: autovacuum analyzes")
def test_it_leaves_postgresql_to_autovacuum() -> None:
    assert dbstats.refresh() is False
