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


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite keeps no statistics itself")
def test_sampled_statistics_still_lead_the_routing_read_to_its_index() -> None:
    # A backlog larger than the sample: ANALYZE reads part of each index, and the planner
    # still reads due messages through the due index, not a sort of the table.
    from datetime import UTC, datetime

    from outreach.campaigns.models import Message
    from outreach.lib import bulk
    from outreach.testing import make_campaign

    make_pool(1, 1)
    campaign = make_campaign()
    when = datetime(2026, 3, 4, 12, tzinfo=UTC)
    rows = [
        {
            "kind": Message.Kind.CAMPAIGN,
            "campaign_id": campaign.pk,
            "to_email": f"p{i}@company{i % 50}.example",
            "to_domain": f"company{i % 50}.example",
            "state": Message.State.SENT if i % 3 else Message.State.SCHEDULED,
            "not_before": when,
        }
        for i in range(5 * dbstats.ANALYSIS_ROWS)
    ]
    bulk.insert(Message, rows)
    assert dbstats.refresh(every_seconds=0) is True
    due = Message.objects.filter(
        state=Message.State.SCHEDULED, not_before__lte=when, campaign_id=campaign.pk
    ).order_by("not_before", "pk")[:200]
    sql, params = due.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        plan = " ".join(str(row[-1]) for row in cursor.fetchall())
    assert "message_due_idx" in plan and "TEMP B-TREE" not in plan
