"""At-most-once under SIGKILL: worker processes killed at random moments while sending.

On PostgreSQL (several processes, one committed database): 2,000 claimed messages over 100
mailboxes, two worker processes of four connections sharing the work, one of them killed with
SIGKILL at a random moment and replaced, ten times, then a last one that finishes. No message
may arrive twice, no mailbox receives more than its cap, and only a message whose provider
call began can be in doubt: at most one per connection per kill ends ``unknown``; the others
end ``sent``, or back in routing if their call never began (and then never arrived). Then
the mailboxes' Sent folders (a real dovecot, where the SMTP server files what it took) are
searched: reconciliation leaves nothing in doubt, marks sent only what arrived and sends back
to routing only what did not.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from outreach.campaigns.models import Message
from outreach.lib import clock
from outreach.pool.models import Mailbox, ProviderAccount
from outreach.providers.smtp.testserver import SmtpTestServer
from outreach.scheduler.recovery import recover_leases
from outreach.sending.take import SendPolicy
from outreach.sending.tests.helpers import claimed_campaign_messages
from outreach.testing import child_env, make_pool

MESSAGES = 2000
MAILBOX_CAP = 20
KILLS = 10
CONCURRENCY = 4


_spawned: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def _reap_workers() -> Iterator[None]:
    """A failing assertion must not leave a worker process running after the test."""
    yield
    while _spawned:
        proc = _spawned.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def _worker(env: dict[str, str], *extra: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "outreach",
            "worker",
            "--concurrency",
            str(CONCURRENCY),
            "--idle",
            "0.1",
            *extra,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _spawned.append(proc)
    return proc


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_never_sends_a_message_twice_when_workers_are_killed(
    sink: SmtpTestServer, on_postgres: bool
) -> None:
    if not on_postgres:
        pytest.skip("several worker processes on one database: PostgreSQL")
    account = ProviderAccount.objects.create(
        name="sink",
        kind="smtp",
        settings={"host": "127.0.0.1", "port": sink.port, "security": "none", "timeout": 5},
    )
    make_pool(20, 5, provider=account, limits={"mailbox_daily_cap": MAILBOX_CAP})
    messages = claimed_campaign_messages(MESSAGES, provider=account, steps=1)
    env = child_env()
    rng = random.Random(20260302)

    # Two workers share the database throughout; one of them is killed at a random moment
    # and replaced, ten times.
    workers = [_worker(env), _worker(env)]
    arrived_at_kills = []
    for _ in range(KILLS):
        time.sleep(rng.uniform(0.8, 2.2))  # a fresh worker needs about a second to start
        arrived_at_kills.append(len(sink.received))
        victim = workers.pop(rng.randrange(len(workers)))
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        workers.append(_worker(env))
    for survivor in workers:
        # SIGTERM finishes the batch in flight: no kill beyond the ten. (A worker still
        # starting up, before its loop and its handler, just ends: it took nothing.)
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(timeout=60) in (0, -signal.SIGTERM)
    last = _worker(env, "--once")
    _, stderr = last.communicate(timeout=120)
    assert last.returncode == 0, stderr.decode()[-2000:]

    # A killed worker's `sending` rows, once their lease has run out: the scheduler's
    # recovery settles them by what the worker wrote before each call. Each pass settles a
    # bounded number of rows, as the scheduler's does every tick: pass until one finds none.
    after_leases = clock.now() + timedelta(seconds=SendPolicy().sending_lease_seconds + 1)
    while (report := recover_leases(after_leases)).released or report.unknown:
        pass

    # The kills landed while messages were still going out, not after the work was done.
    assert arrived_at_kills[-1] < MESSAGES, arrived_at_kills
    tags = [int(r.message["X-Outreach-Message"]) for r in sink.received]
    assert len(tags) == len(set(tags)), "a message arrived twice"
    final = dict(Message.objects.filter(pk__in=[m.pk for m in messages]).values_list("pk", "state"))
    counts = collections.Counter(final.values())
    assert set(counts) <= {"sent", "unknown", "scheduled"}, counts
    print(f"after {KILLS} kills: {dict(counts)}")
    # In doubt: only a call that had begun, one per connection of a killed worker at most.
    assert counts["unknown"] <= KILLS * CONCURRENCY, counts
    sent = {pk for pk, state in final.items() if state == "sent"}
    assert sent <= set(tags)  # every `sent` message did arrive
    rerouted = {pk for pk, state in final.items() if state == "scheduled"}
    assert not rerouted & set(tags)  # what goes back to routing never went out
    assert set(tags) <= set(final)  # and nothing else did
    per_mailbox = collections.Counter(r.mail_from for r in sink.received)
    assert max(per_mailbox.values()) <= MAILBOX_CAP

    _reconcile_through_sent_folders(sink, final, arrived=set(tags))


def _reconcile_through_sent_folders(
    sink: SmtpTestServer, final: dict[int, str], arrived: set[int]
) -> None:
    """The SMTP server files what it took under each mailbox's Sent folder, as Google
    Workspace and Microsoft 365 do (only the mail of messages in doubt: no other is looked
    up); the reconciliation searches there."""
    from imap_tools import MailBoxUnencrypted

    from outreach.events.tests import dovecot
    from outreach.sending.reconcile import reconcile_due

    doubtful = {pk for pk, state in final.items() if state == "unknown"}
    if dovecot.available() or not doubtful:
        return
    addresses = sorted(Mailbox.objects.values_list("address", flat=True))
    server = dovecot.start(addresses)
    try:
        os.environ["OUTREACH_SECRET_CRASH_IMAP_PASSWORD"] = server.password
        for mailbox in Mailbox.objects.all():
            mailbox.settings = {
                **mailbox.settings,
                "imap_host": server.host,
                "imap_port": server.port,
                "imap_security": "plain",
                "imap_sent_folder": "Sent",
            }
            mailbox.secrets = {"imap_password": "env:OUTREACH_SECRET_CRASH_IMAP_PASSWORD"}
            mailbox.save(update_fields=["settings", "secrets"])
        filed = collections.defaultdict(list)
        for received in sink.received:
            if int(received.message["X-Outreach-Message"]) in doubtful:
                filed[received.mail_from].append(received.data)
        senders = Message.objects.filter(pk__in=doubtful).values_list("mailbox__address", flat=True)
        for address in set(senders):
            with MailBoxUnencrypted(server.host, server.port).login(
                address, server.password
            ) as client:
                client.folder.create("Sent")  # every Workspace/M365 mailbox has one
                for raw in filed[address]:
                    client.append(raw, "Sent")
        # After the grace: what is not in a Sent folder goes back to routing.
        reconcile_due(clock.now() + timedelta(hours=1), limit=len(doubtful))
    finally:
        server.stop()
        os.environ.pop("OUTREACH_SECRET_CRASH_IMAP_PASSWORD", None)
    settled = dict(Message.objects.filter(pk__in=doubtful).values_list("pk", "state"))
    print(f"reconciled {len(doubtful)} in doubt: {dict(collections.Counter(settled.values()))}")
    doubts = dict(Message.objects.filter(pk__in=doubtful).values_list("pk", "doubt"))
    assert set(settled.values()) <= {"sent", "scheduled"}, doubts  # nothing left in doubt
    assert {pk for pk, state in settled.items() if state == "sent"} <= arrived
    assert not {pk for pk, state in settled.items() if state == "scheduled"} & arrived


@pytest.mark.django_db(transaction=True)
def test_it_finishes_in_flight_sends_and_stops_on_sigterm(sink: SmtpTestServer) -> None:
    account = ProviderAccount.objects.create(
        name="sink",
        kind="smtp",
        settings={"host": "127.0.0.1", "port": sink.port, "security": "none", "timeout": 5},
    )
    messages = claimed_campaign_messages(200, provider=account, steps=1)
    worker = _worker(child_env())
    deadline = time.monotonic() + 60
    while not sink.received and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sink.received, "the worker sent nothing"

    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=60)

    assert worker.returncode == 0, stderr.decode()[-2000:]
    final = collections.Counter(
        Message.objects.filter(pk__in=[m.pk for m in messages]).values_list("state", flat=True)
    )
    assert set(final) <= {"sent", "claimed"}, final  # nothing left half-way in `sending`
    assert final["sent"] == len(sink.received)
