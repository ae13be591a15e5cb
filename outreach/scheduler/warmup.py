"""The warm-up loop: warming mailboxes send their day's volume to the seed addresses, and
graduate to ``active`` by the rule of docs/rules.md (Warm-up).

Warm-up messages are ``Message(kind="warmup")`` pinned to their mailbox, spread across the
warm-up window of the pool's day, and claimed like any other message: they reserve the
mailbox, domain and global caps, so warm-up and campaign mail together never exceed the
mailbox's warm-up cap. A warm-up message not sent by the end of its day is cancelled.

Content: :func:`warmup_content` gives the subject and plain-text body of a warm-up message
(the sending engine renders warm-up mail with it). The built-in set is short, plain and
low-risk; ``OUTREACH_WARMUP_CONTENT_FILE`` may point at a JSON list of
``{"subject": ..., "text": ...}`` objects to use instead.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q

from outreach.campaigns.models import Message
from outreach.pool.models import Domain, Mailbox, PoolSettings
from outreach.pool.states import transition_mailbox
from outreach.scheduler import evidence, routing
from outreach.scheduler.counters import pool_day
from outreach.scheduler.models import DailyCounter

log = logging.getLogger(__name__)

# Warm-up mail goes out during the pool's working hours, every day: a mailbox that only
# "talks" at night or in one burst does not look like a person.
WINDOW = routing.Window.of([], time(8, 0), time(18, 0))
ACTOR = "rule:warmup_graduation"


@dataclass(frozen=True)
class WarmupContent:
    subject: str
    text: str


BUILT_IN: tuple[WarmupContent, ...] = (
    WarmupContent("Quick check-in", "Hi,\n\nJust checking in to see how your week is going.\n"),
    WarmupContent(
        "Notes from today",
        "Hi,\n\nThanks for the chat earlier. I wrote down the main points and will send\n"
        "a short summary tomorrow.\n",
    ),
    WarmupContent(
        "Coffee next week?",
        "Hello,\n\nWould you have time for a coffee next week? Tuesday or Thursday both\n"
        "work for me.\n",
    ),
    WarmupContent(
        "Re: the document",
        "Hi,\n\nI had a look at the document, it reads well. Two small comments on the\n"
        "second page, nothing urgent.\n",
    ),
    WarmupContent(
        "Thanks!",
        "Hi,\n\nThank you for the help yesterday, it saved me a lot of time.\n",
    ),
    WarmupContent(
        "Agenda for Monday",
        "Hello,\n\nHere is what I would like to cover on Monday: the schedule, the budget\n"
        "and next steps. Anything to add?\n",
    ),
)


@lru_cache(maxsize=4)
def _load_content(path: str) -> tuple[WarmupContent, ...]:
    items = json.loads(Path(path).read_text())
    content = tuple(WarmupContent(str(i["subject"]), str(i["text"])) for i in items)
    if not content:
        raise ValueError(f"{path}: no warm-up messages")
    return content


def content_set() -> tuple[WarmupContent, ...]:
    path = getattr(settings, "OUTREACH_WARMUP_CONTENT_FILE", "")
    return _load_content(str(path)) if path else BUILT_IN


def warmup_content(message: Message) -> WarmupContent:
    """The subject and plain-text body of a warm-up message: the entry whose subject the
    message carries (chosen when it was planned), else one picked by its id."""
    contents = content_set()
    for item in contents:
        if item.subject == message.subject:
            return item
    return contents[(message.pk or 0) % len(contents)]


def seed_addresses(pool: PoolSettings) -> list[str]:
    """The configured seeds: plain addresses, or objects with an ``address`` (and the IMAP
    access of their placement checks, read by outreach.events.seeds)."""
    seeds = []
    for item in pool.seed_addresses or []:
        address = item.get("address", "") if isinstance(item, dict) else str(item)
        if address and "@" in address:
            seeds.append(address.strip().lower())
    return seeds


@dataclass
class WarmupReport:
    planned: int = 0
    graduated: int = 0
    expired: int = 0


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The pool day as [start, end) instants."""
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return start, end


def plan_warmup(now: datetime, rng: random.Random | None = None) -> WarmupReport:
    """Plan today's warm-up messages of every warming mailbox (idempotent within a day).

    Each mailbox gets ``cap_today`` messages for the pool day, minus those already planned,
    spread across what is left of today's warm-up window, round-robin over the seeds.
    """
    rng = rng or random.Random()
    report = WarmupReport()
    pool = PoolSettings.load()
    tz = ZoneInfo(pool.timezone)
    day = now.astimezone(tz).date()
    seeds = seed_addresses(pool)
    start_of_day, _ = day_bounds(day, tz)
    window_start = routing.next_window_start(start_of_day, WINDOW, tz)
    window_end = datetime.combine(day, WINDOW.end, tzinfo=tz)
    # Yesterday's unsent warm-up mail is not carried over: a day's volume is a day's.
    report.expired = Message.objects.filter(
        kind=Message.Kind.WARMUP, state=Message.State.SCHEDULED, not_before__lt=start_of_day
    ).update(state=Message.State.CANCELLED, last_error="warm-up day over", updated_at=now)
    Mailbox.objects.filter(state=Mailbox.State.WARMING, warmup_started_on__isnull=True).update(
        warmup_started_on=day
    )
    if not seeds:
        return report
    with transaction.atomic():
        # Race prevented: two schedulers both count "0 planned today" and both plan the
        # day's warm-up mail. Locking the warming mailboxes' rows first (PostgreSQL; SQLite's
        # IMMEDIATE transactions already serialize writers) makes the second one wait and
        # then count what the first planned.
        warming = list(
            Mailbox.objects.filter(state=Mailbox.State.WARMING, domain__state=Domain.State.ACTIVE)
            .select_related("domain")
            .select_for_update(of=("self",))
            .order_by("pk")
        )
        report.planned = _plan_for(warming, pool, day, now, window_start, window_end, seeds, rng)
    return report


