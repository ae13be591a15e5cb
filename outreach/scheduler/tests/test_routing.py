"""The pure decisions: eligibility, routing, windows across DST, pacing, variants, graduation."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from outreach.pool.policy import Limits, Thresholds, WarmupSchedule, warmup_cap
from outreach.scheduler import routing
from outreach.scheduler.routing import MailboxView, PoolRouter, Window

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
SEED = Thresholds()
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS_9_TO_17 = Window.of([1, 2, 3, 4, 5], time(9), time(17))


def view(id: int = 1, **fields: object) -> MailboxView:
    values: dict[str, object] = {
        "domain_id": 1,
        "state": "active",
        "remaining": 40,
        "domain_remaining": 250,
    }
    values.update(fields)
    return MailboxView(id=id, **values)  # type: ignore[arg-type]


# --- eligibility -----------------------------------------------------------------------------


def test_it_lets_an_active_mailbox_with_quota_and_elapsed_gap_send() -> None:
    assert routing.is_eligible(view(next_send_at=NOW), NOW, allow_warming=False)


def test_it_refuses_paused_cooldown_and_retired_mailboxes() -> None:
    for state in ("paused", "cooldown", "retired"):
        assert not routing.is_eligible(view(state=state), NOW, allow_warming=True)


def test_it_uses_warming_mailboxes_only_when_allowed() -> None:
    assert not routing.is_eligible(view(state="warming"), NOW, allow_warming=False)
    assert routing.is_eligible(view(state="warming"), NOW, allow_warming=True)


def test_it_refuses_a_mailbox_out_of_quota_or_on_a_full_or_blocked_domain() -> None:
    assert not routing.is_eligible(view(remaining=0), NOW, allow_warming=False)
    assert not routing.is_eligible(view(domain_remaining=0), NOW, allow_warming=False)
    assert not routing.is_eligible(view(domain_sendable=False), NOW, allow_warming=False)


def test_it_refuses_a_mailbox_inside_its_pacing_gap() -> None:
    later = NOW + timedelta(seconds=1)
    assert not routing.is_eligible(view(next_send_at=later), NOW, allow_warming=False)


# --- routing ---------------------------------------------------------------------------------


def test_it_prefers_the_mailbox_with_more_quota_left() -> None:
    chosen = routing.choose_mailbox([view(1, remaining=10), view(2, remaining=30)], NOW, SEED)
    assert chosen is not None and chosen.id == 2


def test_it_counts_the_domain_quota_when_lower_than_the_mailbox_quota() -> None:
    a = view(1, remaining=40, domain_id=1, domain_remaining=5)
    b = view(2, remaining=20, domain_id=2, domain_remaining=200)
    chosen = routing.choose_mailbox([a, b], NOW, SEED)
    assert chosen is not None and chosen.id == 2


def test_it_prefers_a_healthy_mailbox_then_lower_rates_at_equal_quota() -> None:
    spiking = view(1, recent_spike=True)
    healthy = view(2)
    chosen = routing.choose_mailbox([spiking, healthy], NOW, SEED)
    assert chosen is not None and chosen.id == 2
    chosen = routing.choose_mailbox([view(3, complaint_rate=0.001), view(4)], NOW, SEED)
    assert chosen is not None and chosen.id == 4


def test_it_lowers_a_mailbox_share_as_its_bounce_rate_rises() -> None:
    rates = [0.0, 0.01, 0.02, 0.03, 0.04, 0.05]
    factors = [routing.share_factor(r, SEED) for r in rates]
    assert factors == sorted(factors, reverse=True)
    assert factors[0] == 1.0 and factors[-1] == routing.MIN_SHARE
    # Over a stream of decisions the bouncing mailbox is chosen less often.
    router = PoolRouter([view(1, remaining=40, bounce_rate=0.03), view(2, remaining=40)], NOW, SEED)
    picks = {1: 0, 2: 0}
    for _ in range(40):
        chosen = router.choose()
        assert chosen is not None
        picks[chosen.id] += 1
        router.used(chosen.id, None)
    assert picks[1] < picks[2]


def test_it_returns_nothing_when_no_mailbox_is_eligible() -> None:
    assert routing.choose_mailbox([view(remaining=0)], NOW, SEED) is None


mailbox_views = st.lists(
    st.builds(
        MailboxView,
        id=st.integers(1, 10_000),
        domain_id=st.integers(1, 5),
        state=st.sampled_from(["active", "warming", "paused"]),
        remaining=st.integers(0, 50),
        domain_remaining=st.integers(0, 300),
        next_send_at=st.sampled_from([None, NOW - timedelta(minutes=1), NOW + timedelta(1)]),
        bounce_rate=st.floats(0, 0.1),
        recent_spike=st.booleans(),
    ),
    max_size=30,
    unique_by=lambda m: m.id,
)


@given(mailbox_views, st.booleans())
@settings(max_examples=200, deadline=None)
def test_it_routes_like_the_plain_rule_whatever_the_pool(
    views: list[MailboxView], allow_warming: bool
) -> None:
    # The router (heaps, lazy re-scoring) must pick exactly what choose_mailbox picks; the
    # domain quota is shared by the domain's mailboxes.
    for v in views:
        v.domain_remaining = min(x.domain_remaining for x in views if x.domain_id == v.domain_id)
    plain = [MailboxView(**vars(v)) for v in views]
    router = PoolRouter(views, NOW, SEED)
    for _ in range(60):
        expected = routing.choose_mailbox(plain, NOW, SEED, allow_warming=allow_warming)
        got = router.choose(allow_warming=allow_warming)
        assert (got.id if got else None) == (expected.id if expected else None)
        if got is None:
            break
        router.used(got.id, None)
        for p in plain:
            if p.id == got.id:
                p.remaining -= 1
            if p.domain_id == got.domain_id:
                p.domain_remaining -= 1


def test_it_routes_a_restricted_campaign_only_to_its_allowed_mailboxes() -> None:
    router = PoolRouter([view(1, remaining=40), view(2, remaining=5)], NOW, SEED)
    chosen = router.choose(frozenset({2}))
    assert chosen is not None and chosen.id == 2


# --- windows ---------------------------------------------------------------------------------


def test_it_sends_at_once_inside_the_window() -> None:
    inside = datetime(2026, 3, 4, 10, 30, tzinfo=BERLIN)  # Wednesday
    assert routing.next_window_start(inside, WEEKDAYS_9_TO_17, BERLIN) == inside


def test_it_waits_for_the_next_weekday_morning_in_the_recipients_zone() -> None:
    friday_evening = datetime(2026, 3, 6, 18, 0, tzinfo=BERLIN)
    opening = routing.next_window_start(friday_evening, WEEKDAYS_9_TO_17, BERLIN)
    assert opening == datetime(2026, 3, 9, 9, 0, tzinfo=BERLIN)  # Monday 09:00


def test_it_keeps_nine_on_the_wall_clock_across_the_spring_dst_change() -> None:
    # Europe moves to summer time on Sunday 29 March 2026: 09:00 is 08:00 UTC before, 07:00 after.
    friday = datetime(2026, 3, 27, 17, 30, tzinfo=BERLIN)
    opening = routing.next_window_start(friday, WEEKDAYS_9_TO_17, BERLIN)
    assert opening is not None
    assert opening.astimezone(BERLIN).replace(tzinfo=None) == datetime(2026, 3, 30, 9, 0)
    assert opening == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    before = routing.next_window_start(
        datetime(2026, 3, 26, 6, 0, tzinfo=UTC), WEEKDAYS_9_TO_17, BERLIN
    )
    assert before == datetime(2026, 3, 26, 8, 0, tzinfo=UTC)


def test_it_keeps_nine_on_the_wall_clock_across_the_autumn_dst_change() -> None:
    # The US leaves summer time on Sunday 1 November 2026.
    window = Window.of([], time(9), time(17))
    saturday = routing.next_window_start(
        datetime(2026, 10, 31, 12, 0, tzinfo=UTC), window, NEW_YORK
    )
    monday = routing.next_window_start(datetime(2026, 11, 2, 12, 0, tzinfo=UTC), window, NEW_YORK)
    assert saturday == datetime(2026, 10, 31, 13, 0, tzinfo=UTC)
    assert monday == datetime(2026, 11, 2, 14, 0, tzinfo=UTC)


def test_it_opens_a_window_that_starts_in_the_skipped_hour_right_after_the_gap() -> None:
    window = Window.of([], time(2, 30), time(5))
    opening = routing.next_window_start(datetime(2026, 3, 29, 0, 0, tzinfo=UTC), window, BERLIN)
    # 02:30 does not exist in Berlin that night; the first instant after the gap is 03:00.
    assert opening == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert routing.in_window(opening, window, BERLIN)


def test_it_supports_a_window_past_midnight() -> None:
    night = Window.of([], time(22), time(2))
    assert routing.in_window(datetime(2026, 3, 4, 23, 0, tzinfo=UTC), night, ZoneInfo("UTC"))
    assert routing.in_window(datetime(2026, 3, 5, 1, 0, tzinfo=UTC), night, ZoneInfo("UTC"))
    assert not routing.in_window(datetime(2026, 3, 5, 3, 0, tzinfo=UTC), night, ZoneInfo("UTC"))


def test_it_never_opens_a_window_without_days() -> None:
    never = Window(frozenset({8}), time(9), time(17))  # no ISO weekday 8
    assert routing.next_window_start(NOW, never, BERLIN) is None


zones = st.sampled_from(
    ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "UTC"]
)


@given(
    st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1)),
    zones,
    st.sets(st.integers(1, 7), min_size=1),
    st.integers(0, 22),
    st.integers(1, 10),
)
@settings(max_examples=300, deadline=None)
def test_it_always_answers_an_instant_inside_the_window_and_never_earlier(
    after: datetime, zone: str, days: set[int], start_hour: int, length: int
) -> None:
    tz = ZoneInfo(zone)
    window = Window.of(sorted(days), time(start_hour), time(min(23, start_hour + length)))
    when = after.replace(tzinfo=UTC)
    opening = routing.next_window_start(when, window, tz)
    assert opening is not None
    assert opening >= when
    assert routing.in_window(opening, window, tz)
    local = opening.astimezone(tz)
    assert local.isoweekday() in days
    assert opening - when < timedelta(days=8)


# --- pacing ----------------------------------------------------------------------------------


@given(st.integers(0, 600), st.integers(0, 300), st.integers(0, 2**32))
def test_it_keeps_the_gap_and_adds_jitter_within_bounds(gap: int, jitter: int, seed: int) -> None:
    limits = Limits(pacing_gap_seconds=gap, pacing_jitter_seconds=jitter)
    pause = routing.pacing_gap(limits, random.Random(seed))
    assert timedelta(seconds=gap) <= pause <= timedelta(seconds=gap + jitter)


def test_it_jitters_so_gaps_are_not_robotic() -> None:
    rng = random.Random(7)
    gaps = {routing.pacing_gap(Limits(), rng) for _ in range(20)}
    assert len(gaps) == 20


def test_it_uses_the_mailbox_gap_when_set() -> None:
    limits = Limits(pacing_gap_seconds=120, pacing_jitter_seconds=0)
    assert routing.pacing_gap(limits, mailbox_gap=300) == timedelta(seconds=300)


# --- variants --------------------------------------------------------------------------------


def test_it_picks_the_same_variant_for_the_same_enrollment_and_follows_weights() -> None:
    weights = [(1, 3), (2, 1)]
    assert routing.choose_variant(weights, "42:7") == routing.choose_variant(weights, "42:7")
    picks = [routing.choose_variant(weights, f"{i}:7") for i in range(4000)]
    share = picks.count(1) / len(picks)
    assert 0.70 < share < 0.80


# --- warm-up ---------------------------------------------------------------------------------


@given(
    st.dates(min_value=date(2026, 1, 1), max_value=date(2026, 12, 1)),
    st.integers(0, 60),
    st.integers(1, 20),
    st.integers(5, 60),
)
def test_it_follows_the_warmup_schedule_from_the_start_day(
    started: date, days_in: int, start_day: int, target: int
) -> None:
    schedule = WarmupSchedule()
    today = started + timedelta(days=days_in)
    day_n = routing.warmup_day(started, start_day, today)
    assert day_n == days_in + start_day
    cap = warmup_cap(day_n, schedule, target=target)
    yesterday = warmup_cap(day_n - 1, schedule, target=target)
    assert yesterday <= cap <= target
    if day_n > 7 and yesterday < target:
        # +20% a day, rounded up, until the target.
        assert cap == min(target, -(-yesterday * 12 // 10))


def test_it_spreads_sends_across_the_window_one_per_slot() -> None:
    start = datetime(2026, 3, 4, 8, tzinfo=UTC)
    end = datetime(2026, 3, 4, 18, tzinfo=UTC)
    times = routing.spread(start, end, 10, random.Random(1))
    assert len(times) == 10
    assert all(
        start + timedelta(hours=i) <= t < start + timedelta(hours=i + 1)
        for i, t in enumerate(times)
    )


def figures(**overrides: object) -> routing.GraduationFigures:
    values: dict[str, object] = {
        "target": 40,
        "recent_daily_sends": (40,),
        "sent": 200,
        "hard_bounces": 1,
        "complaints": 0,
        "blocks": 0,
    }
    values.update(overrides)
    return routing.GraduationFigures(**values)  # type: ignore[arg-type]


def test_it_graduates_a_clean_mailbox_that_reached_its_target() -> None:
    ok, reason = routing.graduation(figures(), WarmupSchedule(), SEED)
    assert ok, reason


def test_it_keeps_warming_below_target_or_with_complaints_blocks_or_bounces() -> None:
    schedule = WarmupSchedule()
    assert not routing.graduation(figures(recent_daily_sends=(33,)), schedule, SEED)[0]
    assert not routing.graduation(figures(complaints=1), schedule, SEED)[0]
    assert not routing.graduation(figures(blocks=1), schedule, SEED)[0]
    assert not routing.graduation(figures(hard_bounces=7), schedule, SEED)[0]  # 7 of 200
    assert routing.graduation(figures(hard_bounces=3), schedule, SEED)[0]  # 1.5%: no evidence
    # Refused at send time: attempts that bounced.
    assert not routing.graduation(figures(sent=0, refused=20, hard_bounces=20), schedule, SEED)[0]
    two_days = WarmupSchedule(graduation_days_at_target=2)
    assert not routing.graduation(figures(recent_daily_sends=(40, 33)), two_days, SEED)[0]
