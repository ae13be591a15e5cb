"""The read side of the dashboard: aggregate queries over the other apps' tables.

Every function here issues a fixed number of queries whatever the size of the pool or the age
of the data (no query per row): rows are fetched once and grouped in Python, windows are
bounded by indexed time columns, and "last event" is a correlated subquery that walks the
``(mailbox, occurred_at)`` index once per mailbox inside a single statement.

Sends are counted from the daily counters (one unit reserved per message handed to a
provider, never released after the provider call), so a year of messages is never scanned.
"""

from __future__ import annotations

import calendar
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import (
    Case,
    Count,
    F,
    IntegerField,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
    When,
)
from django.utils.timezone import localtime

from outreach.alerts import inbox
from outreach.alerts.models import Alert
from outreach.campaigns.models import Campaign, Enrollment, Message, Step, Variant
from outreach.events.models import Event
from outreach.lib import clock
from outreach.pool import models as pool_models
from outreach.pool import policy
from outreach.pool.models import Domain, Mailbox, PoolSettings, ProviderAccount, StateChange
from outreach.pool.states import way_back
from outreach.scheduler.capacity import domain_capacity, domain_holds, pool_capacity
from outreach.scheduler.models import DailyCounter
from outreach.sending.models import SendAttempt

# States of a message that has not reached a provider yet (still "to be sent").
PENDING_STATES = (
    Message.State.SCHEDULED,
    Message.State.CLAIMED,
    Message.State.SENDING,
    Message.State.RETRY,
)


@dataclass(frozen=True)
class Rates:
    """Counts over a window and the rates they give; a rate is None when nothing was sent."""

    sent: int = 0
    delivered: int = 0
    bounced: int = 0  # hard bounces: docs/rules.md's bounce rate counts only those
    complained: int = 0
    replied: int = 0

    def _rate(self, count: int) -> float | None:
        return count / self.sent if self.sent else None

    @property
    def delivery_rate(self) -> float | None:
        return self._rate(self.delivered)

    @property
    def bounce_rate(self) -> float | None:
        return self._rate(self.bounced)

    @property
    def complaint_rate(self) -> float | None:
        return self._rate(self.complained)

    @property
    def reply_rate(self) -> float | None:
        return self._rate(self.replied)

    def text(self) -> dict[str, str]:
        """The rates as display strings, computed once per row."""
        return {
            "delivery": pct(self.delivery_rate),
            "bounce": pct(self.bounce_rate),
            "complaint": pct(self.complaint_rate, 2),
            "reply": pct(self.reply_rate),
        }


@dataclass(frozen=True)
class RateCheck:
    """One pool rate against its thresholds, for the overview's health table."""

    name: str
    rate: float | None
    warning: float | None
    limit: float | None
    # "ok", "warning", "over" or "n/a" (too few sends in the window to judge).
    status: str


@dataclass(frozen=True)
class MailboxInfo:
    """The columns of a mailbox (and its domain) that the pages show: read with
    ``values_list``, since building hundreds of model instances costs more than the query."""

    pk: int
    address: str
    state: str
    domain_id: int
    domain_name: str
    domain_state: str
    daily_cap: int | None
    warmup_started_on: date | None
    warmup_start_day: int
    cooldown_until: datetime | None
    auth_failed_at: datetime | None

    FIELDS = (
        "pk",
        "address",
        "state",
        "domain_id",
        "domain__name",
        "domain__state",
        "daily_cap",
        "warmup_started_on",
        "warmup_start_day",
        "cooldown_until",
        "auth_failed_at",
    )

    def target_cap(self, limits: policy.Limits) -> int:
        return pool_models.target_cap(self, limits)


@dataclass(frozen=True)
class OutOfService:
    """The audit log's last word on a paused or cooled-down mailbox."""

    reason: str
    since: datetime
    actor: str
    way_back: str


