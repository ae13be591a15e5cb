"""The overview's trends over 30 or 90 pool days: sends against today's capacity, replies,
hard bounces and complaints from the daily rollups (:mod:`outreach.metrics`), and the number
of mailboxes not sending at the end of each day, replayed from the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Sum
from django.utils.safestring import SafeString

from outreach.campaigns.models import Lead
from outreach.dashboard import campaign_rows, charts, queries
from outreach.metrics.models import DailyRollup
from outreach.pool.models import Mailbox, PoolSettings, StateChange

SPANS = (30, 90)
NOT_SENDING = (Mailbox.State.PAUSED, Mailbox.State.COOLDOWN)


@dataclass(frozen=True)
class Stage:
    name: str
    count: int
    percent_of_sent: float | None


def daily(pool: PoolSettings, days: int, states: dict[int, str]) -> list[dict[str, Any]]:
    """Per pool day over the last ``days`` (oldest first): sent, replied, bounced (hard),
    complained and mailboxes paused or cooling at the day's end, from every mailbox's state
    now (``states``, mailbox id → state). Two queries."""
    today = queries.pool_day(pool)
    first = today - timedelta(days=days - 1)
    sums = {
        row["day"]: row
        for row in DailyRollup.objects.filter(day__gte=first, day__lte=today)
        .values("day")
        .annotate(
            sent=Sum("sent"),
            replied=Sum("replied"),
            bounced=Sum("bounced_hard"),
            complained=Sum("complained"),
        )
    }
    stopped = _not_sending_by_day(pool, first, today, states)
    out = []
    for i in range(days):
        day = first + timedelta(days=i)
        row = sums.get(day, {})
        out.append(
            {
                "day": day,
                **{k: row.get(k) or 0 for k in ("sent", "replied", "bounced", "complained")},
                "not_sending": stopped[day],
            }
        )
    return out


def not_sending_on(
    current: dict[int, str], changes: list[tuple[int, str, date]], days: list[date]
) -> dict[date, int]:
    """Pure: how many mailboxes were paused or cooling at the end of each of ``days``, from
    their states now and their transitions (mailbox, from_state, pool day), newest first."""
    states = dict(current)
    out: dict[date, int] = {}
    pending = list(changes)
    for day in sorted(days, reverse=True):
        # Undo every change made after this day: the state before it was its from_state.
        while pending and pending[0][2] > day:
            mailbox, from_state, _ = pending.pop(0)
            states[mailbox] = from_state
        out[day] = sum(1 for s in states.values() if s in NOT_SENDING)
    return out


def _not_sending_by_day(
    pool: PoolSettings, first: date, today: date, current: dict[int, str]
) -> dict[date, int]:
    zone = ZoneInfo(pool.timezone)
    since = queries.window_start(pool, (today - first).days + 1)[1]
    changes = [
        (pk, from_state, at.astimezone(zone).date())
        for pk, from_state, at in StateChange.objects.filter(at__gte=since)
        .exclude(mailbox=None)
        .order_by("-at", "-id")
        .values_list("mailbox_id", "from_state", "at")
    ]
    days = [first + timedelta(days=i) for i in range((today - first).days + 1)]
    return not_sending_on(current, changes, days)


def chart(series: list[dict[str, Any]], capacity_today: int) -> SafeString:
    sends = charts.sends_chart(
        series,
        complaints=True,
        line=capacity_today,
        line_label="capacity today",
        title=f"Sent, replies, bounces and complaints, last {len(series)} days",
    )
    stopped = charts.bar_chart(
        [f"{d['day']:%d %b}" for d in series],
        charts.Series("mailboxes not sending", [d["not_sending"] for d in series], "bar-bounced"),
        title=f"Mailboxes paused or in cooldown, last {len(series)} days",
    )
    return SafeString(sends + stopped)


def campaign_daily(pool: PoolSettings, campaign_id: int, days: int = 30) -> list[dict[str, Any]]:
    """Per pool day over the last ``days`` (oldest first): one campaign's sent, replied and
    hard-bounced messages from the daily rollups. One query."""
    today = queries.pool_day(pool)
    first = today - timedelta(days=days - 1)
    sums = {
        row["day"]: row
        for row in DailyRollup.objects.filter(
            campaign_id=campaign_id, day__gte=first, day__lte=today
        )
        .values("day")
        .annotate(sent=Sum("sent"), replied=Sum("replied"), bounced=Sum("bounced_hard"))
    }
    return [
        {
            "day": first + timedelta(days=i),
            **{
                k: sums.get(first + timedelta(days=i), {}).get(k) or 0
                for k in ("sent", "replied", "bounced")
            },
        }
        for i in range(days)
    ]


def campaign_chart(series: list[dict[str, Any]]) -> SafeString:
    return charts.sends_chart(series, title=f"Sent, replies and bounces, last {len(series)} days")


def funnel_stages(sent: int, delivered: int, replied: int, interested: int) -> list[Stage]:
    """Pure: the funnel's stages with each one's share of sent (None when nothing was sent)."""
    return [
        Stage(name, n, round(100 * n / sent, 1) if sent else None)
        for name, n in (
            ("sent", sent),
            ("delivered", delivered),
            ("replied", replied),
            ("interested", interested),
        )
    ]


def campaign_funnel(campaign_id: int, totals: dict[str, int] | None = None) -> list[Stage]:
    """Sent → delivered → replied (the rollups, all time; ``totals`` of
    :func:`outreach.dashboard.campaign_rows.outcome_totals` when the caller has them) → interested
    (leads of the campaign whose reply was labeled interested). Two queries, or one."""
    if totals is None:
        totals = campaign_rows.outcome_totals(campaign_rows.campaign_outcomes(campaign_id))
    interested = (
        Lead.objects.filter(enrollments__campaign_id=campaign_id, interested_at__isnull=False)
        .distinct()
        .count()
    )
    return funnel_stages(
        totals["sent"] or 0, totals["delivered"] or 0, totals["replied"] or 0, interested
    )
