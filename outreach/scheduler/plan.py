"""Capacity planner: how many mailboxes and domains a daily target needs, the first day today's
pool reaches it, what to buy to reach it by a date, and when each warming mailbox graduates.

The projection walks the days ahead with the rules the control plane and the simulator use,
never copies of them: each mailbox's cap on a day is :func:`outreach.pool.policy.warmup_cap`
on its warm-up day (``active`` mailboxes at their target), a domain's and the pool's capacity
are :func:`outreach.scheduler.capacity.domain_capacity` and
:func:`~outreach.scheduler.capacity.pool_capacity`, and a cooldown ends as
:func:`outreach.alerts.rules` ends it: back to warm-up at the schedule's re-entry day.

It assumes a clean record ahead (no new pause, no complaint): it answers "how soon at best",
which is what a purchase is planned on. Paused mailboxes and DNS-held domains stay at 0: they
wait for a person.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from outreach.lib import clock
from outreach.pool.models import Domain, Mailbox, PoolSettings
from outreach.pool.policy import Limits, WarmupSchedule
from outreach.pool.policy import warmup_cap as _warmup_cap
from outreach.scheduler.capacity import domain_capacity, domain_holds, pool_capacity

# The projection asks the schedule for the same (day, target) pairs for every mailbox and
# every day ahead; the rule is pure, so its answers are kept.
warmup_cap = functools.lru_cache(maxsize=4096)(_warmup_cap)

# How far ahead the planner looks for the first day a target is reached.
HORIZON_DAYS = 180
# Mailboxes per bought domain: two to three (docs/rules.md, Pool).
DEFAULT_MAILBOXES_PER_DOMAIN = 3


@dataclass(frozen=True)
class PlannedMailbox:
    address: str
    domain: str
    state: str
    target: int
    # Warming: the warm-up day it is on today. Cooldown: None.
    warmup_day_today: int | None = None
    # Cooldown: the pool day it re-enters warm-up (at the schedule's re-entry day).
    rewarms_on: date | None = None


@dataclass(frozen=True)
class PlannedDomain:
    name: str
    cap: int
    # A domain that cannot send (cooldown, DNS, paused…); ``resumes_on`` when a cooldown ends.
    held: str = ""
    resumes_on: date | None = None


@dataclass(frozen=True)
class Pool:
    """The pool as the planner sees it: plain values, no database."""

    today: date
    limits: Limits
    warmup: WarmupSchedule
    domains: tuple[PlannedDomain, ...]
    mailboxes: tuple[PlannedMailbox, ...]


def mailbox_cap(mb: PlannedMailbox, day: date, pool: Pool) -> int:
    """One mailbox's cap on ``day`` (today or later), assuming a clean record ahead."""
    if mb.state == Mailbox.State.ACTIVE:
        return mb.target
    if mb.state == Mailbox.State.WARMING and mb.warmup_day_today is not None:
        n = mb.warmup_day_today + (day - pool.today).days
        return warmup_cap(n, pool.warmup, target=mb.target)
    if mb.state == Mailbox.State.COOLDOWN and mb.rewarms_on is not None and day >= mb.rewarms_on:
        n = pool.warmup.reentry_day + (day - mb.rewarms_on).days
        return warmup_cap(n, pool.warmup, target=mb.target)
    return 0


def capacity_on(day: date, pool: Pool) -> int:
    """What the whole pool may send on ``day``."""
    return capacity_curve(pool)(day)


def capacity_curve(pool: Pool) -> Callable[[date], int]:
    """:func:`capacity_on` for many days of one pool, each day computed once: the caps of
    mailboxes that do not change with the day (active, paused, retired) are summed per
    domain once, and only warming and cooling mailboxes are projected day by day."""
    moving = (Mailbox.State.WARMING, Mailbox.State.COOLDOWN)
    fixed: dict[str, int] = {d.name: 0 for d in pool.domains}
    changing: list[PlannedMailbox] = []
    for mb in pool.mailboxes:
        if mb.state in moving:
            changing.append(mb)
        else:
            fixed[mb.domain] = fixed.get(mb.domain, 0) + mailbox_cap(mb, pool.today, pool)

    @functools.cache
    def on(day: date) -> int:
        by_domain = dict(fixed)
        for mb in changing:
            by_domain[mb.domain] = by_domain.get(mb.domain, 0) + mailbox_cap(mb, day, pool)
        capacities = []
        for d in pool.domains:
            held = d.held if d.resumes_on is None or day < d.resumes_on else ""
            capacities.append(domain_capacity(d.cap, [by_domain[d.name]], held=held))
        return pool_capacity(capacities, pool.limits.global_daily_cap)

    return on