def _plan_for(
    warming: list[Mailbox],
    pool: PoolSettings,
    day: date,
    now: datetime,
    window_start: datetime | None,
    window_end: datetime,
    seeds: list[str],
    rng: random.Random,
) -> int:
    """Create the warm-up messages ``warming`` still lack today; how many were created."""
    start_of_day, end_of_day = day_bounds(day, ZoneInfo(pool.timezone))
    planned_today = dict(
        Message.objects.filter(
            kind=Message.Kind.WARMUP,
            pinned_mailbox__in=warming,
            not_before__gte=start_of_day,
            not_before__lt=end_of_day,
        )
        .exclude(state=Message.State.CANCELLED)
        .values("pinned_mailbox_id")
        .annotate(n=Count("pk"))
        .values_list("pinned_mailbox_id", "n")
    )
    contents = content_set()
    new: list[Message] = []
    for mailbox in warming:
        todo = mailbox.cap_today(pool, day) - planned_today.get(mailbox.pk, 0)
        if todo <= 0 or window_start is None:
            continue
        times = spread(max(now, window_start), window_end, todo, rng)
        for i, at in enumerate(times):
            seed = seeds[(mailbox.pk + i) % len(seeds)]
            content = contents[rng.randrange(len(contents))]
            new.append(
                Message(
                    kind=Message.Kind.WARMUP,
                    to_email=seed,
                    to_domain=seed.rpartition("@")[2],
                    pinned_mailbox=mailbox,
                    subject=content.subject,
                    state=Message.State.SCHEDULED,
                    not_before=at,
                    expires_at=end_of_day,
                    created_at=now,
                    updated_at=now,
                )
            )
    Message.objects.bulk_create(new, batch_size=500)
    return len(new)


def spread(start: datetime, end: datetime, count: int, rng: random.Random) -> list[datetime]:
    return routing.spread(start, end, count, rng)


def recent_daily_sends(
    mailboxes: Sequence[Mailbox], pool: PoolSettings, now: datetime
) -> dict[int, tuple[int, ...]]:
    """Units each mailbox used on its recent pool days, newest first (today included), as
    many days as graduation looks at: one query for all of them."""
    today = pool_day(now, pool)
    days = [today - timedelta(days=i) for i in range(max(1, pool.warmup.graduation_days_at_target))]
    used = {
        (key, day): n
        for key, day, n in DailyCounter.objects.filter(
            scope=DailyCounter.Scope.MAILBOX,
            key__in=[str(m.pk) for m in mailboxes],
            day__in=days,
        ).values_list("key", "day", "used")
    }
    return {m.pk: tuple(used.get((str(m.pk), d), 0) for d in days) for m in mailboxes}


def graduation_figures(
    mailbox: Mailbox, pool: PoolSettings, now: datetime, recent: tuple[int, ...]
) -> routing.GraduationFigures:
    """A warming mailbox's record: ``recent`` (its :func:`recent_daily_sends`), and sends,
    hard bounces, complaints and blocks over the thresholds' window (from the raw tables)."""
    since = now - timedelta(days=pool.thresholds.window_days)
    counts = evidence.outcome_counts(mailbox.pk, since)
    return routing.GraduationFigures(
        target=mailbox.target_cap(pool.limits),
        recent_daily_sends=recent,
        sent=Message.objects.filter(
            mailbox=mailbox, state=Message.State.SENT, sent_at__gte=since
        ).count(),
        hard_bounces=counts.hard_bounces,
        complaints=counts.complaints,
        blocks=counts.blocks,
        refused=counts.refused,
    )


def graduate(now: datetime) -> int:
    """Move every warming mailbox that meets the rule to ``active``, with the figures in the
    audit log; its remaining warm-up mail for today is cancelled.

    The volume is checked first, from the daily counters alone: the events of a mailbox
    still below its target (most of warm-up) are not read."""
    pool = PoolSettings.load()
    graduated = 0
    warming = list(Mailbox.objects.filter(state=Mailbox.State.WARMING).select_related("domain"))
    recent = recent_daily_sends(warming, pool, now)
    for mailbox in warming:
        target = mailbox.target_cap(pool.limits)
        if not routing.target_volume_reached(target, recent[mailbox.pk], pool.warmup):
            continue
        figures = graduation_figures(mailbox, pool, now, recent[mailbox.pk])
        ok, reason = routing.graduation(figures, pool.warmup, pool.thresholds)
        if not ok:
            continue
        change = transition_mailbox(
            mailbox,
            Mailbox.State.ACTIVE,
            reason=f"warm-up complete: {reason}",
            actor=ACTOR,
            figures={
                "target": figures.target,
                "recent_daily_sends": list(figures.recent_daily_sends),
                "sent": figures.sent,
                "refused": figures.refused,
                "hard_bounces": figures.hard_bounces,
                "bounce_rate": round(figures.bounce_rate, 4),
                "complaints": figures.complaints,
                "blocks": figures.blocks,
                "window_days": pool.thresholds.window_days,
            },
        )
        if change is None:
            continue
        graduated += 1
        log.info("mailbox %s graduated from warm-up: %s", mailbox.address, reason)
        Message.objects.filter(
            Q(pinned_mailbox=mailbox),
            kind=Message.Kind.WARMUP,
            state=Message.State.SCHEDULED,
        ).update(state=Message.State.CANCELLED, last_error="mailbox graduated", updated_at=now)
    return graduated
