"""SQLite's set-wise claim answers exactly as one savepoint per claim, and its guards hold.

The set-wise claim decides a whole batch in memory from one read of its rows and writes it in a
few statements. Random batches over a pool whose caps sit at their limits (mailbox, domain,
campaign, global, recipient domain), with mailboxes paced, paused, warming or on a domain in
cooldown, messages taken meanwhile or proposed twice, and counters missing, must give the same
outcome per proposal and leave the same rows as the per-claim path. When the read is stale the
guarded statements refuse, the batch is rolled back and claimed one by one: never over a cap.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase as HypothesisTestCase

from outreach.campaigns.models import Message
from outreach.pool.models import Domain, Mailbox
from outreach.pool.policy import SENDING_STATES
from outreach.scheduler import claim
from outreach.scheduler.claim import ClaimOutcome, Proposal
from outreach.scheduler.counters import Reservation, ensure_counters
from outreach.scheduler.models import DailyCounter
from outreach.scheduler.tests.conftest import NOON, schedule
from outreach.testing import make_campaign, make_pool

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "sqlite", reason="the set-wise claim is SQLite's (one writer)"
    ),
]
DAY = NOON.date()
LEASE = timedelta(minutes=10)
NO_PACING = {"pacing_gap_seconds": 0, "pacing_jitter_seconds": 0}

Batch = Callable[[list[Proposal], Any, Any, timedelta, str, tuple[str, ...]], list[ClaimOutcome]]


class _Undo(Exception):
    pass


def snapshot() -> dict[str, Any]:
    """Every row a claim may change."""
    return {
        "messages": sorted(
            Message.objects.values_list(
                "pk",
                "state",
                "mailbox_id",
                "provider_account_id",
                "claimed_by",
                "lease_expires_at",
                "quota_day",
            )
        ),
        "mailboxes": sorted(Mailbox.objects.values_list("pk", "next_send_at")),
        "counters": sorted(DailyCounter.objects.values_list("scope", "key", "day", "used")),
    }


def run(batch: Batch, proposals: list[Proposal], states: tuple[str, ...] = SENDING_STATES) -> Any:
    with transaction.atomic():
        return batch(proposals, DAY, NOON, LEASE, "host:1", states)


def outcomes_and_rows(
    batch: Batch, proposals: list[Proposal], states: tuple[str, ...] = SENDING_STATES
) -> tuple[list[ClaimOutcome], dict[str, Any]]:
    """What ``batch`` answers and leaves behind, rolled back afterwards."""
    result: tuple[list[ClaimOutcome], dict[str, Any]] | None = None
    try:
        with transaction.atomic():
            outcomes = run(batch, proposals, states)
            result = (outcomes, snapshot())
            raise _Undo
    except _Undo:
        pass
    assert result is not None
    return result


def per_claim(*args: Any) -> list[ClaimOutcome]:
    return claim.IMPLEMENTATIONS["python"](*args)


def setwise(*args: Any) -> list[ClaimOutcome]:
    return claim.IMPLEMENTATIONS["setwise"](*args)


class Pool:
    """Two domains of three mailboxes, a campaign, twelve messages to three company domains."""

    def __init__(self) -> None:
        self.boxes = make_pool(2, 3, limits=NO_PACING)
        self.campaign = make_campaign()
        self.messages = schedule(self.campaign, 12, domains=3)

    def proposal(
        self,
        message: Message,
        box: Mailbox,
        *,
        caps: dict[str, int | None],
        gap: int = 120,
    ) -> Proposal:
        units: list[tuple[str, str, int | None]] = [
            ("global", "*", caps.get("global")),
            ("domain", str(box.domain_id), caps.get("domain")),
            ("mailbox", str(box.pk), caps.get("mailbox")),
            ("campaign", str(self.campaign.pk), caps.get("campaign")),
            ("recipient_domain", message.to_domain, caps.get("recipient_domain")),
        ]
        return Proposal(
            message_id=message.pk,
            mailbox_id=box.pk,
            provider_account_id=box.provider_account.pk,
            reservation=Reservation(tuple(sorted(units))),
            next_send_at=NOON + timedelta(seconds=gap),
        )


class TestParity(HypothesisTestCase):
    """Random batches: the set-wise claim and the per-claim path answer and write alike."""

    @given(
        picks=st.lists(
            st.tuples(st.integers(0, 11), st.integers(0, 5), st.sampled_from([0, 0, 90])),
            min_size=1,
            max_size=30,
        ),
        caps=st.fixed_dictionaries(
            {
                "global": st.none() | st.integers(0, 12),
                "domain": st.none() | st.integers(0, 8),
                "mailbox": st.none() | st.integers(0, 4),
                "campaign": st.none() | st.integers(0, 10),
                "recipient_domain": st.none() | st.integers(0, 5),
            }
        ),
        used=st.integers(0, 3),
        paced=st.sets(st.integers(0, 5), max_size=3),
        paused=st.sets(st.integers(0, 5), max_size=2),
        warming=st.sets(st.integers(0, 5), max_size=2),
        cooldown=st.booleans(),
        taken=st.sets(st.integers(0, 11), max_size=3),
        missing=st.sampled_from(["", "global", "mailbox", "recipient_domain"]),
        allow_warming=st.booleans(),
    )
    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    def test_it_gives_exactly_the_claims_of_one_savepoint_per_claim(
        self,
        picks: list[tuple[int, int, int]],
        caps: dict[str, int | None],
        used: int,
        paced: set[int],
        paused: set[int],
        warming: set[int],
        cooldown: bool,
        taken: set[int],
        missing: str,
        allow_warming: bool,
    ) -> None:
        pool = Pool()
        proposals = [
            pool.proposal(pool.messages[m], pool.boxes[b], caps=caps, gap=gap)
            for m, b, gap in picks
        ]
        ensure_counters(DAY, {k for p in proposals for k in p.reservation.keys()})
        # Caps at (or near) their limits: every counter starts at ``used``.
        DailyCounter.objects.update(used=used)
        if missing:
            DailyCounter.objects.filter(scope=missing).delete()
        for i in paced:
            Mailbox.objects.filter(pk=pool.boxes[i].pk).update(
                next_send_at=NOON + timedelta(seconds=30)
            )
        Mailbox.objects.filter(pk__in=[pool.boxes[i].pk for i in paused]).update(
            state=Mailbox.State.PAUSED
        )
        Mailbox.objects.filter(pk__in=[pool.boxes[i].pk for i in warming]).update(
            state=Mailbox.State.WARMING
        )
        if cooldown:
            Domain.objects.filter(pk=pool.boxes[0].domain_id).update(state=Domain.State.COOLDOWN)
        Message.objects.filter(pk__in=[pool.messages[i].pk for i in taken]).update(
            state=Message.State.CLAIMED
        )
        states = SENDING_STATES if allow_warming else (Mailbox.State.ACTIVE,)

        expected = outcomes_and_rows(per_claim, proposals, states)
        actual = outcomes_and_rows(setwise, proposals, states)

        assert actual[0] == expected[0]
        assert actual[1] == expected[1]


@pytest.fixture
def pool() -> Pool:
    return Pool()


@pytest.fixture
def fallbacks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many batches fell back to one savepoint per claim."""
    calls: list[int] = []
    one_by_one = claim._claim_batch_python

    def counted(proposals: list[Proposal], *args: Any) -> list[ClaimOutcome]:
        calls.append(len(proposals))
        return one_by_one(proposals, *args)

    monkeypatch.setattr(claim, "_claim_batch_python", counted)
    yield calls


