"""One simulated day read back as an operator reads it, and every cap checked against the
messages that actually reached the provider that day (:func:`close_day`); the campaign's
finish date once the days are over (:func:`finish_date`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Count, Sum

from outreach.campaigns.models import Campaign, Enrollment, Message, Step
from outreach.lib import clock
from outreach.pool.models import Domain, Mailbox, PoolSettings, StateChange
from outreach.pool.policy import Limits
from outreach.scheduler import evidence, routing
from outreach.scheduler.capacity import domain_capacity, pool_capacity
from outreach.scheduler.forecast import finish_day

PENDING_STATES = (
    Message.State.SCHEDULED,
    Message.State.CLAIMED,
    Message.State.SENDING,
    Message.State.RETRY,
)
OUT_OF_SERVICE = (Mailbox.State.PAUSED, Mailbox.State.COOLDOWN, Mailbox.State.RETIRED)
# Per mailbox, day by day: sends, cap and state (the ramp chart of the report).
Ramp = dict[int, dict[str, list[Any]]]


@dataclass(frozen=True)
class DayBounds:
    """A pool day and the instants it starts and ends (UTC)."""

    day: date
    start: datetime
    end: datetime


@dataclass(frozen=True)
class _Pool:
    """The pool as it stands at the end of the day."""

    limits: Limits
    mailboxes: dict[int, Mailbox]
    domains: dict[int, Domain]
    campaigns: dict[int, Campaign]

    @classmethod
    def read(cls) -> _Pool:
        return cls(
            limits=PoolSettings.load().limits,
            mailboxes={m.pk: m for m in Mailbox.objects.select_related("domain")},
            domains={d.pk: d for d in Domain.objects.all()},
            campaigns={c.pk: c for c in Campaign.objects.all()},
        )


def close_day(
    bounds: DayBounds,
    *,
    caps_at_start: dict[int, int],
    caps_at_end: dict[int, int],
    campaign: Campaign,
    ramp: Ramp,
) -> dict[str, Any]:
    """The day's figures; appends each mailbox's sends, cap and state to ``ramp``."""
    pool = _Pool.read()
    sent_rows = _sent_rows(bounds)
    sends = _send_records(sent_rows, pool)
    by_mailbox = Counter(mailbox_id for mailbox_id, *_ in sent_rows)
    # A mailbox paused during the day had its full cap before: the larger of the two.
    mailbox_caps = {
        pk: max(caps_at_start.get(pk, 0), caps_at_end.get(pk, 0)) for pk in pool.mailboxes
    }
    exceeded = caps_exceeded(sends, _day_caps(pool, mailbox_caps))
    campaign_sent = sum(1 for send in sends if send.campaign is not None)
    capacity = _capacity(pool, caps_at_start)
    pauses, graduated = _state_changes(bounds)
    outcomes = evidence.day_outcomes(bounds.start, bounds.end)
    _extend_ramp(ramp, pool, by_mailbox, mailbox_caps)
    sent = len(sent_rows)
    states = Counter(m.state for m in pool.mailboxes.values())
    return {
        "date": bounds.day.isoformat(),
        "weekday": bounds.day.strftime("%a"),
        "capacity": capacity,
        "sent": sent,
        "campaign_sent": campaign_sent,
        "warmup_sent": sent - campaign_sent,
        "utilization": round(sent / capacity, 4) if capacity else 0.0,
        "sent_by_mailbox_max": max(by_mailbox.values(), default=0),
        "cap_exceeded": len(exceeded),
        "cap_exceeded_details": exceeded,
        "mailboxes_by_state": dict(sorted(states.items())),
        "pauses": pauses,
        "graduated": graduated,
        "delivered": outcomes.get("delivered", 0),
        "hard_bounces": outcomes.get("hard_bounces", 0),
        "complaints": outcomes.get("complaints", 0),
        "enrollments_active": Enrollment.objects.filter(
            campaign=campaign, state=Enrollment.State.ACTIVE
        ).count(),
        "campaign_pending": _campaign_remaining(campaign),
    }


def _sent_rows(bounds: DayBounds) -> list[tuple[int, str, int | None, str]]:
    """(mailbox, kind, campaign, recipient domain) of every message sent that day."""
    return list(
        Message.objects.filter(sent_at__gte=bounds.start, sent_at__lt=bounds.end).values_list(
            "mailbox_id", "kind", "campaign_id", "to_domain"
        )
    )


def _send_records(rows: list[tuple[int, str, int | None, str]], pool: _Pool) -> list[SendRecord]:
    mailboxes, campaigns = pool.mailboxes, pool.campaigns
    return [
        SendRecord(
            mailbox=mailboxes[mailbox_id].address,
            domain=mailboxes[mailbox_id].domain.name,
            campaign=campaigns[campaign_id].slug
            if kind == Message.Kind.CAMPAIGN and campaign_id is not None
            else None,
            to_domain=to_domain,
        )
        for mailbox_id, kind, campaign_id, to_domain in rows
    ]


def _day_caps(pool: _Pool, mailbox_caps: dict[int, int]) -> DayCaps:
    limits = pool.limits
    return DayCaps(
        mailbox={m.address: mailbox_caps[pk] for pk, m in pool.mailboxes.items()},
        domain={d.name: d.cap(limits) for d in pool.domains.values()},
        total=limits.global_daily_cap,
        campaign={
            c.slug: c.daily_cap if c.daily_cap is not None else limits.campaign_daily_cap
            for c in pool.campaigns.values()
        },
        recipient_domain=limits.recipient_domain_daily_cap,
    )


def _capacity(pool: _Pool, caps_at_start: dict[int, int]) -> int:
    """What the pool could send today, by the rule `outreach status` and the dashboard use,
    from the mailboxes' caps at the start of the day."""
    per_domain: Counter[int] = Counter()
    for pk, mailbox in pool.mailboxes.items():
        per_domain[mailbox.domain_id] += caps_at_start.get(pk, 0)
    return pool_capacity(
        (domain_capacity(pool.domains[pk].cap(pool.limits), [n]) for pk, n in per_domain.items()),
        pool.limits.global_daily_cap,
    )


