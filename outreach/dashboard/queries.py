"""The read side of the dashboard: aggregate queries over the other apps' tables.

Every function here issues a fixed number of queries whatever the size of the pool or the age
of the data (no query per row): rows are fetched once and grouped in Python, windows are
bounded by indexed time columns, and "last event" is a correlated subquery that walks the
``(mailbox, occurred_at)`` index once per mailbox inside a single statement.

Sends are counted from the daily counters (one unit reserved per message handed to a
provider, never released after the provider call), so a year of messages is never scanned;
deliveries, replies, bounces and complaints from the daily rollups (:mod:`outreach.metrics`,
the one owner of such counts), so a year of events is never scanned either.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import (
    Count,
    F,
    OuterRef,
    Q,
    Subquery,
    Sum,
)
from django.utils.timezone import localtime

from outreach.alerts import inbox
from outreach.alerts.models import Alert
from outreach.campaigns.models import Campaign, Enrollment, Message, Step, Variant
from outreach.events.models import Event
from outreach.lib import clock
from outreach.metrics.cost import month_cost as metrics_month_cost
from outreach.metrics.models import DailyRollup
from outreach.pool import models as pool_models
from outreach.pool import policy
from outreach.pool.models import Domain, Mailbox, PoolSettings, ProviderAccount, StateChange
from outreach.pool.states import way_back
from outreach.scheduler.capacity import domain_capacity, domain_holds, pool_capacity
from outreach.scheduler.forecast import finish_day
from outreach.scheduler.models import DailyCounter

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


# 2. Event counts ----------------------------------------------------------------------------

# What the pages count of events, read from the daily rollups (outreach.metrics, the one owner
# of such counts): a window is a sum over a few rows per mailbox and day, never a scan of raw
# events. "bounced" is hard bounces only, as the bounce rate of docs/rules.md counts.
_EVENT_COUNTS = {
    "delivered": Sum("delivered"),
    "bounced": Sum("bounced_hard"),
    "complained": Sum("complained"),
    "replied": Sum("replied"),
}


def _rollup_counts(first_day: date, last_day: date, *group: str, **filters: int) -> Any:
    """The event counts of the rollups from ``first_day`` to ``last_day``, grouped by
    ``group`` (rollup columns). One aggregate query."""
    return (
        DailyRollup.objects.filter(day__gte=first_day, day__lte=last_day, **filters)
        .values(*group)
        .annotate(**_EVENT_COUNTS)
    )


@dataclass(frozen=True)
class WindowCounts:
    """The thresholds' window of events, counted once: per mailbox id (None: events matched
    to no mailbox) and per day index of the window (0 = its first day)."""

    by_mailbox: dict[Any, dict[str, int]]
    by_day: dict[int, dict[str, int]]


def window_event_counts(pool: PoolSettings, mailbox_id: int | None = None) -> WindowCounts:
    """The window's rollups (every mailbox's, or one's), summed per mailbox and per day: the
    mailbox rows, the pool's rates and its chart all read it. Two queries, on the rollups'
    ``(day, mailbox_id, ...)`` index alone."""
    days = pool.thresholds.window_days
    first_day, _ = window_start(pool, days)
    today = pool_day(pool)
    filters = {"mailbox_id": mailbox_id} if mailbox_id is not None else {}
    by_mailbox = {
        row.pop("mailbox_id") or None: row  # 0: matched to no mailbox
        for row in _rollup_counts(first_day, today, "mailbox_id", **filters)
    }
    by_day = {
        (row.pop("day") - first_day).days: row
        for row in _rollup_counts(first_day, today, "day", **filters)
    }
    return WindowCounts(by_mailbox, by_day)


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
    first_day, _ = window_start(pool, pool.thresholds.window_days)
    mailboxes = Mailbox.objects.all()
    extra: tuple[str, ...] = ()
    if last_event:
        latest = Event.objects.filter(mailbox=OuterRef("pk")).order_by("-occurred_at")
        mailboxes = mailboxes.annotate(last_event_at=Subquery(latest.values("occurred_at")[:1]))
        extra = ("last_event_at",)
    keys = None
    if mailbox is not None:
        mailboxes = mailboxes.filter(pk=mailbox.pk)
        keys = [str(mailbox.pk)]
    counters = counter_totals(DailyCounter.Scope.MAILBOX, first_day, today, keys)
    if window_counts is None or mailbox is not None:
        window_counts = window_event_counts(pool, mailbox.pk if mailbox is not None else None)
    by_mailbox = window_counts.by_mailbox
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


def sent_by_day(pool: PoolSettings, days: int, mailbox: Mailbox | None = None) -> dict[date, int]:
    """Units used per day from the first day of a ``days``-day window on, for one mailbox or
    the whole pool (its global counter): one query."""
    first_day, _ = window_start(pool, days)
    scope, key = (
        (DailyCounter.Scope.MAILBOX, str(mailbox.pk))
        if mailbox is not None
        else (DailyCounter.Scope.GLOBAL, "*")
    )
    return dict(
        DailyCounter.objects.filter(day__gte=first_day, scope=scope, key=key).values_list(
            "day", "used"
        )
    )


def pool_rates(
    pool: PoolSettings,
    window_counts: WindowCounts | None = None,
    sent_days: dict[date, int] | None = None,
) -> tuple[Rates, list[RateCheck]]:
    """The pool's rates over the thresholds' window, each judged against its threshold
    (from ``window_counts`` of :func:`window_event_counts` and the window's ``sent_days`` of
    :func:`sent_by_day` when the caller has them)."""
    thresholds = pool.thresholds
    if sent_days is None:
        sent_days = sent_by_day(pool, thresholds.window_days)
    sent = sum(sent_days.values())
    if window_counts is None:
        window_counts = window_event_counts(pool)
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


def daily_series(
    pool: PoolSettings,
    days: int,
    *,
    mailbox: Mailbox | None = None,
    per_day: dict[int, dict[str, int]] | None = None,
    sent_days: dict[date, int] | None = None,
) -> list[dict[str, Any]]:
    """Per pool day over the last ``days``: sent, delivered, bounced (hard), complained,
    replied, for one mailbox or the whole pool. Two queries, fewer when the caller passes the
    event counts per day index (``per_day``, from :func:`window_event_counts`) or the units
    used per day (``sent_days``, from :func:`sent_by_day`)."""
    first_day, _ = window_start(pool, days)
    sent = sent_days if sent_days is not None else sent_by_day(pool, days, mailbox)
    if per_day is None:
        filters = {"mailbox_id": mailbox.pk} if mailbox is not None else {}
        per_day = {
            (row.pop("day") - first_day).days: row
            for row in _rollup_counts(first_day, pool_day(pool), "day", **filters)
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
    """The metrics app's month cost (from its rollups, with the configured budget)."""
    m = metrics_month_cost(pool_day(pool))
    return Cost(
        sends=m.sends,
        sending_cost=m.send_cost,
        domains_cost=m.domain_cost,
        month_to_date=m.total,
        projection=m.projection,
        budget=m.budget,
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


# Per (step id, variant id) of one campaign, 0 for none: its rollups' sent, delivered,
# replied and hard-bounced, all time.
Outcomes = dict[tuple[int, int], dict[str, int]]


def campaign_outcomes(campaign_id: int) -> Outcomes:
    """One campaign's rollups summed per step and variant, all time: one query, on the
    rollups' campaign index alone. The campaign page's row, steps and funnel all read it."""
    return {
        (row.pop("step_id"), row.pop("variant_id")): row
        for row in DailyRollup.objects.filter(campaign_id=campaign_id)
        .values("step_id", "variant_id")
        .annotate(
            sent=Sum("sent"),
            delivered=Sum("delivered"),
            replied=Sum("replied"),
            bounced=Sum("bounced_hard"),
        )
    }


def outcome_totals(outcomes: Outcomes) -> dict[str, int]:
    """Pure: a campaign's outcomes summed over its steps and variants."""
    names = ("sent", "delivered", "replied", "bounced")
    return {name: sum(row.get(name) or 0 for row in outcomes.values()) for name in names}


def campaign_rows(
    campaign: Campaign | None = None, outcomes: Outcomes | None = None
) -> list[CampaignRow]:
    """Every campaign (or the one given, with its :func:`campaign_outcomes` when the caller
    has them) with its enrollments, sends and forecast: four queries."""
    campaigns = list(
        Campaign.objects.order_by("-created_at", "slug")
        if campaign is None
        else Campaign.objects.filter(pk=campaign.pk)
    )
    only: dict[str, Any] = {} if campaign is None else {"campaign": campaign.pk}
    enrollments: dict[int, dict[str, int]] = defaultdict(dict)
    steps_done: dict[int, int] = {}
    for cid, state, n, done in (
        Enrollment.objects.filter(**only)
        .values("campaign", "state")
        .annotate(n=Count("id"), done=Sum("last_step"))
        .values_list("campaign", "state", "n", "done")
    ):
        enrollments[cid][state] = n
        if state == Enrollment.State.ACTIVE:
            steps_done[cid] = done or 0
    messages: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for cid, state, n in (
        Message.objects.filter(campaign__isnull=False, **only)
        .values("campaign", "state")
        .annotate(n=Count("id"))
        .values_list("campaign", "state", "n")
    ):
        messages[cid][state] += n
    # Replies and hard bounces from the rollups, on their campaign index (never raw events).
    events: dict[int, dict[str, int]]
    if campaign is not None:
        events = {campaign.pk: outcome_totals(outcomes or campaign_outcomes(campaign.pk))}
    else:
        events = {
            row["campaign_id"]: row
            for row in DailyRollup.objects.filter(campaign_id__gt=0)
            .values("campaign_id")
            .annotate(replied=Sum("replied"), bounced=Sum("bounced_hard"))
        }
    pool = PoolSettings.load()
    first_day, _ = window_start(pool, 7)
    recent = counter_totals(
        DailyCounter.Scope.CAMPAIGN,
        first_day,
        pool_day(pool),
        None if campaign is None else [str(campaign.pk)],
    )
    steps = dict(
        Step.objects.filter(**only)
        .values("campaign")
        .annotate(n=Count("id"))
        .values_list("campaign", "n")
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
                replied=events.get(c.pk, {}).get("replied") or 0,
                bounced=events.get(c.pk, {}).get("bounced") or 0,
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
    pace = sent_last_7_days / 7 if sent_last_7_days else float(daily_cap or 0)
    return finish_day(remaining, pace, today)


def campaign_steps(campaign: Campaign, outcomes: Outcomes | None = None) -> list[StepRow]:
    """Per step and per variant: scheduled (pending), sent, replied, bounced (the latter two
    from :func:`campaign_outcomes`, read here unless the caller has them). Four queries."""
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
    # Replies and hard bounces per step and variant from the rollups (0: none).
    if outcomes is None:
        outcomes = campaign_outcomes(campaign.pk)
    for (step_id, variant_id), row in outcomes.items():
        for group in ((step_id or None, variant_id or None), (step_id or None, None)):
            msg[group][Event.Type.REPLIED] += row.get("replied") or 0
            msg[group][Event.Type.BOUNCED] += row.get("bounced") or 0
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
