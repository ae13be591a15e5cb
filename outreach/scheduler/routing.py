"""Pure decisions of the control plane: eligibility, routing, sending windows, pacing, graduation.

Nothing here touches the database. The ORM code in :mod:`outreach.scheduler.routing_pass`,
:mod:`outreach.scheduler.planning` and :mod:`outreach.scheduler.warmup` gathers plain values,
asks these functions, and writes the answer. The warm-up cap itself is
:func:`outreach.pool.policy.warmup_cap`.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from outreach.pool.policy import (
    Limits,
    Thresholds,
    WarmupSchedule,
    bounce_rate_above,
)

# Below this factor a mailbox still gets a trickle: it is not paused yet, and a mailbox that
# never sends again would never produce the figures that clear it.
MIN_SHARE = 0.1


# --- Eligibility -----------------------------------------------------------------------------


@dataclass
class MailboxView:
    """What routing needs to know about one mailbox, read once per pass.

    ``remaining`` and ``domain_remaining`` are the units left today under the mailbox's cap
    (``Mailbox.cap_today``) and its domain's cap; ``domain_sendable`` is False while the domain
    is in cooldown, retired, or blocked by a failing DNS check. ``bounce_rate`` and
    ``complaint_rate`` cover the thresholds' window; ``recent_spike`` is a burst of bounces or
    any complaint in the last day.
    """

    id: int
    domain_id: int
    state: str
    remaining: int
    domain_remaining: int
    next_send_at: datetime | None = None
    domain_sendable: bool = True
    bounce_rate: float = 0.0
    complaint_rate: float = 0.0
    recent_spike: bool = False
    # The mailbox provider it sends through ("google", "microsoft"; "" for anything else),
    # matched against the recipient's provider when the pool prefers the same provider.
    provider: str = ""


def is_eligible(mailbox: MailboxView, now: datetime, *, allow_warming: bool) -> bool:
    """May ``mailbox`` take one more message at ``now``? (docs/rules.md, Routing.)

    Its state sends (``warming`` only when ``allow_warming``), its domain sends, quota is left on
    the mailbox and on its domain, and the pacing gap since its last claim has elapsed. The
    campaign's allowed set and the campaign/global caps are checked by the caller.
    """
    if mailbox.state == "active":
        pass
    elif mailbox.state == "warming":
        if not allow_warming:
            return False
    else:
        return False
    return (
        mailbox.domain_sendable
        and mailbox.remaining > 0
        and mailbox.domain_remaining > 0
        and (mailbox.next_send_at is None or mailbox.next_send_at <= now)
    )


# --- Routing choice --------------------------------------------------------------------------


def share_factor(bounce_rate: float, thresholds: Thresholds) -> float:
    """How much of its quota a mailbox is offered, falling as its bounce rate rises.

    1.0 at no bounces, linearly down to :data:`MIN_SHARE` at the pause rate, where the health
    rules take the mailbox out of the pool altogether.
    """
    if thresholds.bounce_pause_rate <= 0:
        return 1.0
    factor = 1.0 - bounce_rate / thresholds.bounce_pause_rate
    return max(MIN_SHARE, min(1.0, factor))


def route_score(mailbox: MailboxView, thresholds: Thresholds) -> tuple[float, int, float, int]:
    """The sort key of a mailbox; the highest wins.

    1. Remaining daily quota (the lower of the mailbox's and its domain's), weighted by
       :func:`share_factor` so a mailbox's share falls as its bounce rate rises.
    2. Health: a mailbox without a recent spike of bounces or complaints first.
    3. Recent performance: lower bounce + complaint rate first.
    4. The lower id, so the choice is deterministic.
    """
    remaining = min(mailbox.remaining, mailbox.domain_remaining)
    weighted = remaining * share_factor(mailbox.bounce_rate, thresholds)
    return (
        round(weighted, 6),
        0 if mailbox.recent_spike else 1,
        -(mailbox.bounce_rate + mailbox.complaint_rate),
        -mailbox.id,
    )


def choose_mailbox(
    candidates: Iterable[MailboxView],
    now: datetime,
    thresholds: Thresholds,
    *,
    allow_warming: bool = False,
) -> MailboxView | None:
    """The best eligible mailbox among ``candidates`` (already filtered by the campaign)."""
    eligible = [m for m in candidates if is_eligible(m, now, allow_warming=allow_warming)]
    if not eligible:
        return None
    return max(eligible, key=lambda m: route_score(m, thresholds))


@dataclass
class _Heap:
    members: frozenset[int] | None  # None: every mailbox
    allow_warming: bool
    entries: list[tuple[tuple[float, int, float, int], int]] = field(default_factory=list)


class PoolRouter:
    """:func:`choose_mailbox` for a whole pass, at a cost that does not grow with the pool.

    The pool is read once; every decision pops the best mailbox from a heap (one heap per
    distinct allowed set of mailboxes, so a campaign restricted to two domains never scans the
    others). Scores mostly fall during a pass (quota is used), so a popped entry whose score went
    stale is re-scored and pushed back: the classic lazy heap. A mailbox that became ineligible
    (paced, out of quota, domain full) is dropped from the heap until the next pass, unless a
    refused reservation gives its unit back (:meth:`unused`).

    The caller must report every reservation with :meth:`used`, every refused one with
    :meth:`unused`, and :meth:`exhausted` when the database said a cap was full, so the
    in-memory view follows the counters.
    """

    def __init__(self, mailboxes: Iterable[MailboxView], now: datetime, thresholds: Thresholds):
        self.now = now
        self.thresholds = thresholds
        self.mailboxes: dict[int, MailboxView] = {m.id: m for m in mailboxes}
        # Domain quota is shared by the domain's mailboxes: kept once here and copied into a
        # mailbox's view when it is looked at, so a reservation costs O(1), not O(pool).
        self.domain_left: dict[int, int] = {}
        for m in self.mailboxes.values():
            self.domain_left[m.domain_id] = min(
                self.domain_left.get(m.domain_id, m.domain_remaining), m.domain_remaining
            )
        self._heaps: dict[tuple[frozenset[int] | None, bool], _Heap] = {}
        # The mailboxes of each sending provider, for the same-provider preference.
        self.by_provider: dict[str, frozenset[int]] = {}
        for m in self.mailboxes.values():
            if m.provider:
                self.by_provider[m.provider] = self.by_provider.get(m.provider, frozenset()) | {
                    m.id
                }
        # Messages each recipient provider may still take this hour (absent: no cap).
        self.recipient_provider_left: dict[str, int] = {}

    def _heap(self, members: frozenset[int] | None, allow_warming: bool) -> _Heap:
        key = (members, allow_warming)
        heap = self._heaps.get(key)
        if heap is None:
            heap = _Heap(members, allow_warming)
            pool = (
                self.mailboxes.values()
                if members is None
                else (self.mailboxes[i] for i in members if i in self.mailboxes)
            )
            heap.entries = [
                (_neg(route_score(m, self.thresholds)), m.id)
                for m in pool
                if is_eligible(m, self.now, allow_warming=allow_warming)
            ]
            heapq.heapify(heap.entries)
            self._heaps[key] = heap
        return heap

    def choose(
        self, allowed: frozenset[int] | None = None, *, allow_warming: bool = False
    ) -> MailboxView | None:
        """The best eligible mailbox among ``allowed`` (None: all), without reserving it."""
        heap = self._heap(allowed, allow_warming)
        entries = heap.entries
        while entries:
            neg_score, mailbox_id = entries[0]
            mailbox = self._view(mailbox_id)
            if not is_eligible(mailbox, self.now, allow_warming=allow_warming):
                heapq.heappop(entries)
                continue
            current = _neg(route_score(mailbox, self.thresholds))
            if current != neg_score:
                heapq.heapreplace(entries, (current, mailbox_id))
                continue
            return mailbox
        return None

    def choose_for(
        self,
        allowed: frozenset[int] | None,
        recipient_provider: str,
        *,
        allow_warming: bool = False,
        prefer_same_provider: bool = False,
    ) -> MailboxView | None:
        """:meth:`choose` for a recipient whose mail is hosted by ``recipient_provider``
        ("google", "microsoft", "yahoo", "gateway", "other"; "" unknown).

        1. None while that provider's hourly cap across the pool is used up.
        2. With ``prefer_same_provider``, the best mailbox sending through the same provider
           (Gmail trusts mail from Google Workspace more than from elsewhere, Outlook from
           Microsoft 365) when one is eligible;
        3. else the best of all, as :meth:`choose`.
        """
        if self.recipient_provider_left.get(recipient_provider, 1) <= 0:
            return None
        if prefer_same_provider and recipient_provider in self.by_provider:
            same = self.by_provider[recipient_provider]
            members = same if allowed is None else same & allowed
            if members:
                choice = self.choose(members, allow_warming=allow_warming)
                if choice is not None:
                    return choice
        return self.choose(allowed, allow_warming=allow_warming)

    def recipient_provider_used(self, recipient_provider: str, delta: int = 1) -> None:
        """A message to ``recipient_provider`` was claimed (``delta`` -1: given back)."""
        if recipient_provider in self.recipient_provider_left:
            self.recipient_provider_left[recipient_provider] -= delta

    def can_send(self, mailbox_id: int, *, allow_warming: bool) -> bool:
        """For a pinned message: may this very mailbox take it now?"""
        if mailbox_id not in self.mailboxes:
            return False
        return is_eligible(self._view(mailbox_id), self.now, allow_warming=allow_warming)

    def _view(self, mailbox_id: int) -> MailboxView:
        mailbox = self.mailboxes[mailbox_id]
        mailbox.domain_remaining = self.domain_left[mailbox.domain_id]
        return mailbox

    def used(self, mailbox_id: int, next_send_at: datetime | None) -> None:
        """One unit was reserved on this mailbox (and its domain) and its pacing moved on."""
        mailbox = self.mailboxes[mailbox_id]
        mailbox.remaining -= 1
        mailbox.next_send_at = next_send_at
        self.domain_left[mailbox.domain_id] -= 1
        mailbox.domain_remaining = self.domain_left[mailbox.domain_id]

    def unused(self, mailbox_id: int, next_send_at: datetime | None) -> None:
        """Undo :meth:`used`: the reservation was refused, the unit and the pacing slot
        (``next_send_at`` as it was before) are free again.

        A heap may have dropped the mailbox while it looked paced; it goes back into every
        heap it belongs to (a duplicate entry costs one extra look, never a wrong choice).
        """
        mailbox = self.mailboxes[mailbox_id]
        mailbox.remaining += 1
        mailbox.next_send_at = next_send_at
        self.domain_left[mailbox.domain_id] += 1
        view = self._view(mailbox_id)
        entry = (_neg(route_score(view, self.thresholds)), mailbox_id)
        for heap in self._heaps.values():
            member = heap.members is None or mailbox_id in heap.members
            if member and is_eligible(view, self.now, allow_warming=heap.allow_warming):
                heapq.heappush(heap.entries, entry)

    def exhausted(self, mailbox_id: int) -> None:
        """The database refused a reservation on this mailbox: leave it out for this pass."""
        mailbox = self.mailboxes.get(mailbox_id)
        if mailbox is not None:
            mailbox.remaining = 0

    def domain_exhausted(self, domain_id: int) -> None:
        self.domain_left[domain_id] = 0


def _neg(score: tuple[float, int, float, int]) -> tuple[float, int, float, int]:
    # heapq is a min-heap; the best score must come out first.
    return (-score[0], -score[1], -score[2], -score[3])


# --- Sending windows -------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """Days of the week (ISO, 1 = Monday; empty = every day) and local hours [start, end).

    ``end`` at or before ``start`` means the window runs past midnight into the next day.
    """

    days: frozenset[int]
    start: time
    end: time

    @classmethod
    def of(cls, days: Sequence[int], start: time, end: time) -> Window:
        return cls(frozenset(int(d) for d in days), start, end)


def _local(day: date, at: time, tz: tzinfo) -> datetime:
    """The instant a wall clock in ``tz`` shows ``at`` on ``day``.

    A wall time skipped by a DST change (02:30 on the spring-forward night) maps to the first
    instant after the gap (03:00 on the new clock); a repeated one (autumn) to its first
    occurrence.
    """
    naive = datetime.combine(day, at)
    aware = naive.replace(tzinfo=tz, fold=0)
    if aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == naive:
        return aware
    # In the gap: fold=1 names the instant before the jump. Walk forward to the jump; gaps are
    # at most a few hours and only happen twice a year.
    instant = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    for _ in range(24 * 60):
        instant += timedelta(minutes=1)
        if instant.astimezone(tz).replace(tzinfo=None) >= naive:
            break
    return instant.replace(second=0, microsecond=0).astimezone(tz)


def _intervals(day: date, window: Window, tz: tzinfo) -> list[tuple[datetime, datetime]]:
    """The window's opening(s) starting on local ``day``, as aware instants."""
    if window.days and day.isoweekday() not in window.days:
        return []
    start = _local(day, window.start, tz)
    end_day = day if window.end > window.start else day + timedelta(days=1)
    end = _local(end_day, window.end, tz)
    return [(start, end)] if end > start else []