def first_day_reached(
    pool: Pool,
    target: int,
    horizon: int = HORIZON_DAYS,
    curve: Callable[[date], int] | None = None,
) -> date | None:
    """The first pool day whose capacity reaches ``target``; None within the horizon."""
    capacity = curve or capacity_curve(pool)
    for k in range(horizon + 1):
        day = pool.today + timedelta(days=k)
        if capacity(day) >= target:
            return day
    return None


def graduation_day(mb: PlannedMailbox, pool: Pool) -> date | None:
    """The day a warming mailbox can graduate with a clean record: the last of the
    ``graduation_days_at_target`` days on which its cap reaches its target
    (:func:`outreach.scheduler.routing.graduation`)."""
    if mb.state != Mailbox.State.WARMING or mb.warmup_day_today is None or mb.target <= 0:
        return None
    for k in range(HORIZON_DAYS + 1):
        if warmup_cap(mb.warmup_day_today + k, pool.warmup, target=mb.target) >= mb.target:
            extra = max(1, pool.warmup.graduation_days_at_target) - 1
            return pool.today + timedelta(days=k + extra)
    return None


@dataclass(frozen=True)
class Needs:
    """What a target needs once every mailbox is warm, under today's caps."""

    mailboxes: int
    domains: int
    # The target is above the global cap: no pool can reach it.
    over_global_cap: bool


def needs(target: int, limits: Limits, per_domain: int = DEFAULT_MAILBOXES_PER_DOMAIN) -> Needs:
    """Pure: mailboxes and domains for ``target`` a day, each mailbox at the mailbox cap and
    each domain holding ``per_domain`` of them within the domain cap."""
    per_mailbox = max(1, limits.mailbox_daily_cap)
    per_domain_capacity = min(limits.domain_daily_cap, per_domain * per_mailbox)
    mailboxes = math.ceil(target / per_mailbox)
    by_cap = math.ceil(target / max(1, per_domain_capacity))
    domains = max(by_cap, math.ceil(mailboxes / per_domain))
    return Needs(mailboxes, domains, target > limits.global_daily_cap)


@dataclass(frozen=True)
class Purchase:
    """New mailboxes (on new domains) that start warm-up on ``starts_on``."""

    mailboxes: int
    domains: int
    starts_on: date
    capacity_by: int


def to_buy(
    pool: Pool,
    target: int,
    by: date,
    *,
    starts_on: date | None = None,
    per_domain: int = DEFAULT_MAILBOXES_PER_DOMAIN,
) -> Purchase | None:
    """The fewest new mailboxes, ``per_domain`` to a new domain, warming from ``starts_on``
    (default tomorrow: a bought mailbox needs its DNS first), that bring the capacity on
    ``by`` to ``target``. None when no number can (above the global cap, or ``by`` too soon
    for any warm-up to count)."""
    start = starts_on or pool.today + timedelta(days=1)
    if capacity_on(by, pool) >= target:
        return Purchase(0, 0, start, capacity_on(by, pool))
    if target > pool.limits.global_daily_cap or by < start:
        return None
    first_day = 1 + (pool.today - start).days  # warm-up day today of a mailbox starting then
    per_new = warmup_cap(
        first_day + (by - pool.today).days, pool.warmup, target=pool.limits.mailbox_daily_cap
    )
    if per_new <= 0:
        return None
    # The projection decides (domain and global caps bind too); the estimate only bounds it.
    limit = math.ceil(target / per_new) + per_domain
    for n in range(1, limit + 1):
        bought = _with_new_mailboxes(pool, n, first_day, per_domain)
        reached = capacity_on(by, bought)
        if reached >= target:
            return Purchase(n, math.ceil(n / per_domain), start, reached)
    return None


def _with_new_mailboxes(pool: Pool, n: int, first_day: int, per_domain: int) -> Pool:
    count = math.ceil(n / per_domain)
    domains = [PlannedDomain(f"new-{i + 1}", pool.limits.domain_daily_cap) for i in range(count)]
    mailboxes = [
        PlannedMailbox(
            address=f"new-{i + 1}",
            domain=domains[i // per_domain].name,
            state=Mailbox.State.WARMING,
            target=pool.limits.mailbox_daily_cap,
            warmup_day_today=first_day,
        )
        for i in range(n)
    ]
    return replace(
        pool, domains=pool.domains + tuple(domains), mailboxes=pool.mailboxes + tuple(mailboxes)
    )


@dataclass
class Plan:
    target: int
    today: date
    capacity_today: int
    needs: Needs
    have_mailboxes: int
    have_domains: int
    reached_on: date | None
    by: date | None = None
    purchase: Purchase | None = None
    graduations: list[tuple[str, date | None]] = field(default_factory=list)
    # Capacity on each of the next days (today first), for the chart and the comparison.
    capacities: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "today": self.today.isoformat(),
            "capacity_today": self.capacity_today,
            "needs": {
                "mailboxes": self.needs.mailboxes,
                "domains": self.needs.domains,
                "over_global_cap": self.needs.over_global_cap,
            },
            "have": {"mailboxes": self.have_mailboxes, "domains": self.have_domains},
            "reached_on": self.reached_on.isoformat() if self.reached_on else None,
            "by": self.by.isoformat() if self.by else None,
            "buy": None
            if self.purchase is None
            else {
                "mailboxes": self.purchase.mailboxes,
                "domains": self.purchase.domains,
                "starts_warmup_on": self.purchase.starts_on.isoformat(),
                "capacity_by": self.purchase.capacity_by,
            },
            "graduations": [
                {"mailbox": a, "on": d.isoformat() if d else None} for a, d in self.graduations
            ],
            "capacities": self.capacities,
        }


