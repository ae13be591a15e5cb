"""The pool's pages, read side: mailbox and domain rows, the pool's rates and their checks,
its daily series and today's use, provider accounts, open alerts and messages in doubt.
A fixed number of queries per call (see :mod:`outreach.dashboard.queries`)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import F, OuterRef, Subquery
from django.utils.timezone import localtime

from outreach.alerts import inbox
from outreach.alerts.models import Alert
from outreach.campaigns.models import Message
from outreach.dashboard.queries import (
    EVENT_COUNTS,
    Rates,
    WindowCounts,
    counter_totals,
    percent,
    pool_day,
    rates_from,
    rollup_counts,
    window_event_counts,
    window_start,
)
from outreach.events.models import Event
from outreach.pool import models as pool_models
from outreach.pool import policy
from outreach.pool.models import Domain, Mailbox, PoolSettings, ProviderAccount, StateChange
from outreach.pool.states import way_back
from outreach.scheduler.capacity import domain_capacity, domain_holds, pool_capacity
from outreach.scheduler.models import DailyCounter


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
        return percent(self.sent_today, self.cap_today)


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
        return percent(self.sent_today, self.capacity_today)


def _when(at: datetime | None) -> str:
    return localtime(at).strftime("%Y-%m-%d %H:%M") if at else "–"


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
                rates=rates_from(window, by_mailbox.get(mb.pk)),
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
        for name in EVENT_COUNTS
    }
    rates = rates_from(sent, counts)
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
    return {"sent": sent, "capacity": capacity, "percent": percent(sent, capacity)}


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
            for row in rollup_counts(first_day, pool_day(pool), "day", **filters)
        }
    out = []
    for i in range(days):
        day = first_day + timedelta(days=i)
        counts = per_day.get(i, {})
        out.append(
            {"day": day, "sent": sent.get(day, 0), **{k: counts.get(k) or 0 for k in EVENT_COUNTS}}
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