@dataclass
class MailboxRow:
    mailbox: MailboxInfo
    cap_today: int
    target: int
    sent_today: int
    warmup_day: int | None
    rates: Rates
    last_event_at: datetime | None
    # Why its domain cannot send now (cooldown, DNS); "" when it can.
    held: str = ""

    # Why and since when a paused or cooled-down mailbox is out of service, and what resumes it.
    out_of_service: OutOfService | None = None

    # Filled by the view (queries know no URLs); precomputed so a 300-row table renders fast.
    href: str = ""

    @property
    def last_event_text(self) -> str:
        return _when(self.last_event_at)

    @property
    def warmup_text(self) -> str:
        if self.warmup_day is None:
            return "–"
        return f"day {self.warmup_day}, {self.warmup_progress}% of {self.target}"

    @property
    def warmup_progress(self) -> int | None:
        """Percent of the warm-up target reached by today's cap (warming mailboxes only)."""
        if self.warmup_day is None or not self.target:
            return None
        return min(100, round(100 * self.cap_today / self.target))

    @property
    def use_percent(self) -> int:
        return _percent(self.sent_today, self.cap_today)


@dataclass
class DomainRow:
    domain: Domain
    cap: int
    capacity_today: int  # what its mailboxes may send today, bounded by the domain cap
    sent_today: int
    mailboxes: list[MailboxInfo] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)
    held: str = ""  # why it cannot send now (cooldown, DNS); "" when it can

    @property
    def use_percent(self) -> int:
        return _percent(self.sent_today, self.capacity_today)


@dataclass(frozen=True)
class Cost:
    """Month-to-date cost and the month's projection, as the overview shows them."""

    sends: int
    sending_cost: Decimal
    domains_cost: Decimal
    month_to_date: Decimal
    projection: Decimal
    budget: Decimal | None

    @property
    def over_budget(self) -> bool:
        return self.budget is not None and self.projection > self.budget


def pct(rate: float | None, digits: int = 1) -> str:
    """A rate (0.031) as "3.1%"; a dash when there is no rate."""
    return "–" if rate is None else f"{100 * rate:.{digits}f}%"


def _when(at: datetime | None) -> str:
    return localtime(at).strftime("%Y-%m-%d %H:%M") if at else "–"


def _percent(part: int, whole: int) -> int:
    return min(100, round(100 * part / whole)) if whole else 0


def pool_day(pool: PoolSettings) -> date:
    return clock.today(pool.timezone)


def window_start(pool: PoolSettings, days: int) -> tuple[date, datetime]:
    """The first pool day of a ``days``-day window ending today, and its first instant."""
    first = pool_day(pool) - timedelta(days=days - 1)
    return first, datetime.combine(first, time.min, tzinfo=ZoneInfo(pool.timezone))


# 1. Counters ---------------------------------------------------------------------------------


def counter_totals(
    scope: str, first_day: date, today: date, keys: Iterable[str] | None = None
) -> dict[str, tuple[int, int]]:
    """Per key of ``scope``: (units used from ``first_day`` to ``today``, units used today).
    One aggregate query: a row per key, whatever the window's length."""
    qs = DailyCounter.objects.filter(scope=scope, day__gte=first_day, day__lte=today)
    if keys is not None:
        qs = qs.filter(key__in=list(keys))
    rows = qs.values("key").annotate(total=Sum("used"), today=Sum("used", filter=Q(day=today)))
    return {r["key"]: (r["total"] or 0, r["today"] or 0) for r in rows}


# 2. Events -----------------------------------------------------------------------------------

_EVENT_COUNTS = {
    "delivered": Count("id", filter=Q(type=Event.Type.DELIVERED)),
    "bounced": Count("id", filter=Q(type=Event.Type.BOUNCED, bounce_type=Event.BounceType.HARD)),
    "complained": Count("id", filter=Q(type=Event.Type.COMPLAINED)),
    "replied": Count("id", filter=Q(type=Event.Type.REPLIED)),
}