def recipient_zone(lead_zone: str, campaign_zone: str) -> ZoneInfo:
    """The time zone a message's sending window is read in: its lead's, else its campaign's,
    else UTC (a name zoneinfo does not know counts as none)."""
    for name in (lead_zone, campaign_zone):
        if name:
            try:
                return ZoneInfo(name)
            except (KeyError, ValueError):  # ZoneInfoNotFoundError is a KeyError
                continue
    return ZoneInfo("UTC")


def in_window(when: datetime, window: Window, tz: tzinfo) -> bool:
    """Is the aware instant ``when`` inside ``window`` in time zone ``tz``?"""
    local_day = when.astimezone(tz).date()
    for day in (local_day - timedelta(days=1), local_day):
        for start, end in _intervals(day, window, tz):
            if start <= when < end:
                return True
    return False


def next_window_start(after: datetime, window: Window, tz: tzinfo) -> datetime | None:
    """The first instant at or after ``after`` inside ``window`` in ``tz`` (UTC), or None
    when the window never opens (no days).

    ``after`` itself when it is inside the window; otherwise the next opening. Computed on
    local calendar days with zoneinfo, so 09:00 stays 09:00 on the wall clock across DST.
    """
    if in_window(after, window, tz):
        return after.astimezone(UTC)
    local_day = after.astimezone(tz).date()
    for offset in range(0, 8):
        for start, _end in _intervals(local_day + timedelta(days=offset), window, tz):
            if start >= after:
                return start.astimezone(UTC)
    return None