def _state_changes(bounds: DayBounds) -> tuple[list[dict[str, str]], list[str]]:
    """The day's pauses (with who and why) and the mailboxes that graduated."""
    changes = list(
        StateChange.objects.filter(at__gte=bounds.start, at__lt=bounds.end)
        .exclude(mailbox=None, domain=None)
        .select_related("mailbox", "domain")
        .order_by("at", "id")
    )
    pauses = [
        {
            "mailbox": c.mailbox.address if c.mailbox else "",
            "domain": c.domain.name if c.domain else "",
            "to_state": c.to_state,
            "reason": c.reason,
            "actor": c.actor,
            "at": c.at.isoformat(),
        }
        for c in changes
        if c.to_state in OUT_OF_SERVICE
    ]
    graduated = [
        c.mailbox.address
        for c in changes
        if c.mailbox and c.from_state == Mailbox.State.WARMING and c.to_state == "active"
    ]
    return pauses, graduated


def _extend_ramp(
    ramp: Ramp, pool: _Pool, by_mailbox: Counter[int], mailbox_caps: dict[int, int]
) -> None:
    for pk, mailbox in pool.mailboxes.items():
        row = ramp[pk]
        row["sent"].append(by_mailbox.get(pk, 0))
        row["cap"].append(mailbox_caps.get(pk, 0))
        row["states"].append(mailbox.state)


@dataclass(frozen=True)
class SendRecord:
    """One message that reached the provider: who sent it, for which campaign (None: warm-up),
    to which company domain."""

    mailbox: str
    domain: str
    campaign: str | None
    to_domain: str


@dataclass(frozen=True)
class DayCaps:
    """Every cap of one pool day by subject (None: not capped)."""

    mailbox: dict[str, int]
    domain: dict[str, int]
    total: int
    campaign: dict[str, int | None]
    recipient_domain: int | None


