"""``outreach simulate``: the real control plane on a simulated clock, day by day.

The pool of a configuration file, a campaign and generated leads go into a database; then the
clock (:mod:`outreach.lib.clock`) jumps from one moment where something can happen to the
next, and at each one the scheduler's complete pass (:func:`outreach.scheduler.engine.run_pass`:
leases, planning, warm-up, graduation, health rules, routing and claiming, the sending engine)
runs exactly as in production. Messages go to the simulated provider
(:mod:`outreach.providers.simulated`), whose deliveries, hard bounces and complaints come back
through the real events code. Nothing here decides anything the engine would decide.

Every day is then read back from the database as an operator would see it: capacity, sends,
utilization, mailboxes by state, pauses and why, and each cap checked against the sends that
actually reached the provider (``cap_exceeded`` must be 0; it is computed, not assumed).

:func:`simulate` works on the current database (tests run it in theirs);
:func:`throwaway_database` gives the command a fresh SQLite file so the operator's database is
never touched.
"""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
import time as _time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connections, transaction
from django.db.models import Min

from outreach.campaigns import config as campaign_config
from outreach.campaigns import lifecycle
from outreach.campaigns.models import Campaign, Enrollment, Lead, Message
from outreach.lib import bulk, clock, dbstats, heap
from outreach.pool import config as pool_config
from outreach.pool import config_apply as pool_config_apply
from outreach.pool.config_spec import ConfigError as PoolConfigError
from outreach.pool.models import Domain, Mailbox, PoolSettings, ProviderAccount, cap_on
from outreach.pool.policy import SENDING_STATES
from outreach.providers.simulated import sender as simulated
from outreach.scheduler import engine
from outreach.scheduler.engine import run_pass
from outreach.scheduler.models import DailyCounter
from outreach.scheduler.recipients import provider_mix
from outreach.scheduler.simulate_day import DayBounds, close_day, finish_date

log = logging.getLogger(__name__)

DEFAULT_POOL = Path("examples/pool.toml")
DEFAULT_CAMPAIGN = Path("examples/campaign.toml")

# Used when no campaign file is given and examples/campaign.toml is not there: the classic
# three-touch sequence, weekdays 09:00-17:00 in the lead's time zone, no campaign cap.
BUILTIN_CAMPAIGN = """
slug = "simulation"
name = "Simulated campaign"
postal_address = "Example Ltd, 1 Main Street, Springfield"
timezone = "America/New_York"

[window]
days = ["mon", "tue", "wed", "thu", "fri"]
start = "09:00"
end = "17:00"

[[steps]]
delay_days = 0
subject = "Quick question, {{ first_name }}"
html = "<p>Hi {{ first_name }},</p><p>Would a short call about {{ company }} make sense?</p>"

[[steps]]
delay_days = 3
reply_to_thread = true
subject = ""
html = "<p>Hi {{ first_name }}, just bumping this up in case it got buried.</p>"

[[steps]]
delay_days = 4
subject = ""
text = "{{ first_name }}, I'll stop here. If it ever becomes a priority, just reply."
"""

# Where generated leads live: a realistic spread for an English-speaking B2B list, with zones
# that change to summer time on different dates (US in early March, Europe late March,
# Sydney back in April), one without DST, and leads whose zone is unknown (the campaign's).
TIMEZONES: tuple[tuple[str, int], ...] = (
    ("America/New_York", 26),
    ("America/Chicago", 10),
    ("America/Los_Angeles", 14),
    ("Europe/London", 16),
    ("Europe/Berlin", 14),
    ("Asia/Kolkata", 5),
    ("Australia/Sydney", 5),
    ("", 10),
)
FIRST_NAMES = (
    "Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jon",
    "Kira", "Liam", "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sam", "Tariq",
)  # fmt: skip
COMPANY_WORDS = (
    "acme", "globex", "initech", "umbrella", "hooli", "vandelay", "stark", "wayne",
    "tyrell", "cyberdyne", "soylent", "wonka", "gringotts", "oceanic", "massive",
)  # fmt: skip
# Leads per company: several contacts at one company, as in a real list, so the
# per-recipient-domain cap has something to bind on.
LEADS_PER_COMPANY = 4