# --- Pacing ----------------------------------------------------------------------------------


def base_gap(limits: Limits, mailbox_gap: int | None) -> int:
    """A mailbox's pacing gap in seconds, before jitter: its own, else the pool's."""
    return limits.pacing_gap_seconds if mailbox_gap is None else mailbox_gap


def pacing_gap(
    limits: Limits, rng: random.Random | None = None, *, mailbox_gap: int | None = None
) -> timedelta:
    """The pause before a mailbox's next send: its gap plus a random jitter in [0, jitter].

    Robotic regularity is a spam signal, hence the jitter; the gap itself is a floor.
    """
    gap = base_gap(limits, mailbox_gap)
    jitter = limits.pacing_jitter_seconds
    extra = (rng or random).uniform(0, jitter) if jitter > 0 else 0.0
    return timedelta(seconds=gap + extra)


# --- Variants --------------------------------------------------------------------------------


def choose_variant(weights: Sequence[tuple[int, int]], seed: str) -> int | None:
    """The id of the variant picked by weight from ``(id, weight)`` pairs, deterministic in
    ``seed`` (the same enrollment and step always get the same variant)."""
    total = sum(max(0, w) for _, w in weights)
    if total <= 0:
        return weights[0][0] if weights else None
    digest = hashlib.sha256(seed.encode()).digest()
    point = int.from_bytes(digest[:8], "big") % total
    for variant_id, weight in weights:
        point -= max(0, weight)
        if point < 0:
            return variant_id
    return weights[-1][0]


