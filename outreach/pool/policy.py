"""Named policies of the pool: each number beside its reason (BRIEF §3), and the pure warm-up rule.

Nothing here touches the database; ``PoolSettings`` stores these as JSON and rebuilds them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Limits:
    # A cold mailbox above ~40-50/day starts to look like bulk mail to the big inbox providers.
    mailbox_daily_cap: int = 40
    # A domain's reputation is shared by its mailboxes: 2-3 mailboxes x 40, with headroom.
    domain_daily_cap: int = 250
    # The hard ceiling of the whole pool; nothing can exceed it, whatever else is configured.
    global_daily_cap: int = 1500
    # Default cap per campaign per day; None = no campaign cap unless the campaign sets one.
    campaign_daily_cap: int | None = None
    # No more than N a day to one company (recipient domain); None = no such cap.
    recipient_domain_daily_cap: int | None = None
    # No more than N an hour into one recipient mailbox provider (Gmail, Outlook, Yahoo, a
    # security gateway) across the pool: a burst into one provider looks like a campaign to
    # its filters. None = no such cap.
    recipient_provider_hourly_cap: int | None = None
    # Route each message to a mailbox of the recipient's own provider when one can take it
    # (Google Workspace to Gmail, Microsoft 365 to Outlook).
    prefer_same_provider: bool = False
    # Two sends from one mailbox never closer than this; robotic regularity is a spam signal,
    # hence the random jitter on top.
    pacing_gap_seconds: int = 120
    pacing_jitter_seconds: int = 60
    # A follow-up waits for its thread's mailbox at most this long, then is cancelled: moving
    # it to another mailbox would break the thread and look like spoofing.
    follow_up_wait_hours: int = 72
    # A claimed message not sent within its lease is recovered (BRIEF §3 Messages).
    claim_lease_seconds: int = 600

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class WarmupSchedule:
    # Week 1 ramps linearly from first_day_volume to week1_end_volume sends/day.
    first_day_volume: int = 5
    week1_end_volume: int = 10
    # From week 2: +20% a day, rounded up, until the mailbox's target cap.
    daily_growth: float = 0.20
    # After a cooldown a mailbox re-enters warm-up on this day of the schedule (day 8 = 12/day).
    reentry_day: int = 8
    # How many days in a row the target must be reached before graduation is considered.
    graduation_days_at_target: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def warmup_cap(day: int, schedule: WarmupSchedule, *, target: int) -> int:
    """Sends allowed on warm-up ``day`` (1-based) for a mailbox whose target is ``target``.

    1. Week 1 (days 1-7): linear from ``first_day_volume`` to ``week1_end_volume``, rounded up.
    2. From day 8: the previous day's cap grows by ``daily_growth``, rounded up.
    3. Never above ``target``; day 0 or before: nothing.
    """
    if day < 1 or target <= 0:
        return 0
    first, end = schedule.first_day_volume, schedule.week1_end_volume
    if day <= 7:
        cap = first + math.ceil((day - 1) * (end - first) / 6)
        return min(cap, target)
    cap = end
    for _ in range(day - 7):
        cap = math.ceil(round(cap * (1 + schedule.daily_growth), 9))
        if cap >= target:
            return target
    return min(cap, target)


@dataclass(frozen=True)
class Thresholds:
    # Hard-bounce rate over the window, once at least min_sends are in it.
    bounce_warning_rate: float = 0.03
    bounce_pause_rate: float = 0.05
    min_sends: int = 20
    window_days: int = 7
    # Any complaint pauses the mailbox (Gmail/Yahoo tolerate < 0.3%, aim < 0.1%).
    complaint_pause_count: int = 1
    complaint_warning_rate: float = 0.001
    # A policy block (5.7.x) or spam-folder placement: cooldown this long, then re-warm.
    block_cooldown_days: int = 14
    # Authentication failures pause at once; this many transient failures in a row pause too.
    failure_streak_pause: int = 10
    # A domain with this many mailbox pauses within the window goes into cooldown as a whole.
    domain_pauses_for_cooldown: int = 2
    # Routing: a mailbox's share falls linearly as its bounce rate approaches the pause rate.
    preset: str = "seed"

    PRESETS = {
        "seed": {},
        # Stricter industry figures: pause at 2% bounces, warn at 1%.
        "strict": {
            "bounce_warning_rate": 0.01,
            "bounce_pause_rate": 0.02,
            "complaint_warning_rate": 0.0005,
        },
    }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Thresholds:
        data = dict(data)
        preset = data.get("preset", "seed")
        if preset not in cls.PRESETS:
            raise ValueError(f"unknown thresholds preset {preset!r}")
        merged = {**cls.PRESETS[preset], **data}
        return cls(**merged)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