@dataclass(frozen=True)
class Options:
    days: int = 30
    leads: int = 1000
    bounce_rate: float = 0.01
    complaint_rate: float = 0.0005
    config: Path = DEFAULT_POOL
    # None: examples/campaign.toml when present, else the built-in campaign.
    campaign: Path | None = None
    seed: int = 1
    # The first simulated day (a pool day); None: the coming Monday.
    start: date | None = None
    # The simulated clock moves in steps of this many seconds (from the day's midnight): what
    # falls due inside one step is served by one pass at its end. Sends and notifications may
    # come up to this much later than in real time (never earlier), and passes are far fewer.
    # The real scheduler loop idles 5 s between passes.
    resolution_seconds: int = 300
    # The periodic health rules run at most this often (events trigger them at once anyway).
    health_every: timedelta = timedelta(hours=6)


@dataclass
class Result:
    """What :func:`simulate` found; :meth:`to_dict` is the ``--json`` object."""

    options: Options
    start: date
    timezone: str
    campaign: dict[str, Any]
    days: list[dict[str, Any]] = field(default_factory=list)
    mailboxes: list[dict[str, Any]] = field(default_factory=list)
    finish_date: date | None = None
    finish_date_projected: bool = False
    # Sends per recipient provider class (outreach.scheduler.recipients.provider_mix).
    recipient_providers: dict[str, int] = field(default_factory=dict)
    passes: int = 0
    elapsed_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        o = self.options
        sent = sum(d["sent"] for d in self.days)
        capacity = sum(d["capacity"] for d in self.days)
        return {
            "start": self.start.isoformat(),
            "timezone": self.timezone,
            "options": {
                "days": o.days,
                "leads": o.leads,
                "bounce_rate": o.bounce_rate,
                "complaint_rate": o.complaint_rate,
                "config": str(o.config),
                "campaign": str(o.campaign) if o.campaign else None,
                "seed": o.seed,
            },
            "campaign": self.campaign,
            "days": self.days,
            "mailboxes": self.mailboxes,
            "finish_date": self.finish_date.isoformat() if self.finish_date else None,
            "finish_date_projected": self.finish_date_projected,
            "recipient_providers": self.recipient_providers,
            "totals": {
                "sent": sent,
                "campaign_sent": sum(d["campaign_sent"] for d in self.days),
                "warmup_sent": sum(d["warmup_sent"] for d in self.days),
                "capacity": capacity,
                "utilization": round(sent / capacity, 4) if capacity else 0.0,
                "cap_exceeded": sum(d["cap_exceeded"] for d in self.days),
                "hard_bounces": sum(d["hard_bounces"] for d in self.days),
                "complaints": sum(d["complaints"] for d in self.days),
                "pauses": sum(len(d["pauses"]) for d in self.days),
            },
            "passes": self.passes,
            "elapsed_seconds": round(self.elapsed_seconds, 2),
            # Simulated sends per second of the run (setup included).
            "sends_per_second": round(sent / self.elapsed_seconds, 1)
            if self.elapsed_seconds
            else 0.0,
        }


# What a mailbox's cap of the day and its pacing slot are computed from.
_CAP_FIELDS = ("id", "state", "daily_cap", "warmup_started_on", "warmup_start_day", "next_send_at")


@dataclass(frozen=True)
class _CapRow:
    """A mailbox's :data:`_CAP_FIELDS` read as plain values (what ``cap_on`` reads)."""

    id: int
    state: str
    daily_cap: int | None
    warmup_started_on: date | None
    warmup_start_day: int
    next_send_at: datetime | None


# --- The throwaway database ------------------------------------------------------------------


