"""The read side of the dashboard, its shared base: the window arithmetic, the daily counters
and the rollups' event counts that the page modules (:mod:`outreach.dashboard.pool_rows`,
:mod:`outreach.dashboard.campaign_rows`, :mod:`outreach.dashboard.costs`) read.

Every function of these modules issues a fixed number of queries whatever the size of the pool
or the age of the data (no query per row): rows are fetched once and grouped in Python, windows
are bounded by indexed time columns, and "last event" is a correlated subquery that walks the
``(mailbox, occurred_at)`` index once per mailbox inside a single statement.

Sends are counted from the daily counters (one unit reserved per message handed to a
provider, never released after the provider call), so a year of messages is never scanned;
deliveries, replies, bounces and complaints from the daily rollups (:mod:`outreach.metrics`,
the one owner of such counts), so a year of events is never scanned either.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Q, Sum

from outreach.campaigns.models import Message
from outreach.lib import clock
from outreach.metrics.models import DailyRollup
from outreach.pool.models import PoolSettings
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


def pct(rate: float | None, digits: int = 1) -> str:
    """A rate (0.031) as "3.1%"; a dash when there is no rate."""
    return "–" if rate is None else f"{100 * rate:.{digits}f}%"


def percent(part: int, whole: int) -> int:
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
EVENT_COUNTS = {
    "delivered": Sum("delivered"),
    "bounced": Sum("bounced_hard"),
    "complained": Sum("complained"),
    "replied": Sum("replied"),
}


def rollup_counts(first_day: date, last_day: date, *group: str, **filters: int) -> Any:
    """The event counts of the rollups from ``first_day`` to ``last_day``, grouped by
    ``group`` (rollup columns). One aggregate query."""
    return (
        DailyRollup.objects.filter(day__gte=first_day, day__lte=last_day, **filters)
        .values(*group)
        .annotate(**EVENT_COUNTS)
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
        for row in rollup_counts(first_day, today, "mailbox_id", **filters)
    }
    by_day = {
        (row.pop("day") - first_day).days: row
        for row in rollup_counts(first_day, today, "day", **filters)
    }
    return WindowCounts(by_mailbox, by_day)


def rates_from(sent: int, counts: dict[str, int] | None) -> Rates:
    counts = counts or {}
    return Rates(
        sent=sent,
        delivered=counts.get("delivered") or 0,
        bounced=counts.get("bounced") or 0,
        complained=counts.get("complained") or 0,
        replied=counts.get("replied") or 0,
    )