def event_counts_by(field_name: str | None, since: datetime) -> dict[Any, dict[str, int]]:
    """Delivered/hard-bounced/complained/replied counts since ``since``, grouped by a field."""
    qs = Event.objects.filter(occurred_at__gte=since)
    if field_name is None:
        return {None: qs.aggregate(**_EVENT_COUNTS)}
    return {row.pop(field_name): row for row in qs.values(field_name).annotate(**_EVENT_COUNTS)}


@dataclass(frozen=True)
class WindowCounts:
    """The thresholds' window of events, counted once: per mailbox id (None: events matched
    to no mailbox) and per day index of the window (0 = its first day)."""

    by_mailbox: dict[Any, dict[str, int]]
    by_day: dict[int, dict[str, int]]


def window_event_counts(pool: PoolSettings) -> WindowCounts:
    """One scan of the window's events (on the ``(mailbox, occurred_at)`` index), grouped by
    mailbox and day: the mailbox rows, the pool's rates and its chart all read it."""
    days = pool.thresholds.window_days
    first_day, since = window_start(pool, days)
    by_mailbox: dict[Any, dict[str, int]] = defaultdict(lambda: dict.fromkeys(_EVENT_COUNTS, 0))
    by_day: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(_EVENT_COUNTS, 0))
    rows = (
        Event.objects.filter(occurred_at__gte=since)
        .annotate(bucket=day_bucket(pool, first_day, days))
        .values("mailbox", "bucket")
        .annotate(**_EVENT_COUNTS)
    )
    for row in rows:
        for name in _EVENT_COUNTS:
            n = row[name] or 0
            by_mailbox[row["mailbox"]][name] += n
            by_day[row["bucket"]][name] += n
    return WindowCounts(dict(by_mailbox), dict(by_day))


def _rates(sent: int, counts: dict[str, int] | None) -> Rates:
    counts = counts or {}
    return Rates(
        sent=sent,
        delivered=counts.get("delivered") or 0,
        bounced=counts.get("bounced") or 0,
        complained=counts.get("complained") or 0,
        replied=counts.get("replied") or 0,
    )


# 3. Pages ------------------------------------------------------------------------------------


def mailbox_rows(
    pool: PoolSettings,
    *,
    mailbox: Mailbox | None = None,
    last_event: bool = True,
    window_counts: WindowCounts | None = None,
    holds: dict[int, str] | None = None,
) -> list[MailboxRow]:
    """Every mailbox (or one) with its cap and use today, window rates and, with
    ``last_event``, its last event: three queries."""
    today = pool_day(pool)
    first_day, since = window_start(pool, pool.thresholds.window_days)
    mailboxes = Mailbox.objects.all()
    extra: tuple[str, ...] = ()
    if last_event:
        latest = Event.objects.filter(mailbox=OuterRef("pk")).order_by("-occurred_at")
        mailboxes = mailboxes.annotate(last_event_at=Subquery(latest.values("occurred_at")[:1]))
        extra = ("last_event_at",)
    keys = None
    events = Event.objects.filter(occurred_at__gte=since)
    if mailbox is not None:
        mailboxes = mailboxes.filter(pk=mailbox.pk)
        keys = [str(mailbox.pk)]
        events = events.filter(mailbox=mailbox)
    counters = counter_totals(DailyCounter.Scope.MAILBOX, first_day, today, keys)
    by_mailbox = (
        window_counts.by_mailbox
        if window_counts is not None and mailbox is None
        else {row.pop("mailbox"): row for row in events.values("mailbox").annotate(**_EVENT_COUNTS)}
    )
    limits = pool.limits
    warmup = pool.warmup
    holds = domain_holds() if holds is None else holds
    stopped = out_of_service(mailbox.pk if mailbox is not None else None)
    rows = []
    n = len(MailboxInfo.FIELDS)
    for values in mailboxes.order_by("domain__name", "address").values_list(
        *MailboxInfo.FIELDS, *extra
    ):
        mb = MailboxInfo(*values[:n])
        window, used_today = counters.get(str(mb.pk), (0, 0))
        rows.append(
            MailboxRow(
                mailbox=mb,
                cap_today=_cap_today(mb, today, limits, warmup),
                target=mb.target_cap(limits),
                sent_today=used_today,
                warmup_day=warmup_day(mb, today),
                rates=_rates(window, by_mailbox.get(mb.pk)),
                last_event_at=values[n] if extra else None,
                held=holds.get(mb.domain_id, ""),
                out_of_service=stopped.get(mb.pk),
            )
        )
    return rows


