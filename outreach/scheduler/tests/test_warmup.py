"""Warm-up: each warming mailbox sends its day's volume to the seeds, within the caps, and
graduates to active by the rule of docs/rules.md, recorded in the audit log."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase as HypothesisTestCase

from outreach.campaigns.models import Message
from outreach.events.models import Event
from outreach.lib import clock
from outreach.pool.models import Mailbox, PoolSettings, StateChange
from outreach.pool.policy import WarmupSchedule, warmup_cap
from outreach.scheduler.routing_pass import claim_due
from outreach.scheduler.tests.conftest import NOON, deliver_claimed, used
from outreach.scheduler.warmup import BUILT_IN, graduate, plan_warmup, warmup_content
from outreach.testing import make_pool

pytestmark = pytest.mark.django_db
SEEDS = ["seed1@inbox.example.org", {"address": "seed2@mail.example.org", "imap": "x"}]
MORNING = NOON.replace(hour=7)


def warming_pool(started_days_ago: int = 0, **limits: object) -> list[Mailbox]:
    boxes = make_pool(
        1,
        2,
        state=Mailbox.State.WARMING,
        warmup_started_on=NOON.date() - timedelta(days=started_days_ago),
        limits={"pacing_gap_seconds": 0, "pacing_jitter_seconds": 0, **limits},
    )
    PoolSettings.objects.filter(pk=1).update(seed_addresses=SEEDS)
    return boxes


def test_it_plans_the_days_warmup_volume_to_the_seeds_inside_the_window() -> None:
    boxes = warming_pool()
    report = plan_warmup(MORNING, random.Random(1))
    assert report.planned == 10  # day 1: 5 each
    messages = Message.objects.filter(kind=Message.Kind.WARMUP)
    for box in boxes:
        assert messages.filter(pinned_mailbox=box).count() == 5
    assert {m.to_email for m in messages} == {"seed1@inbox.example.org", "seed2@mail.example.org"}
    window_start, window_end = NOON.replace(hour=8), NOON.replace(hour=18)
    assert all(window_start <= m.not_before < window_end for m in messages)
    assert all(m.subject in {c.subject for c in BUILT_IN} for m in messages)
    assert plan_warmup(NOON, random.Random(2)).planned == 0  # idempotent within the day


def test_it_spreads_the_rest_of_the_day_when_planned_late() -> None:
    warming_pool(started_days_ago=7)  # day 8: 12 a day
    plan_warmup(NOON.replace(hour=15), random.Random(1))
    times = sorted(Message.objects.values_list("not_before", flat=True))
    assert len(times) == 24
    assert times[0] >= NOON.replace(hour=15) and times[-1] < NOON.replace(hour=18)


def test_it_reenters_at_a_reduced_level_after_cooldown() -> None:
    boxes = warming_pool()
    Mailbox.objects.filter(pk=boxes[0].pk).update(warmup_start_day=8)
    plan_warmup(MORNING, random.Random(1))
    assert Message.objects.filter(pinned_mailbox=boxes[0]).count() == 12
    assert Message.objects.filter(pinned_mailbox=boxes[1]).count() == 5


def test_it_plans_nothing_without_seeds() -> None:
    warming_pool()
    PoolSettings.objects.filter(pk=1).update(seed_addresses=[])
    assert plan_warmup(MORNING).planned == 0


def test_it_gives_warmup_messages_their_plain_content() -> None:
    warming_pool()
    plan_warmup(MORNING, random.Random(1))
    message = Message.objects.filter(kind=Message.Kind.WARMUP).first()
    assert message is not None
    content = warmup_content(message)
    assert content.subject == message.subject and content.text.strip()


def test_it_reserves_the_caps_and_cancels_what_the_day_did_not_send() -> None:
    boxes = warming_pool(global_daily_cap=7)
    plan_warmup(MORNING, random.Random(1))
    assert claim_due(NOON.replace(hour=18, minute=30)).claimed == 7
    assert used("global", "*", NOON.date()) == 7
    plan_warmup(MORNING + timedelta(days=1), random.Random(1))
    leftovers = Message.objects.filter(not_before__lt=MORNING + timedelta(hours=17))
    assert leftovers.filter(state=Message.State.CANCELLED).count() == 3
    assert (
        Message.objects.filter(
            pinned_mailbox=boxes[0], not_before__gt=MORNING + timedelta(hours=17)
        ).count()
        == 6
    )  # day 2


def test_it_follows_the_ramp_day_by_day_and_graduates_on_reaching_the_target() -> None:
    boxes = warming_pool()
    schedule = WarmupSchedule()
    sent_per_day = []
    day = MORNING
    for _ in range(15):
        clock.set_now(day)
        plan_warmup(day, random.Random(1))
        evening = day.replace(hour=18, minute=30)
        clock.set_now(evening)
        claim_due(evening)
        deliver_claimed(evening)
        sent_per_day.append(used("mailbox", str(boxes[0].pk), day.date()))
        graduate(evening)
        day += timedelta(days=1)
    expected = [warmup_cap(d, schedule, target=40) for d in range(1, 16)]
    # Day 14 reaches 40: the mailbox graduates that evening and sends as an active one after.
    assert sent_per_day[:14] == expected[:14] == [5, 6, 7, 8, 9, 10, 10, 12, 15, 18, 22, 27, 33, 40]
    change = StateChange.objects.get(mailbox=boxes[0], to_state="active")
    assert change.from_state == "warming" and change.actor == "rule:warmup_graduation"
    assert change.figures["recent_daily_sends"] == [40] and change.figures["complaints"] == 0
    assert change.at.date() == (MORNING + timedelta(days=13)).date()


def test_it_keeps_a_mailbox_with_a_complaint_warming() -> None:
    boxes = warming_pool(started_days_ago=13)  # day 14: 40
    plan_warmup(MORNING, random.Random(1))
    claim_due(NOON.replace(hour=18, minute=30))
    deliver_claimed(NOON)
    Event.objects.create(
        source="ses",
        type=Event.Type.COMPLAINED,
        mailbox=boxes[0],
        occurred_at=NOON,
        recipient="seed1@inbox.example.org",
    )
    assert graduate(NOON.replace(hour=19)) == 1
    assert Mailbox.objects.get(pk=boxes[0].pk).state == Mailbox.State.WARMING
    assert Mailbox.objects.get(pk=boxes[1].pk).state == Mailbox.State.ACTIVE


def test_it_reads_no_events_of_a_mailbox_below_its_target_volume(
    django_assert_max_num_queries: Any,
) -> None:
    """Most of warm-up the volume is not reached yet: graduation reads the daily counters of
    every warming mailbox at once, and the events of none, whatever the pool's size."""
    make_pool(10, 3, state=Mailbox.State.WARMING, warmup_started_on=NOON.date())
    plan_warmup(MORNING, random.Random(1))
    claim_due(NOON.replace(hour=18, minute=30))
    deliver_claimed(NOON)
    with django_assert_max_num_queries(3):  # the pool's settings, its mailboxes, their counters
        assert graduate(NOON.replace(hour=19)) == 0