def stale(monkeypatch: pytest.MonkeyPatch, change: Callable[[claim.BatchRows], None]) -> None:
    """The set-wise claim reads its rows and then ``change`` makes that view stale, as if
    another writer had been in between."""
    read = claim._read_batch_rows

    def stale_read(proposals: list[Proposal], day: Any) -> claim.BatchRows:
        rows = read(proposals, day)
        change(rows)
        return rows

    monkeypatch.setattr(claim, "_read_batch_rows", stale_read)


CAPS: dict[str, int | None] = {"mailbox": 40, "domain": 120, "global": 1000}


def test_it_claims_a_batch_in_a_few_statements_without_falling_back(
    pool: Pool, fallbacks: list[int]
) -> None:
    proposals = [
        pool.proposal(m, box, caps=CAPS) for m, box in zip(pool.messages, pool.boxes, strict=False)
    ]
    ensure_counters(DAY, {k for p in proposals for k in p.reservation.keys()})
    outcomes = run(setwise, proposals)
    assert all(o.claimed for o in outcomes)
    assert fallbacks == []
    assert Message.objects.filter(state=Message.State.CLAIMED).count() == 6
    assert DailyCounter.objects.get(scope="global").used == 6


def test_a_stale_counter_is_refused_by_the_cap_guard_and_claimed_one_by_one(
    pool: Pool, fallbacks: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mailbox's cap is 2 and another writer used both units after the read: the guard
    ``used + n <= cap`` refuses, and one by one nothing is claimed over the cap."""
    box = pool.boxes[0]
    caps = {**CAPS, "mailbox": 2}
    proposals = [pool.proposal(pool.messages[0], box, caps=caps, gap=0)]
    proposals.append(pool.proposal(pool.messages[1], box, caps=caps, gap=0))
    ensure_counters(DAY, {k for p in proposals for k in p.reservation.keys()})
    DailyCounter.objects.filter(scope="mailbox", key=str(box.pk)).update(used=2)
    stale(monkeypatch, lambda rows: rows.counters.__setitem__(("mailbox", str(box.pk)), 0))
    outcomes = run(setwise, proposals)
    assert [(o.reason, o.scope) for o in outcomes] == [("full", "mailbox")] * 2
    assert fallbacks == [2]
    assert DailyCounter.objects.get(scope="mailbox", key=str(box.pk)).used == 2
    assert DailyCounter.objects.get(scope="global").used == 0
    assert not Message.objects.filter(state=Message.State.CLAIMED).exists()


def test_a_message_taken_after_the_read_is_refused_by_the_state_guard(
    pool: Pool, fallbacks: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = pool.messages[:2]
    proposals = [pool.proposal(first, pool.boxes[0], caps=CAPS)]
    proposals.append(pool.proposal(second, pool.boxes[1], caps=CAPS))
    ensure_counters(DAY, {k for p in proposals for k in p.reservation.keys()})
    Message.objects.filter(pk=first.pk).update(state=Message.State.CLAIMED, claimed_by="other")
    stale(monkeypatch, lambda rows: rows.messages.__setitem__(first.pk, Message.State.SCHEDULED))
    outcomes = run(setwise, proposals)
    assert [o.reason for o in outcomes] == ["gone", ""]
    assert fallbacks == [2]
    assert Message.objects.get(pk=first.pk).claimed_by == "other"
    assert DailyCounter.objects.get(scope="global").used == 1


def test_a_mailbox_paced_after_the_read_is_refused_by_the_pacing_guard(
    pool: Pool, fallbacks: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    box = pool.boxes[0]
    proposals = [pool.proposal(pool.messages[0], box, caps=CAPS)]
    ensure_counters(DAY, {k for p in proposals for k in p.reservation.keys()})
    later = NOON + timedelta(seconds=30)
    Mailbox.objects.filter(pk=box.pk).update(next_send_at=later)

    def free_slot(rows: claim.BatchRows) -> None:
        state, _slot, domain_state = rows.mailboxes[box.pk]
        rows.mailboxes[box.pk] = (state, None, domain_state)

    stale(monkeypatch, free_slot)
    outcomes = run(setwise, proposals)
    assert [o.reason for o in outcomes] == ["busy"]
    assert fallbacks == [1]
    assert Mailbox.objects.get(pk=box.pk).next_send_at == later
    assert DailyCounter.objects.get(scope="global").used == 0


def test_the_routing_pass_claims_as_before_at_every_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """A whole routing pass at its caps' edges, set-wise and one by one: the same claims."""
    from outreach.scheduler.routing_pass import claim_due

    limits = {
        "mailbox_daily_cap": 7,
        "domain_daily_cap": 15,
        "global_daily_cap": 40,
        "recipient_domain_daily_cap": 3,
        "pacing_gap_seconds": 0,
        "pacing_jitter_seconds": 0,
    }
    make_pool(3, 3, limits=limits)
    # 7 company domains x 3 = 21 under the campaign's 30: the recipient domains' caps bind,
    # refusing claims the router proposed without knowing them.
    schedule(make_campaign(daily_cap=30), 120, domains=7)

    implementations = dict(claim.IMPLEMENTATIONS)

    def claims(implementation: str) -> tuple[Any, ...]:
        # SQLite's pass claims through "setwise": lend it the implementation under test.
        monkeypatch.setitem(claim.IMPLEMENTATIONS, "setwise", implementations[implementation])
        result: tuple[Any, ...] = ()
        try:
            with transaction.atomic():
                report = claim_due(NOON, worker="w", rng=random.Random(3))
                result = (report.claimed, report.refused, report.by_mailbox, snapshot())
                raise _Undo
        except _Undo:
            pass
        return result

    one_by_one = claims("python")
    assert one_by_one[0] == 21 and one_by_one[1] > 0
    assert claims("setwise") == one_by_one