def out_of_service(mailbox_id: int | None = None) -> dict[int, OutOfService]:
    """Per paused or cooled-down mailbox (or the one given): the state change that put it
    there, and what would resume it. One query, over out-of-service mailboxes only."""
    changes = StateChange.objects.filter(
        mailbox__state__in=(Mailbox.State.PAUSED, Mailbox.State.COOLDOWN),
        to_state=F("mailbox__state"),
    )
    if mailbox_id is not None:
        changes = changes.filter(mailbox_id=mailbox_id)
    found: dict[int, OutOfService] = {}
    rows = changes.order_by("mailbox_id", "-at", "-id").values_list(
        "mailbox_id", "reason", "at", "actor", "mailbox__state", "mailbox__cooldown_until"
    )
    for pk, reason, at, actor, state, until in rows:
        if pk not in found:
            found[pk] = OutOfService(reason, at, actor, way_back(state, actor, until))
    return found


def _cap_today(
    mb: MailboxInfo, today: date, limits: policy.Limits, warmup: policy.WarmupSchedule
) -> int:
    """``Mailbox.cap_today`` without rebuilding the pool's policies for each mailbox."""
    return pool_models.cap_on(mb, today, limits, warmup)


def warmup_day(mailbox: Mailbox | MailboxInfo, today: date) -> int | None:
    """Day of the warm-up schedule a warming mailbox is on (None for the others)."""
    return pool_models.warmup_day(mailbox, today)


def domain_rows(
    pool: PoolSettings, mailboxes: list[MailboxRow], holds: dict[int, str] | None = None
) -> list[DomainRow]:
    """Every domain with its cap, use today and mailboxes (from ``mailboxes``): two queries."""
    today = pool_day(pool)
    limits = pool.limits
    used = dict(
        DailyCounter.objects.filter(day=today, scope=DailyCounter.Scope.DOMAIN).values_list(
            "key", "used"
        )
    )
    by_domain: dict[int, list[MailboxRow]] = defaultdict(list)
    for row in mailboxes:
        by_domain[row.mailbox.domain_id].append(row)
    holds = domain_holds() if holds is None else holds
    rows = []
    for domain in Domain.objects.select_related("provider").order_by("name"):
        cap = domain.cap(limits)
        boxes = by_domain.get(domain.pk, [])
        states: dict[str, int] = defaultdict(int)
        for row in boxes:
            states[row.mailbox.state] += 1
        held = holds.get(domain.pk, "")
        rows.append(
            DomainRow(
                domain=domain,
                cap=cap,
                capacity_today=domain_capacity(cap, (r.cap_today for r in boxes), held=held),
                sent_today=used.get(str(domain.pk), 0),
                mailboxes=[r.mailbox for r in boxes],
                states=dict(states),
                held=held,
            )
        )
    return rows


def pool_rates(
    pool: PoolSettings, window_counts: WindowCounts | None = None
) -> tuple[Rates, list[RateCheck]]:
    """The pool's rates over the thresholds' window, each judged against its threshold
    (from ``window_counts`` of :func:`window_event_counts` when the caller has them)."""
    thresholds = pool.thresholds
    first_day, since = window_start(pool, thresholds.window_days)
    sent = (
        DailyCounter.objects.filter(
            day__gte=first_day, scope=DailyCounter.Scope.GLOBAL, key="*"
        ).aggregate(n=Sum("used"))["n"]
        or 0
    )
    if window_counts is None:
        counts = event_counts_by(None, since)[None]
    else:
        counts = {
            name: sum(group.get(name) or 0 for group in window_counts.by_mailbox.values())
            for name in _EVENT_COUNTS
        }
    rates = _rates(sent, counts)
    return rates, rate_checks(rates, thresholds)