def caps_exceeded(sends: list[SendRecord], caps: DayCaps) -> list[str]:
    """Each cap that the day's actual sends went over, as "scope subject: sent > cap".

    Independent of the counters the claims reserve: it counts what reached the provider, so a
    reservation bug would show here instead of being trusted. Campaign and recipient-domain
    caps count campaign mail only (warm-up goes to seeds, not to companies).
    """
    counts: dict[str, Counter[str]] = {
        "mailbox": Counter(s.mailbox for s in sends),
        "domain": Counter(s.domain for s in sends),
        "campaign": Counter(s.campaign for s in sends if s.campaign is not None),
        "recipient domain": Counter(s.to_domain for s in sends if s.campaign is not None),
    }
    limits: dict[str, Callable[[str], int | None]] = {
        "mailbox": lambda key: caps.mailbox.get(key, 0),
        "domain": lambda key: caps.domain.get(key, 0),
        "campaign": lambda key: caps.campaign.get(key),
        "recipient domain": lambda key: caps.recipient_domain,
    }
    found = [f"global: {len(sends)} > {caps.total}"] if len(sends) > caps.total else []
    for scope, counter in counts.items():
        for key, n in sorted(counter.items()):
            cap = limits[scope](key)
            if cap is not None and n > cap:
                found.append(f"{scope} {key}: {n} > {cap}")
    return found


def _campaign_remaining(campaign: Campaign) -> int:
    """Messages the campaign still has to send: planned and not sent yet, plus the steps its
    active enrollments have not planned."""
    steps = Step.objects.filter(campaign=campaign).count()
    pending = Message.objects.filter(
        campaign=campaign, kind=Message.Kind.CAMPAIGN, state__in=PENDING_STATES
    ).count()
    # Summed in the database: a large simulation has hundreds of thousands of enrollments.
    active = Enrollment.objects.filter(campaign=campaign, state=Enrollment.State.ACTIVE).aggregate(
        n=Count("pk"), done=Sum("last_step")
    )
    unplanned = steps * active["n"] - (active["done"] or 0)
    return pending + unplanned


def finish_date(
    campaign: Campaign, days: list[dict[str, Any]], tz: ZoneInfo
) -> tuple[date | None, bool]:
    """The pool day the campaign sent its last message, and whether it is a projection.

    Inside the simulation: the last day on which campaign mail left, once nothing is pending.
    Beyond it, the later of (1) the remaining messages at the recent pace (campaign sends per
    window day over the last five window days that sent) and (2) the sequence itself: the
    latest active enrollment still has its remaining steps' delays to wait.
    """
    if not days:
        return None, False
    if days[-1]["campaign_pending"] == 0:
        sent_days = [d["date"] for d in days if d["campaign_sent"]]
        return (date.fromisoformat(sent_days[-1]) if sent_days else None), False
    window = set(campaign.window_days or range(1, 8))
    recent = [d["campaign_sent"] for d in days if d["campaign_sent"]][-5:]
    if not recent:
        return None, True
    pace = sum(recent) / len(recent)
    after = date.fromisoformat(days[-1]["date"]) + timedelta(days=1)
    day = finish_day(days[-1]["campaign_pending"], pace, after, window)
    if day is None:
        return None, True
    steps = list(Step.objects.filter(campaign=campaign).order_by("position"))
    latest = day
    delays = {s.position: timedelta(days=s.delay_days, hours=s.delay_hours) for s in steps}
    # Each distinct (step, due) once: most enrollments share theirs with many others.
    for last_step, due in (
        Enrollment.objects.filter(campaign=campaign, state=Enrollment.State.ACTIVE)
        .values_list("last_step", "next_due_at")
        .order_by()
        .distinct()
    ):
        base = due or clock.now()
        rest = sum((delays[p] for p in range(last_step + 2, len(steps) + 1)), timedelta())
        opens = routing.next_window_start(
            base + rest,
            routing.Window.of(campaign.window_days, campaign.window_start, campaign.window_end),
            ZoneInfo(campaign.timezone or "UTC"),
        )
        if opens is not None:
            latest = max(latest, opens.astimezone(tz).date())
    return latest, True