@contextmanager
def throwaway_database() -> Iterator[Path]:
    """Point the default database at a fresh SQLite file for the block, migrated, then put the
    operator's database back and delete the file.

    Why a file of our own rather than a transaction rolled back on the real database: a
    simulation writes for minutes, and on the embedded SQLite a long write transaction would
    hold the only write lock and stall the running engine; on PostgreSQL it would hold row
    locks on the real mailboxes and counters. A separate file cannot touch, lock or leak into
    the operator's data whatever happens, and it is fast (no durability needed).
    """
    from django.core.management import call_command

    # In memory when the system offers a tmpfs: the file is thrown away anyway.
    shm = Path("/dev/shm")  # noqa: S108 (a private mkdtemp directory below it)
    directory = Path(
        tempfile.mkdtemp(prefix="outreach-simulate-", dir=shm if shm.is_dir() else None)
    )
    original = connections.settings["default"]
    connections["default"].close()
    connections.settings["default"] = {
        **original,
        "ENGINE": settings.SQLITE_ENGINE,
        "NAME": str(directory / "simulation.sqlite3"),
        "USER": "",
        "PASSWORD": "",
        "HOST": "",
        "PORT": "",
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": False,
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            # A throwaway file: durability buys nothing, speed does.
            # One connection writes: the rollback journal may live in memory.
            "init_command": (
                "PRAGMA journal_mode=MEMORY; PRAGMA synchronous=OFF; "
                "PRAGMA temp_store=MEMORY; PRAGMA cache_size=-65536;"
            ),
        },
        "TEST": {},
    }
    del connections["default"]
    try:
        call_command("migrate", verbosity=0, interactive=False)
        yield directory
    finally:
        connections["default"].close()
        del connections["default"]
        connections.settings["default"] = original
        shutil.rmtree(directory, ignore_errors=True)


# --- Setting the stage -----------------------------------------------------------------------


def coming_monday(today: date) -> date:
    return today + timedelta(days=(7 - today.weekday()) % 7 or 7)


# Leads enrolled per call of lifecycle.enroll (below SQLite's 32,766 parameters a statement).
ENROLL_PART = 10_000


def setup(options: Options, start: datetime) -> Campaign:
    """Pool, simulated provider, campaign and enrolled leads, as of ``start`` (the clock is
    pinned there by the caller)."""
    try:
        text = options.config.read_text(encoding="utf-8")
    except OSError as exc:
        raise PoolConfigError(f"cannot read {options.config}: {exc}") from None
    spec = pool_config.parse(text)
    pool_config_apply.apply(spec)
    # Every account sends through the simulated provider: no credentials, no network, no
    # provider-side rate limit (it would sleep on the real clock).
    ProviderAccount.objects.update(
        kind=simulated.KIND, settings={}, secrets={}, max_send_rate=None, enabled=True
    )
    Mailbox.objects.update(settings={}, secrets={})
    campaign_file = options.campaign
    if campaign_file is None and DEFAULT_CAMPAIGN.exists():
        campaign_file = DEFAULT_CAMPAIGN
    campaign_spec = (
        campaign_config.load(campaign_file)
        if campaign_file is not None
        else campaign_config.parse(BUILTIN_CAMPAIGN)
    )
    campaign_config.apply(campaign_spec)
    campaign = Campaign.objects.get(slug=campaign_spec.slug)
    lifecycle.start(campaign, actor="simulation")
    leads = generate_leads(options.leads, random.Random(options.seed), start)
    # In parts: enroll reads the leads' enrollments and suppressions with one parameter per
    # lead, and a week of a large pool is more leads than SQLite takes in one statement.
    for first in range(0, len(leads), ENROLL_PART):
        lifecycle.enroll(campaign, leads[first : first + ENROLL_PART])
    pool = PoolSettings.load()
    from outreach.scheduler.warmup import seed_addresses

    simulated.FEED.configure(
        simulated.Rates(
            bounce_rate=options.bounce_rate,
            complaint_rate=options.complaint_rate,
            seed=options.seed,
            safe_addresses=frozenset(seed_addresses(pool)),
        )
    )
    return campaign