def rate_checks(rates: Rates, t: policy.Thresholds) -> list[RateCheck]:
    """Pure: judge each rate against its thresholds.

    A rate is "n/a" below the thresholds' minimum number of sends, except complaints: any
    complaint at all is over the line (the rules pause on the first one). The bounce rate is
    judged on the evidence, by the health rules' :func:`outreach.pool.policy.bounce_rate_above`.
    """
    judged = rates.sent >= t.min_sends

    def status(rate: float | None, warning: float | None, limit: float | None) -> str:
        if rate is None or not judged:
            return "n/a"
        if limit is not None and rate > limit:
            return "over"
        if warning is not None and rate > warning:
            return "warning"
        return "ok"

    def bounce_status() -> str:
        # The health rules' own decision: the pool's bounces weighed as evidence.
        if rates.bounce_rate is None or not judged:
            return "n/a"
        for level, rate in (("over", t.bounce_pause_rate), ("warning", t.bounce_warning_rate)):
            if policy.bounce_rate_above(rates.bounced, rates.sent, rate, t):
                return level
        return "ok"

    if rates.complained >= t.complaint_pause_count:
        complaint = "over"
    else:
        complaint = status(rates.complaint_rate, t.complaint_warning_rate, None)
    return [
        RateCheck(
            "delivery", rates.delivery_rate, None, None, status(rates.delivery_rate, None, None)
        ),
        RateCheck(
            "bounce",
            rates.bounce_rate,
            t.bounce_warning_rate,
            t.bounce_pause_rate,
            bounce_status(),
        ),
        RateCheck("complaint", rates.complaint_rate, t.complaint_warning_rate, None, complaint),
        RateCheck("reply", rates.reply_rate, None, None, status(rates.reply_rate, None, None)),
    ]


def global_today(
    pool: PoolSettings, mailboxes: list[MailboxRow], domains: list[DomainRow]
) -> dict[str, int]:
    """Today's sent and capacity for the whole pool (capacity: what caps allow today)."""
    today = pool_day(pool)
    sent = (
        DailyCounter.objects.filter(day=today, scope=DailyCounter.Scope.GLOBAL, key="*")
        .values_list("used", flat=True)
        .first()
    ) or 0
    capacity = pool_capacity((d.capacity_today for d in domains), pool.limits.global_daily_cap)
    return {"sent": sent, "capacity": capacity, "percent": _percent(sent, capacity)}


def day_bucket(pool: PoolSettings, first_day: date, days: int) -> Case:
    """The index (0 = ``first_day``) of the pool day an event occurred on, computed by the
    database from the days' bounds in the pool's time zone (DST-proof, any database)."""
    zone = ZoneInfo(pool.timezone)
    return Case(
        *(
            When(
                occurred_at__lt=datetime.combine(
                    first_day + timedelta(days=i + 1), time.min, tzinfo=zone
                ),
                then=Value(i),
            )
            for i in range(days)
        ),
        default=Value(days),
        output_field=IntegerField(),
    )