class TestScheduleProperty(HypothesisTestCase):
    @given(
        days_in=st.integers(0, 30),
        start_day=st.integers(1, 12),
        target=st.integers(5, 60),
        tz=st.sampled_from(["UTC", "America/Los_Angeles", "Asia/Tokyo"]),
    )
    @settings(
        max_examples=20,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    def test_it_plans_exactly_the_schedules_cap_for_the_pool_day(
        self, days_in: int, start_day: int, target: int, tz: str
    ) -> None:
        now = datetime(2026, 6, 10, 16, 0, tzinfo=UTC)
        clock.set_now(now)
        boxes = make_pool(1, 1, state=Mailbox.State.WARMING, timezone=tz)
        pool = PoolSettings.load()
        today = clock.today(tz)
        Mailbox.objects.filter(pk=boxes[0].pk).update(
            warmup_started_on=today - timedelta(days=days_in),
            warmup_start_day=start_day,
            daily_cap=target,
        )
        PoolSettings.objects.filter(pk=1).update(seed_addresses=["s@seed.example.org"])
        plan_warmup(now - timedelta(hours=12), random.Random(0))
        plan_warmup(now, random.Random(0))
        expected = warmup_cap(days_in + start_day, pool.warmup, target=target)
        planned = Message.objects.filter(kind=Message.Kind.WARMUP).exclude(state="cancelled")
        assert planned.count() == expected


@pytest.mark.django_db(transaction=True)
def test_two_schedulers_planning_at_once_plan_the_days_volume_once() -> None:
    import threading

    from django.db import connection

    warming_pool()
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def plan(seed: int) -> None:
        try:
            barrier.wait(timeout=10)
            plan_warmup(MORNING, random.Random(seed))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=plan, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert Message.objects.filter(kind=Message.Kind.WARMUP).count() == 10  # 2 mailboxes x 5