def generate_leads(count: int, rng: random.Random, now: datetime) -> list[Lead]:
    """``count`` leads at companies of ``LEADS_PER_COMPANY`` contacts, spread over
    :data:`TIMEZONES` (a company's contacts share its zone)."""
    zones = [z for z, _ in TIMEZONES]
    weights = [w for _, w in TIMEZONES]
    leads = []
    companies = max(1, -(-count // LEADS_PER_COMPANY))
    company_zone = rng.choices(zones, weights, k=companies)
    for i in range(count):
        c = i % companies
        word = COMPANY_WORDS[c % len(COMPANY_WORDS)]
        domain = f"{word}{c}.example"
        first = FIRST_NAMES[rng.randrange(len(FIRST_NAMES))]
        leads.append(
            Lead(
                email=f"{first.lower()}.{i}@{domain}",
                email_domain=domain,
                first_name=first,
                company=f"{word.title()} {c}",
                timezone=company_zone[c],
                created_at=now,
                updated_at=now,
            )
        )
    # Without the ORM's compiling of every field of every lead: a large pool's simulation
    # writes a hundred thousand of them.
    bulk.insert(Lead, leads, returning_pks=True)
    return leads


# --- The run ---------------------------------------------------------------------------------


def simulate(
    options: Options,
    *,
    on_day: Callable[[dict[str, Any]], None] | None = None,
    send_due: Callable[[datetime], int] | None = None,
) -> Result:
    """Run ``options.days`` simulated days on the current database; the clock is released
    afterwards. ``on_day`` is called with each finished day's figures (progress).

    ``send_due`` replaces the sending engine's step of the pass for the run (the command
    lends ``outreach.management.simulated_sending.send_due``: the engine's take and finish
    without building each message); None: the engine's own.
    """
    if options.days < 1:
        raise ValueError("days must be at least 1")
    started = _time.perf_counter()
    simulated.register()
    lent = engine.steps.send_due
    if send_due is not None:
        engine.steps.send_due = send_due
    text = options.config.read_text(encoding="utf-8") if options.config.exists() else ""
    tz = ZoneInfo(pool_config.parse(text).timezone if text else "UTC")
    first_day = options.start or coming_monday(clock.today(tz))
    start = datetime.combine(first_day, time(0), tzinfo=tz).astimezone(UTC)
    clock.set_now(start)
    try:
        with heap.batch_job():
            campaign = setup(options, start)
            result = Result(
                options=options,
                start=first_day,
                timezone=str(tz),
                campaign=_campaign_summary(campaign),
            )
            _Run(options, campaign, tz, result, on_day).run(first_day)
    finally:
        clock.set_now(None)
        engine.steps.send_due = lent
    result.elapsed_seconds = _time.perf_counter() - started
    return result


class _Run:
    def __init__(
        self,
        options: Options,
        campaign: Campaign,
        tz: ZoneInfo,
        result: Result,
        on_day: Callable[[dict[str, Any]], None] | None,
    ) -> None:
        self.options = options
        self.campaign = campaign
        self.tz = tz
        self.result = result
        self.on_day = on_day
        self.rng = random.Random(options.seed)
        self.resolution = max(1, options.resolution_seconds)
        self.next_health = datetime.min.replace(tzinfo=UTC)
        self.ramp: dict[int, dict[str, list[Any]]] = defaultdict(
            lambda: {"sent": [], "cap": [], "states": []}
        )

    def run(self, first_day: date) -> None:
        """Day after day: each pool day is simulated from its midnight to the next, then
        read back."""
        day = first_day
        for _ in range(self.options.days):
            day_start = _midnight(day, self.tz)
            day_end = _midnight(day + timedelta(days=1), self.tz)
            caps = self._caps(day, sending_only=True)
            now = day_start
            while now < day_end:
                clock.set_now(now)
                self._pass(now)
                if now == day_start:
                    # The planner's statistics, as the production loops keep them
                    # (outreach.lib.dbstats): after the day's first pass has planned what
                    # fell due, so they describe the day's backlog.
                    dbstats.refresh(every_seconds=0)
                now = min(self._step(self._next_wakeup(now), day_start), day_end)
            # The day's last notifications, stored within the day they belong to (a pause
            # they cause is that day's pause).
            last_instant = day_end - timedelta(microseconds=1)
            clock.set_now(last_instant)
            _record_due(last_instant)
            clock.set_now(day_end)
            figures = close_day(
                DayBounds(day, day_start, day_end),
                caps_at_start=caps,
                caps_at_end=self._caps(day),
                campaign=self.campaign,
                ramp=self.ramp,
            )
            self.result.days.append(figures)
            if self.on_day is not None:
                self.on_day(figures)
            day += timedelta(days=1)
        # Whom the sends went to, by the MX answers routing kept (a generated ".example"
        # domain has no MX: "unknown", not a guess).
        self.result.recipient_providers = provider_mix(
            Message.objects.filter(
                sent_at__gte=_midnight(first_day, self.tz), sent_at__lt=_midnight(day, self.tz)
            )
        )
        self._finish()

    # -- one moment --

    def _pass(self, now: datetime) -> None:
        health = now >= self.next_health
        if health:
            self.next_health = now + self.options.health_every
        # One transaction for the whole moment: the simulation is the database's only user
        # and a crash throws it away, so the pass's own transactions (claim groups, send
        # batches, ...) need not each be committed; they become savepoints, and all of them
        # still roll back alone when they fail.
        with transaction.atomic():
            # Provider notifications that came due since the last pass first, as webhooks
            # would have been stored by then: a complaint pauses its mailbox before it is
            # routed again.
            _record_due(now)
            self.last = run_pass(now, send=True, health=health, worker="simulation", rng=self.rng)
        self.result.passes += 1

    def _step(self, when: datetime, day_start: datetime) -> datetime:
        """``when`` rounded up to the clock's resolution."""
        steps = -(-(when - day_start).total_seconds() // self.resolution)
        return day_start + timedelta(seconds=steps * self.resolution)

    def _next_wakeup(self, now: datetime) -> datetime:
        """The next instant anything can happen: a scheduled message or retry falls due, an
        enrollment's next step falls due, a cooldown ends, or (while due messages wait) a
        mailbox's pacing slot opens. Provider notifications do not wake the clock: they are
        stored at the start of the next pass, before anything is routed."""
        candidates: list[datetime | None] = [
            *(
                _earliest(Message.objects.filter(state=state, not_before__gt=now), "not_before")
                for state in (Message.State.SCHEDULED, Message.State.RETRY)
            ),
            _earliest(
                Enrollment.objects.filter(state=Enrollment.State.ACTIVE, next_due_at__gt=now),
                "next_due_at",
            ),
            Mailbox.objects.filter(cooldown_until__gt=now).aggregate(t=Min("cooldown_until"))["t"],
            Domain.objects.filter(cooldown_until__gt=now).aggregate(t=Min("cooldown_until"))["t"],
            self._pacing_wakeup(now),
            self._graduation_wakeup(now),
        ]
        times = [t for t in candidates if t is not None and t > now]
        return min(times) if times else now + timedelta(days=1)

    def _graduation_wakeup(self, now: datetime) -> datetime | None:
        """One more pass right after a warming mailbox used its last unit of the day.

        Graduation is decided at the start of a pass from the units used today; the real loop
        passes again within seconds, so a mailbox whose last warm-up message of the day was
        just claimed graduates the same day. Here the next event might be tomorrow.
        """
        if not any(self.last.claimed_by_mailbox.values()):
            return None
        # The warming mailboxes first: a warm pool has none, and then nothing else is read.
        warming = [
            m
            for m in Mailbox.objects.filter(state=Mailbox.State.WARMING).only(*_CAP_FIELDS)
            if self.last.claimed_by_mailbox.get(m.pk)
        ]
        if not warming:
            return None
        pool = PoolSettings.load()
        day = now.astimezone(self.tz).date()
        used = dict(
            DailyCounter.objects.filter(
                day=day, scope=DailyCounter.Scope.MAILBOX, key__in=[str(m.pk) for m in warming]
            ).values_list("key", "used")
        )
        for mailbox in warming:
            if used.get(str(mailbox.pk), 0) >= mailbox.cap_today(pool, day):
                return now + timedelta(seconds=1)
        return None

    def _pacing_wakeup(self, now: datetime) -> datetime | None:
        """When a paced mailbox that could take a waiting message is free again.

        Only mailboxes with quota left today count. When this pass claimed nothing although a
        free mailbox with quota was there, what holds the waiting messages back is not pacing
        (a campaign or recipient cap, a campaign's allowed set): then only the mailboxes that
        due messages are pinned to (follow-ups, warm-up) are worth waking up for.
        """
        due = Message.objects.filter(state=Message.State.SCHEDULED, not_before__lte=now)
        if not due.exists():
            return None
        pool = PoolSettings.load()
        day = now.astimezone(self.tz).date()
        used = dict(
            DailyCounter.objects.filter(day=day, scope=DailyCounter.Scope.MAILBOX).values_list(
                "key", "used"
            )
        )
        # Only what the cap and the pacing slot need, as plain rows: this runs after every
        # pass, over the whole pool.
        rows = Mailbox.objects.filter(
            state__in=SENDING_STATES, domain__state=Domain.State.ACTIVE
        ).values_list(*_CAP_FIELDS)
        with_quota = [
            m
            for m in (_CapRow(*values) for values in rows)
            if cap_on(m, day, pool.limits, pool.warmup) > used.get(str(m.id), 0)
        ]
        free = [m for m in with_quota if m.next_send_at is None or m.next_send_at <= now]
        paced = [m for m in with_quota if m.next_send_at is not None and m.next_send_at > now]
        if self.last.claimed == 0 and free:
            pinned = set(
                due.exclude(pinned_mailbox=None)
                .values_list("pinned_mailbox_id", flat=True)
                .distinct()
            )
            paced = [m for m in paced if m.id in pinned]
        slots = [m.next_send_at for m in paced if m.next_send_at is not None]
        return min(slots) if slots else None

    # -- one day --

    def _caps(self, day: date, *, sending_only: bool = False) -> dict[int, int]:
        """Each mailbox's cap for ``day`` in its current state; with ``sending_only``, 0 for
        a mailbox whose domain cannot send (cooldown): what the day offers."""
        pool = PoolSettings.load()
        return {
            m.pk: m.cap_today(pool, day)
            if not sending_only or m.domain.state == Domain.State.ACTIVE
            else 0
            for m in Mailbox.objects.select_related("domain")
        }

    # -- the end --

    def _finish(self) -> None:
        mailboxes = Mailbox.objects.select_related("domain").order_by("domain__name", "address")
        self.result.mailboxes = [
            {
                "address": m.address,
                "domain": m.domain.name,
                "state": m.state,
                "warmed": "warming" in self.ramp[m.pk]["states"],
                **self.ramp[m.pk],
            }
            for m in mailboxes
        ]
        self.result.finish_date, self.result.finish_date_projected = finish_date(
            self.campaign, self.result.days, self.tz
        )


def _campaign_summary(campaign: Campaign) -> dict[str, Any]:
    return {
        "slug": campaign.slug,
        "steps": campaign.steps.count(),
        "daily_cap": campaign.daily_cap,
        "window": {
            "days": list(campaign.window_days),
            "start": campaign.window_start.strftime("%H:%M"),
            "end": campaign.window_end.strftime("%H:%M"),
        },
        "timezone": campaign.timezone,
        "enrolled": campaign.enrollments.count(),
    }


def _record_due(now: datetime) -> None:
    """The provider notifications due at ``now``, stored as one webhook delivery stores its
    batch: in one transaction (each event's own effects and listeners unchanged)."""
    with transaction.atomic():
        simulated.record_due(now)


def _earliest(query: Any, field: str) -> datetime | None:
    """The smallest ``field`` of ``query``'s rows, read as the first row in an index's order
    (one seek; a minimum over two states, or a sort, would read the whole backlog)."""
    first: datetime | None = query.order_by(field).values_list(field, flat=True).first()
    return first


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