def daily_series(
    pool: PoolSettings,
    days: int,
    *,
    mailbox: Mailbox | None = None,
    per_day: dict[int, dict[str, int]] | None = None,
) -> list[dict[str, Any]]:
    """Per pool day over the last ``days``: sent, delivered, bounced (hard), complained,
    replied, for one mailbox or the whole pool. Two queries; one when the caller passes the
    event counts per day index (``per_day``, from :func:`window_event_counts`)."""
    first_day, since = window_start(pool, days)
    scope, key = (
        (DailyCounter.Scope.MAILBOX, str(mailbox.pk))
        if mailbox is not None
        else (DailyCounter.Scope.GLOBAL, "*")
    )
    sent = dict(
        DailyCounter.objects.filter(day__gte=first_day, scope=scope, key=key).values_list(
            "day", "used"
        )
    )
    if per_day is None:
        events = Event.objects.filter(occurred_at__gte=since)
        if mailbox is not None:
            events = events.filter(mailbox=mailbox)
        # Types are counted with FILTER, never put in the WHERE clause: SQLite would then
        # walk the whole year through the type index instead of the window's time range.
        per_day = {
            row.pop("bucket"): row
            for row in events.annotate(bucket=day_bucket(pool, first_day, days))
            .values("bucket")
            .annotate(**_EVENT_COUNTS)
        }
    out = []
    for i in range(days):
        day = first_day + timedelta(days=i)
        counts = per_day.get(i, {})
        out.append(
            {"day": day, "sent": sent.get(day, 0), **{k: counts.get(k) or 0 for k in _EVENT_COUNTS}}
        )
    return out


@dataclass(frozen=True)
class ProviderRow:
    account: ProviderAccount
    # None when the app that records it is not installed, or nothing was recorded yet.
    healthy: bool | None
    problems: list[str]
    circuit: str | None
    circuit_reason: str


def provider_rows() -> list[ProviderRow]:
    """Provider accounts with their last account check and circuit breaker: one query (their
    one-to-one rows are joined; an account without one reads None)."""
    rows = []
    for account in ProviderAccount.objects.select_related("health", "circuit").order_by("name"):
        health = getattr(account, "health", None)
        circuit = getattr(account, "circuit", None)
        rows.append(
            ProviderRow(
                account=account,
                healthy=health.healthy if health is not None else None,
                problems=[str(p) for p in (health.problems if health is not None else [])],
                circuit=circuit.state if circuit is not None else None,
                circuit_reason=circuit.reason if circuit is not None else "",
            )
        )
    return rows


def open_alerts(limit: int = 20) -> list[Alert]:
    return list(inbox.open_alerts()[:limit])


def unknown_messages(limit: int = 50) -> tuple[int, list[Message]]:
    """Messages whose provider call may or may not have happened: the operator decides."""
    qs = Message.objects.filter(state=Message.State.UNKNOWN)
    rows = list(qs.select_related("mailbox", "campaign").order_by("updated_at", "id")[:limit])
    total = len(rows) if len(rows) < limit else qs.count()
    return total, rows


def month_cost(pool: PoolSettings, domains: Iterable[Domain]) -> Cost:
    """The metrics app's month cost (from its rollups, with the configured budget) when it
    exists, else :func:`own_month_cost`."""
    try:
        from outreach.metrics.cost import month_cost as metrics_month_cost
    except ImportError:
        return own_month_cost(pool, domains)
    m = metrics_month_cost(pool_day(pool))
    return Cost(
        sends=m.sends,
        sending_cost=m.send_cost,
        domains_cost=m.domain_cost,
        month_to_date=m.total,
        projection=m.projection,
        budget=m.budget,
    )


def own_month_cost(pool: PoolSettings, domains: Iterable[Domain]) -> Cost:
    """Month-to-date cost from the send attempts: sends priced by their provider account, plus
    each live domain's twelfth of its yearly price pro rata; the projection extends the sends
    at this month's pace and adds the whole month's domain share. Two queries."""
    zone = ZoneInfo(pool.timezone)
    now = clock.now().astimezone(zone)
    month_start = now.date().replace(day=1)
    start = datetime.combine(month_start, time.min, tzinfo=zone)
    days_in_month = calendar.monthrange(now.year, now.month)[1]
    elapsed = Decimal(str(max((now - start).total_seconds() / 86400, 1 / 24)))
    sends = dict(
        SendAttempt.objects.filter(at__gte=start, outcome=SendAttempt.Outcome.SENT)
        .values("provider_account")
        .annotate(n=Count("id"))
        .values_list("provider_account", "n")
    )
    prices = dict(
        ProviderAccount.objects.filter(pk__in=list(sends)).values_list("pk", "price_per_1000")
    )
    sending = sum(
        (Decimal(n) * prices.get(pk, Decimal(0)) / 1000 for pk, n in sends.items()), Decimal(0)
    )
    yearly = sum((d.yearly_price for d in domains if d.state != Domain.State.RETIRED), Decimal(0))
    domains_month = yearly / 12
    domains_to_date = domains_month * elapsed / days_in_month
    cent = Decimal("0.01")
    return Cost(
        sends=sum(sends.values()),
        sending_cost=sending.quantize(cent),
        domains_cost=domains_to_date.quantize(cent),
        month_to_date=(sending + domains_to_date).quantize(cent),
        projection=(sending / elapsed * days_in_month + domains_month).quantize(cent),
        budget=monthly_budget(pool),
    )


