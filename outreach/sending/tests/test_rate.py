"""A provider account's own send rate (SES MaxSendRate), kept by every worker together: takes
reserve send slots on the account row, sends wait for their slot."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta
from itertools import pairwise

import pytest
from django.db import connection, transaction

from outreach.campaigns.models import Message
from outreach.lib import clock
from outreach.pool.models import Mailbox, ProviderAccount
from outreach.sending import deliver
from outreach.sending.take import SendPolicy, Taken, reserve_rate, take_batch
from outreach.sending.tests.helpers import claimed_campaign_messages
from outreach.testing import child_env, make_pool

pytestmark = pytest.mark.django_db

POLICY = SendPolicy(rate_horizon_seconds=2.0)
RESERVER = "outreach.sending.tests.rate_reserver"


@pytest.fixture(autouse=True)
def still_clock() -> None:
    # The engine clock stands still (released after each test): reserved instants are exact.
    clock.set_now(clock.now())


def _account(rate: float | None) -> ProviderAccount:
    return ProviderAccount.objects.create(name="ses-main", kind="sandbox", max_send_rate=rate)


def test_a_take_reserves_only_the_slots_the_rate_allows_within_the_horizon() -> None:
    account = _account(4.0)
    claimed_campaign_messages(20, provider=account)
    now = clock.now()

    taken = take_batch("w1", now, 100, POLICY)

    # 2 s at 4 messages/s: eight sends, a quarter of a second apart; the rest stay due.
    assert len(taken) == 8
    slots = sorted(t.send_at for t in taken if t.send_at is not None)
    assert len(slots) == 8
    assert [round(b - a, 6) for a, b in pairwise(slots)] == [0.25] * 7
    assert Message.objects.filter(state=Message.State.CLAIMED).count() == 12
    account.refresh_from_db()
    assert account.rate_slot_at == now + timedelta(seconds=2)

    # Another worker at the same moment finds the horizon reserved, and half a second later
    # it gets the two slots that have come within it, after the first worker's.
    assert take_batch("w2", now, 100, POLICY) == []
    later = take_batch("w2", now + timedelta(seconds=0.5), 100, POLICY)
    assert len(later) == 2
    account.refresh_from_db()
    assert account.rate_slot_at == now + timedelta(seconds=2.5)


def test_an_account_without_a_rate_is_taken_whole_and_sent_at_once() -> None:
    account = _account(None)
    claimed_campaign_messages(20, provider=account)

    taken = take_batch("w1", clock.now(), 100, POLICY)

    assert len(taken) == 20 and all(t.send_at is None for t in taken)
    account.refresh_from_db()
    assert account.rate_slot_at is None


def test_a_slow_rate_still_sends_one_message_once_the_account_is_idle() -> None:
    _account(0.01)  # one message every 100 s: less than one per horizon
    now = clock.now()
    with transaction.atomic():
        assert reserve_rate(ProviderAccount.objects.get().pk, 0.01, 5, now, POLICY) == (1, 0.0)
    with transaction.atomic():
        allowed, _ = reserve_rate(ProviderAccount.objects.get().pk, 0.01, 5, now, POLICY)
    assert allowed == 0
    with transaction.atomic():
        assert reserve_rate(
            ProviderAccount.objects.get().pk, 0.01, 5, now + timedelta(seconds=100), POLICY
        ) == (1, 0.0)


def test_a_send_waits_for_its_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    account = _account(4.0)
    claimed_campaign_messages(1, provider=account)
    (taken,) = take_batch("w", clock.now(), 1)
    slept: list[float] = []
    monkeypatch.setattr(deliver.time, "monotonic", lambda: 100.0)
    monkeypatch.setattr(deliver.time, "sleep", slept.append)
    (loaded,) = deliver.load_taken([Taken(taken.message_id, account.pk, True, send_at=100.75)])
    message_row, taken = loaded

    called = deliver.call_provider(message_row, taken, providers=deliver.ProviderCache())

    assert called.result is not None
    assert slept == [0.75]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_workers_in_several_processes_never_share_or_overrun_slots() -> None:
    name = str(connection.settings_dict["NAME"])
    if connection.vendor == "sqlite" and (name == ":memory:" or "mode=memory" in name):
        pytest.skip("SQLite in memory cannot be shared between processes; name a test file")
    rate = 20.0
    account = _account(rate)
    start_at = time.time() + 3
    children = [
        subprocess.Popen(
            [sys.executable, "-m", RESERVER, str(account.pk), str(start_at)],
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    windows = []
    reserving = 0
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        mine = json.loads(out.strip().splitlines()[-1])
        reserving += bool(mine)
        windows.extend(mine)
    assert reserving >= 2, "the processes reserved side by side"

    # The reserved windows of all processes, in time order, never overlap: together they
    # never send faster than the account's rate. (Instants travel as float timestamps:
    # a microsecond of rounding is allowed.)
    windows.sort()
    for (first, count), (next_first, _) in pairwise(windows):
        assert next_first >= first + count / rate - 1e-5


def test_an_account_out_of_slots_does_not_hold_up_the_others() -> None:
    limited = _account(1.0)
    free = ProviderAccount.objects.create(name="smtp-free", kind="sandbox", max_send_rate=None)
    boxes = make_pool(2, 1, provider=limited)
    Mailbox.objects.filter(pk=boxes[1].pk).update(provider=free)
    messages = claimed_campaign_messages(12, provider=limited)  # round-robin over the two
    # The limited account's messages are the oldest: first in line.
    Message.objects.filter(pk__in=[m.pk for m in messages], mailbox=boxes[0]).update(
        not_before=clock.now() - timedelta(hours=1)
    )
    now = clock.now()

    first = take_batch("w1", now, 4, POLICY)
    second = take_batch("w2", now, 4, POLICY)

    # Two seconds at one message a second: two slots. Then the limited account is passed
    # over, and the other account's messages are taken instead of waiting behind it.
    assert [t.account_id for t in first] == [limited.pk, limited.pk]
    assert [t.account_id for t in second] == [free.pk] * 4
    # Taken in the order of their slots, one second apart.
    slots = [t.send_at for t in first]
    assert slots[0] is not None and slots[1] is not None
    assert slots[1] - slots[0] == pytest.approx(1.0)