def make_plan(
    pool: Pool,
    target: int,
    *,
    by: date | None = None,
    per_domain: int = DEFAULT_MAILBOXES_PER_DOMAIN,
    days: int = 30,
) -> Plan:
    """Every answer of the planner for ``target`` a day (pure)."""
    live = [m for m in pool.mailboxes if m.state != Mailbox.State.RETIRED]
    curve = capacity_curve(pool)
    return Plan(
        target=target,
        today=pool.today,
        capacity_today=curve(pool.today),
        needs=needs(target, pool.limits, per_domain),
        have_mailboxes=len(live),
        have_domains=len({m.domain for m in live}),
        reached_on=first_day_reached(pool, target, curve=curve),
        by=by,
        purchase=to_buy(pool, target, by, per_domain=per_domain) if by else None,
        graduations=[
            (m.address, graduation_day(m, pool))
            for m in pool.mailboxes
            if m.state == Mailbox.State.WARMING
        ],
        capacities=[curve(pool.today + timedelta(days=k)) for k in range(days)],
    )


def describe(p: Plan) -> list[str]:
    """The plan in sentences, as the command and the dashboard panel say it."""
    lines = [
        f"Target {p.target}/day; capacity today {p.capacity_today}/day "
        f"({p.have_mailboxes} mailboxes on {p.have_domains} domains).",
        f"Needs, once warm: {p.needs.mailboxes} mailboxes on {p.needs.domains} domains.",
    ]
    if p.needs.over_global_cap:
        lines.append("The target is above the global daily cap: raise the cap first.")
    if p.reached_on:
        lines.append(f"Today's pool reaches it on {p.reached_on}.")
    else:
        lines.append(f"Today's pool does not reach it within {HORIZON_DAYS} days.")
    if p.by is not None:
        if p.purchase is None:
            lines.append(f"No purchase reaches it by {p.by}: too soon for warm-up, or over caps.")
        elif p.purchase.mailboxes == 0:
            lines.append(f"By {p.by}: nothing to buy ({p.purchase.capacity_by}/day).")
        else:
            lines.append(
                f"By {p.by}: buy {p.purchase.mailboxes} mailboxes on {p.purchase.domains} new "
                f"domains, warming from {p.purchase.starts_on} ({p.purchase.capacity_by}/day)."
            )
    for address, day in p.graduations:
        lines.append(f"  {address} graduates on {day or 'not within the horizon'}")
    return lines


# The database side --------------------------------------------------------------------------


def load_pool(today: date | None = None) -> Pool:
    """Today's pool from the database: three queries plus the DNS holds."""
    settings = PoolSettings.load()
    tz = ZoneInfo(settings.timezone)
    day = today or clock.today(settings.timezone)
    limits = settings.limits
    holds = domain_holds()
    domains = []
    names: dict[int, str] = {}
    for d in Domain.objects.order_by("name"):
        names[d.pk] = d.name
        resumes = None
        if d.state == Domain.State.COOLDOWN and d.cooldown_until is not None:
            resumes = d.cooldown_until.astimezone(tz).date()
            # Held by the cooldown only: a DNS hold (or another state) keeps it at 0.
            if holds.get(d.pk, "").startswith("DNS"):
                resumes = None
        domains.append(PlannedDomain(d.name, d.cap(limits), holds.get(d.pk, ""), resumes))
    mailboxes = []
    for m in Mailbox.objects.order_by("address"):
        warm_day = None
        rewarms = None
        if m.state == Mailbox.State.WARMING and m.warmup_started_on is not None:
            warm_day = (day - m.warmup_started_on).days + m.warmup_start_day
        if m.state == Mailbox.State.COOLDOWN and m.cooldown_until is not None:
            rewarms = max(day, m.cooldown_until.astimezone(tz).date())
        mailboxes.append(
            PlannedMailbox(
                address=m.address,
                domain=names[m.domain_id],
                state=m.state,
                target=m.target_cap(limits),
                warmup_day_today=warm_day,
                rewarms_on=rewarms,
            )
        )
    return Pool(day, limits, settings.warmup, tuple(domains), tuple(mailboxes))