def monthly_budget(pool: PoolSettings) -> Decimal | None:
    """The operator's monthly budget (``OUTREACH_MONTHLY_BUDGET``) when one is configured."""
    raw = settings.OUTREACH_MONTHLY_BUDGET
    if raw in (None, ""):
        return None
    try:
        return Decimal(str(raw))
    except ArithmeticError:
        return None


# 4. Campaigns --------------------------------------------------------------------------------


@dataclass
class StepRow:
    step: Step
    counts: dict[str, Any]
    variants: list[tuple[Variant, dict[str, Any]]]


@dataclass
class CampaignRow:
    campaign: Campaign
    enrollments: dict[str, int]
    sent: int
    pending: int
    replied: int
    bounced: int
    forecast: date | None
    sent_last_7_days: int

    @property
    def reply_rate(self) -> float | None:
        return self.replied / self.sent if self.sent else None

    @property
    def bounce_rate(self) -> float | None:
        return self.bounced / self.sent if self.sent else None

    @property
    def progress_percent(self) -> int:
        """Share of its leads whose sequence is over (finished or stopped)."""
        total = sum(self.enrollments.values())
        done = self.enrollments.get("finished", 0) + self.enrollments.get("stopped", 0)
        return _percent(done, total)


def campaign_rows() -> list[CampaignRow]:
    """Every campaign with its enrollments, sends and forecast: four queries."""
    campaigns = list(Campaign.objects.order_by("-created_at", "slug"))
    enrollments: dict[int, dict[str, int]] = defaultdict(dict)
    steps_done: dict[int, int] = {}
    for cid, state, n, done in (
        Enrollment.objects.values("campaign", "state")
        .annotate(n=Count("id"), done=Sum("last_step"))
        .values_list("campaign", "state", "n", "done")
    ):
        enrollments[cid][state] = n
        if state == Enrollment.State.ACTIVE:
            steps_done[cid] = done or 0
    messages: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for cid, state, n in (
        Message.objects.filter(campaign__isnull=False)
        .values("campaign", "state")
        .annotate(n=Count("id"))
        .values_list("campaign", "state", "n")
    ):
        messages[cid][state] += n
    events: dict[int, dict[str, int]] = defaultdict(dict)
    for row in (
        Event.objects.filter(campaign__isnull=False)
        .values("campaign")
        .annotate(
            replied=Count("id", filter=Q(type=Event.Type.REPLIED)),
            bounced=Count(
                "id", filter=Q(type=Event.Type.BOUNCED, bounce_type=Event.BounceType.HARD)
            ),
        )
    ):
        events[row["campaign"]] = row
    pool = PoolSettings.load()
    first_day, _ = window_start(pool, 7)
    recent = counter_totals(DailyCounter.Scope.CAMPAIGN, first_day, pool_day(pool))
    steps = dict(
        Step.objects.values("campaign").annotate(n=Count("id")).values_list("campaign", "n")
    )
    rows = []
    for c in campaigns:
        m = messages.get(c.pk, {})
        e = enrollments.get(c.pk, {})
        sent_7 = recent.get(str(c.pk), (0, 0))[0]
        pending = sum(m.get(s, 0) for s in PENDING_STATES)
        rows.append(
            CampaignRow(
                campaign=c,
                enrollments=e,
                sent=m.get(Message.State.SENT, 0),
                pending=pending,
                replied=events.get(c.pk, {}).get("replied", 0),
                bounced=events.get(c.pk, {}).get("bounced", 0),
                forecast=None,
                sent_last_7_days=sent_7,
            )
        )
        rows[-1].forecast = forecast_finish(
            remaining=remaining_messages(
                c,
                active=e.get(Enrollment.State.ACTIVE, 0),
                steps=steps.get(c.pk, 0),
                steps_done=steps_done.get(c.pk, 0),
                pending=pending,
            ),
            sent_last_7_days=sent_7,
            daily_cap=c.daily_cap,
            today=pool_day(pool),
        )
    return rows


