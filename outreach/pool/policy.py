"""Named policies of the pool: each number beside its reason (docs/rules.md), the pure warm-up rule,
and the one decision on bounce figures (:func:`bounce_rate_above`).

Nothing here touches the database; ``PoolSettings`` stores these as JSON and rebuilds them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

# Mailbox states that may send: `active` always, `warming` only within its warm-up cap and,
# for campaign mail, only for campaigns that allow warming mailboxes.
SENDING_STATES = ("active", "warming")


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
    # A claimed message not sent within its lease is recovered (docs/rules.md, Messages).
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
    # Hard-bounce rate over the window (bounces per attempt: sent + refused at send time),
    # once at least min_sends attempts are in it. These are operating points, not cut-offs
    # of a ratio: two bounces in 25 attempts is not "8%" yet (see bounce_evidence).
    bounce_warning_rate: float = 0.03
    bounce_pause_rate: float = 0.05
    min_sends: int = 20
    # What a healthy mailbox bounces on a verified list. The bounces of the window are
    # weighed as evidence for "the rate is at the warning/pause rate" against "it is at this
    # rate"; docs/health.md has the numbers.
    bounce_baseline_rate: float = 0.01
    # How many times likelier the window's bounces must be at the operating point than at the
    # baseline before the rule acts (Wald's likelihood ratio; 1 would act on a coin flip).
    bounce_evidence: float = 40.0
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
        # Stricter industry figures: pause at 2% bounces, warn at 1% (against a 0.5% baseline).
        "strict": {
            "bounce_warning_rate": 0.01,
            "bounce_pause_rate": 0.02,
            "bounce_baseline_rate": 0.005,
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
        baseline = merged.get("bounce_baseline_rate", cls.bounce_baseline_rate)
        warning = merged.get("bounce_warning_rate", cls.bounce_warning_rate)
        if "bounce_baseline_rate" not in data and baseline >= warning:
            # A warning rate set at or below the default baseline (stored before the baseline
            # existed): weigh against half of it rather than refuse to load.
            merged["bounce_baseline_rate"] = warning / 2
        thresholds = cls(**merged)
        thresholds.check()
        return thresholds

    def check(self) -> None:
        """Raise ValueError when the bounce figures cannot be weighed: the baseline must lie
        below both operating points, and evidence means a ratio above 1."""
        if not 0 < self.bounce_baseline_rate < min(self.bounce_warning_rate, 1.0):
            raise ValueError(
                f"bounce_baseline_rate {self.bounce_baseline_rate} must be above 0 and below "
                f"bounce_warning_rate {self.bounce_warning_rate}"
            )
        if not self.bounce_warning_rate <= self.bounce_pause_rate < 1:
            raise ValueError(
                f"bounce_pause_rate {self.bounce_pause_rate} must be at least "
                f"bounce_warning_rate {self.bounce_warning_rate} and below 1"
            )
        if self.bounce_evidence <= 1:
            raise ValueError(f"bounce_evidence {self.bounce_evidence} must be above 1")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def bounce_evidence(bounced: int, attempts: int, rate: float, baseline: float) -> float:
    """How many times likelier ``bounced`` hard bounces in ``attempts`` are if the mailbox's
    true rate is ``rate`` than if it is ``baseline`` (the binomial likelihood ratio).

    Each bounce multiplies the ratio by rate/baseline (x5 for 5% against 1%); each accepted
    attempt divides it by (1-baseline)/(1-rate) (about x0.96). A bounce count that lies above
    the line ``bounced = a + b * attempts`` (b between baseline and rate) is evidence for
    ``rate``. Bounces beyond the attempts (late reports about older sends) count as attempts.
    """
    attempts = max(attempts, bounced)
    if attempts <= 0:
        return 1.0
    log_ratio = bounced * math.log(rate / baseline) + (attempts - bounced) * math.log(
        (1 - rate) / (1 - baseline)
    )
    # Bounded so that a whole window of refusals does not overflow a float.
    return math.exp(min(log_ratio, 700.0))


def bounce_rate_above(bounced: int, attempts: int, rate: float, thresholds: Thresholds) -> bool:
    """The one bounce decision: is the mailbox's hard-bounce rate above ``rate`` (an operating
    point: ``bounce_warning_rate`` or ``bounce_pause_rate``) on the evidence of the window?

    Yes once ``min_sends`` attempts are in the window and the bounces are at least
    ``bounce_evidence`` times likelier at ``rate`` than at ``bounce_baseline_rate``: a
    sequential probability ratio test (Wald) over the window. With the seed's figures a pause
    takes 3 bounces in 20-30 attempts, 5 in 100, 8 in 200 (docs/health.md); 2 in 25 is
    not enough.
    """
    t = thresholds
    if attempts < t.min_sends:
        return False
    return bounce_evidence(bounced, attempts, rate, t.bounce_baseline_rate) >= t.bounce_evidence