# --- Warm-up ---------------------------------------------------------------------------------


def warmup_day(started_on: date, start_day: int, today: date) -> int:
    """Day n of the warm-up schedule on ``today`` (1-based; a re-entry starts above 1)."""
    return (today - started_on).days + start_day


def spread(start: datetime, end: datetime, count: int, rng: random.Random) -> list[datetime]:
    """``count`` instants spread across [start, end): equal slots, a random point in each.

    Evenly spaced sends at the same second every day look automated; one per slot keeps the
    spread without bunching.
    """
    if count <= 0 or end <= start:
        return []
    slot = (end - start) / count
    return [start + slot * i + slot * rng.random() for i in range(count)]


@dataclass(frozen=True)
class GraduationFigures:
    """A warming mailbox's record over the thresholds' window (docs/rules.md, Warm-up)."""

    target: int
    # Units used on each of the most recent days, newest first (today included).
    recent_daily_sends: tuple[int, ...]
    sent: int
    hard_bounces: int
    complaints: int
    blocks: int
    # Messages the recipient's server refused at send time: attempts like ``sent``.
    refused: int = 0

    @property
    def attempts(self) -> int:
        return self.sent + self.refused

    @property
    def bounce_rate(self) -> float:
        return self.hard_bounces / self.attempts if self.attempts else 0.0