def remaining_messages(
    campaign: Campaign, *, active: int, steps: int, steps_done: int, pending: int
) -> int:
    """Pure: messages still to send. Each active enrollment owes its steps after
    ``last_step`` (an upper bound: replies stop enrollments early), plus the messages already
    planned but not handed to a provider."""
    if campaign.state in (Campaign.State.STOPPED, Campaign.State.FINISHED):
        return 0
    return max(active * steps - steps_done, 0) + pending


def forecast_finish(
    *, remaining: int, sent_last_7_days: int, daily_cap: int | None, today: date
) -> date | None:
    """Pure: the day the campaign's remaining messages are sent at its recent pace.

    The pace is the average of the last seven days, or the campaign's cap when it has not sent
    yet; None when neither gives a pace (nothing to extrapolate from).
    """
    if remaining <= 0:
        return today
    pace = sent_last_7_days / 7 if sent_last_7_days else float(daily_cap or 0)
    if pace <= 0:
        return None
    return today + timedelta(days=math.ceil(remaining / pace) - 1)


def campaign_steps(campaign: Campaign) -> list[StepRow]:
    """Per step and per variant: scheduled (pending), sent, replied, bounced. Four queries."""
    steps = list(campaign.steps.order_by("position"))
    variants = list(Variant.objects.filter(step__campaign=campaign).order_by("step", "label"))
    msg: dict[tuple[int | None, int | None], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for step_id, variant_id, state, n in (
        Message.objects.filter(campaign=campaign)
        .values("step", "variant", "state")
        .annotate(n=Count("id"))
        .values_list("step", "variant", "state", "n")
    ):
        key = "scheduled" if state in PENDING_STATES else state
        msg[(step_id, variant_id)][key] += n
        msg[(step_id, None)][key] += n
    for step_id, variant_id, type_, n in (
        Event.objects.filter(
            Q(type=Event.Type.REPLIED)
            | Q(type=Event.Type.BOUNCED, bounce_type=Event.BounceType.HARD),
            campaign=campaign,
        )
        .values("message__step", "message__variant", "type")
        .annotate(n=Count("id"))
        .values_list("message__step", "message__variant", "type", "n")
    ):
        msg[(step_id, variant_id)][type_] += n
        msg[(step_id, None)][type_] += n
    by_step: dict[int, list[Variant]] = defaultdict(list)
    for v in variants:
        by_step[v.step_id].append(v)
    return [
        StepRow(
            step=s,
            counts=_step_counts(msg.get((s.pk, None), {})),
            variants=[(v, _step_counts(msg.get((s.pk, v.pk), {}))) for v in by_step[s.pk]],
        )
        for s in steps
    ]


def _step_counts(raw: dict[str, int]) -> dict[str, Any]:
    sent = raw.get(Message.State.SENT, 0)
    return {
        "scheduled": raw.get("scheduled", 0),
        "sent": sent,
        "replied": raw.get(Event.Type.REPLIED, 0),
        "bounced": raw.get(Event.Type.BOUNCED, 0),
        "failed": raw.get(Message.State.FAILED, 0),
        "reply_percent": round(100 * raw.get(Event.Type.REPLIED, 0) / sent, 1) if sent else 0,
    }
