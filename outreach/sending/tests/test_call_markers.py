"""Only a message whose provider call began can be in doubt.

A worker commits that a call begins (with the acceptance of its connection's previous call)
before each provider call. When its lease runs out (the worker was killed), its messages are
settled by what it wrote: accepted → ``sent``; never began → back to routing, units given
back; began with no answer → ``unknown``, the only one in doubt.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from outreach.campaigns.models import Message
from outreach.lib import clock
from outreach.pool.models import Mailbox
from outreach.scheduler.recovery import recover_leases
from outreach.scheduler.routing_pass import claim_due
from outreach.scheduler.tests.conftest import NOON, schedule, used
from outreach.sending.deliver import (
    Prepared,
    ProviderCache,
    begin_call,
    begin_call_statement,
    deliver,
    load_taken,
    prepare_call,
)
from outreach.sending.finish import finish_batch
from outreach.sending.models import SendAttempt
from outreach.sending.recovery import expire_sending
from outreach.sending.take import take_batch
from outreach.testing import make_campaign, make_pool

pytestmark = pytest.mark.django_db
DAY = NOON.date()
NO_PACING = {"pacing_gap_seconds": 0, "pacing_jitter_seconds": 0}
# After the sending lease (five minutes) of a worker that died.
LATER = NOON + timedelta(minutes=10)


@pytest.fixture(autouse=True)
def _outbox(settings: object, tmp_path: Path) -> Path:
    clock.set_now(NOON)
    settings.OUTREACH_OUTBOX_DIR = str(tmp_path / "outbox")  # type: ignore[attr-defined]
    settings.OUTREACH_BASE_URL = "https://outreach.example.com"  # type: ignore[attr-defined]
    return tmp_path / "outbox"


def _taken(count: int) -> list[Prepared]:
    """``count`` messages claimed by the scheduler and taken by a worker, built for sending."""
    make_pool(1, 1, limits=NO_PACING)
    schedule(make_campaign(), count)
    assert claim_due(NOON).claimed == count
    taken = take_batch("doomed-worker", NOON, count)
    prepared = [prepare_call(message, t) for message, t in load_taken(taken)]
    assert all(isinstance(p, Prepared) for p in prepared)
    return prepared  # type: ignore[return-value]


def _sent_files(outbox: Path) -> int:
    return len(list(outbox.glob("*.eml"))) if outbox.exists() else 0


def test_it_sends_a_message_whose_call_never_began_back_to_routing(_outbox: Path) -> None:
    _taken(3)  # then the worker is killed before its first call

    report = recover_leases(LATER)

    assert report.unknown == 0
    assert report.released == 3
    assert set(Message.objects.values_list("state", flat=True)) == {Message.State.SCHEDULED}
    assert not Message.objects.filter(message_id_header__isnull=False).exists()
    assert used("global", "*", DAY) == 0  # nothing reached a provider: the units go back
    assert _sent_files(_outbox) == 0


def test_it_finishes_as_sent_what_the_provider_accepted_before_the_worker_died(
    _outbox: Path,
) -> None:
    first, second, third = _taken(3)
    providers = ProviderCache()
    assert deliver(first, providers=providers).result is not None
    # The second call begins (writing the first one's acceptance), then the worker is killed.
    assert begin_call(second.message, providers)

    clock.set_now(LATER)
    report = recover_leases(LATER)

    states = dict(Message.objects.values_list("pk", "state"))
    assert states[first.message.pk] == Message.State.SENT
    assert states[second.message.pk] == Message.State.UNKNOWN
    assert states[third.message.pk] == Message.State.SCHEDULED
    assert report.unknown == 1
    # Finished as its worker would have: an attempt recorded, the mailbox's last send set.
    attempt = SendAttempt.objects.get()
    assert attempt.message_id == first.message.pk and attempt.outcome == "sent"
    assert Mailbox.objects.get().last_sent_at == LATER
    # Units: the accepted and the unknown keep theirs, the one never called gives it back.
    assert used("global", "*", DAY) == 2
    assert _sent_files(_outbox) == 1


def test_it_never_makes_a_call_the_recovery_took_back(_outbox: Path) -> None:
    (stalled,) = _taken(1)
    # The worker stalls past its lease; the recovery sends the message back to routing.
    recover_leases(LATER)

    called = deliver(stalled, providers=ProviderCache())

    assert called.taken_back and called.result is None and called.error is None
    assert _sent_files(_outbox) == 0
    assert finish_batch([called]) == [""]
    assert Message.objects.get().state == Message.State.SCHEDULED
    assert not SendAttempt.objects.exists()


def test_it_sends_a_retry_whose_call_never_began_back_to_retry(_outbox: Path) -> None:
    make_pool(1, 1, limits=NO_PACING)
    schedule(make_campaign(), 1)
    claim_due(NOON)
    # A first attempt met a 451 and is due again; a worker takes it and is killed.
    Message.objects.update(state=Message.State.RETRY, attempts=1, not_before=NOON)
    assert len(take_batch("doomed-worker", NOON, 1)) == 1

    assert recover_leases(LATER).unknown == 0

    message = Message.objects.get()
    assert message.state == Message.State.RETRY and message.not_before == LATER
    assert message.mailbox_id is not None
    assert used("global", "*", DAY) == 1  # a provider was called for it before


def test_it_keeps_a_message_whose_call_began_in_doubt(_outbox: Path) -> None:
    (hung,) = _taken(1)
    assert begin_call(hung.message, ProviderCache())  # the call hangs, the worker is killed

    assert recover_leases(LATER).unknown == 1

    assert Message.objects.get().state == Message.State.UNKNOWN
    # A second recovery changes nothing, and a call that began never begins twice.
    assert recover_leases(LATER + timedelta(minutes=1)).unknown == 0
    assert not begin_call(hung.message, ProviderCache())


def test_a_worker_alone_settles_what_its_dead_peer_left(_outbox: Path) -> None:
    # A worker-only deployment: no scheduler recovery, the worker's tick expires leases.
    hung, never_called = _taken(2)
    Message.objects.filter(pk=never_called.message.pk).update(
        pinned_mailbox_id=never_called.message.mailbox_id  # a follow-up, kept in its thread
    )
    assert begin_call(hung.message, ProviderCache())  # the call hangs, the worker is killed

    assert expire_sending(NOON + timedelta(minutes=4)) == 0  # the lease still runs
    assert expire_sending(LATER) == 1

    message = Message.objects.get(pk=hung.message.pk)
    assert message.state == Message.State.UNKNOWN
    assert "not resent without reconciliation" in message.last_error
    follow_up = Message.objects.get(pk=never_called.message.pk)
    # An expired claim for the scheduler's recovery, still named as its thread knows it.
    assert follow_up.state == Message.State.CLAIMED
    assert follow_up.lease_expires_at is not None and follow_up.lease_expires_at < LATER
    assert follow_up.message_id_header == never_called.message.message_id_header


def test_the_call_marker_reads_its_two_rows_by_primary_key() -> None:
    # Statistics as a deployment has them most of the time: no message seen ``sending``.
    # A plan that looks messages up by state reads every message in flight (and on
    # PostgreSQL every entry earlier calls left in the state index) for each call.
    prepared = _taken(40)
    first, second = prepared[0].message, prepared[1].message
    Message.objects.filter(pk__in=[p.message.pk for p in prepared]).update(
        state=Message.State.SCHEDULED
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    Message.objects.filter(pk__in=[p.message.pk for p in prepared]).update(
        state=Message.State.SENDING
    )
    accepted = (first.pk, first.claimed_by, NOON, "queued as 1")
    statement, params = begin_call_statement(connection, second, accepted)

    connection.ensure_connection()
    cursor = connection.connection.cursor()
    if connection.vendor == "postgresql":
        # A table of a few dozen rows is read whole; the choice that counts is the index.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN (FORMAT JSON) {statement}", params)
        scans = list(_scans(cursor.fetchone()[0][0]["Plan"]))
        # An index scan or a bitmap one, by the primary key only.
        assert {index for _, index in scans if index} == {f"{Message._meta.db_table}_pkey"}
        assert "Seq Scan" not in {node for node, _ in scans}, scans
    else:
        cursor.execute(f"EXPLAIN QUERY PLAN {statement}", params)
        details = [row[-1] for row in cursor.fetchall()]
        assert details == [f"SEARCH {Message._meta.db_table} USING INTEGER PRIMARY KEY (rowid=?)"]
    cursor.close()


def _scans(plan: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """The (node type, index) of each scan in a PostgreSQL JSON plan."""
    if plan["Node Type"].endswith("Scan"):
        yield plan["Node Type"], plan.get("Index Name", "")
    for child in plan.get("Plans", []):
        yield from _scans(child)