def target_volume_reached(
    target: int, recent_daily_sends: Sequence[int], schedule: WarmupSchedule
) -> bool:
    """The first condition of :func:`graduation`: the target volume sent on each of the last
    ``graduation_days_at_target`` days (``recent_daily_sends`` newest first, today included).
    It needs only the daily counters: a mailbox that fails it is not read further."""
    days = max(1, schedule.graduation_days_at_target)
    recent = recent_daily_sends[:days]
    return target > 0 and len(recent) >= days and all(n >= target for n in recent)


def graduation(
    figures: GraduationFigures, schedule: WarmupSchedule, thresholds: Thresholds
) -> tuple[bool, str]:
    """Whether a warming mailbox graduates to ``active``, and why (or why not).

    It must have sent its target volume on the last ``graduation_days_at_target`` days, with
    no complaint, no block, and a hard-bounce rate that the evidence does not put above the
    warning rate (:func:`outreach.pool.policy.bounce_rate_above`, as for active mailboxes).
    """
    if not target_volume_reached(figures.target, figures.recent_daily_sends, schedule):
        days = max(1, schedule.graduation_days_at_target)
        return False, f"target volume {figures.target}/day not reached on the last {days} day(s)"
    if figures.complaints:
        return False, f"{figures.complaints} complaint(s) in the window"
    if figures.blocks:
        return False, f"{figures.blocks} block(s) in the window"
    if bounce_rate_above(
        figures.hard_bounces, figures.attempts, thresholds.bounce_warning_rate, thresholds
    ):
        return False, (
            f"bounce rate {figures.bounce_rate:.1%} of {figures.attempts} attempts is above "
            f"{thresholds.bounce_warning_rate:.1%} on the evidence"
        )
    return True, (
        f"reached {figures.target}/day with no complaint, no block and "
        f"{figures.bounce_rate:.1%} bounces over {thresholds.window_days} days"
    )
