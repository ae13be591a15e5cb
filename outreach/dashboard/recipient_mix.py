"""The overview's "Recipients by provider" panel: messages sent today and over the last seven
pool days, per recipient provider class (Google, Microsoft, Yahoo, security gateway, other,
unknown), as routing's kept MX answers class them (:mod:`outreach.scheduler.recipients`)."""

from __future__ import annotations

from dataclasses import dataclass

from outreach.campaigns.models import Message
from outreach.dashboard.queries import percent, window_start
from outreach.pool.models import PoolSettings
from outreach.scheduler.recipients import CLASSES, UNCLASSED, provider_mix

SPANS = (("today", 1), ("week", 7))
LABELS = {
    "google": "Google",
    "microsoft": "Microsoft",
    "yahoo": "Yahoo",
    "gateway": "Security gateway",
    "other": "Other",
    UNCLASSED: "Unknown",
}


@dataclass(frozen=True)
class Row:
    provider: str
    label: str
    today: int
    today_percent: int
    week: int
    week_percent: int


def rows(pool: PoolSettings) -> tuple[list[Row], dict[str, int]]:
    """One row per class that received mail in the last seven days, and each span's total.

    Two queries, one per span, both counting sent messages by when they were sent."""
    mixes = {
        name: provider_mix(
            Message.objects.filter(
                state=Message.State.SENT, sent_at__gte=window_start(pool, days)[1]
            )
        )
        for name, days in SPANS
    }
    totals = {name: sum(mix.values()) for name, mix in mixes.items()}
    today, week = mixes["today"], mixes["week"]
    return [
        Row(
            provider=name,
            label=LABELS[name],
            today=today.get(name, 0),
            today_percent=percent(today.get(name, 0), totals["today"]),
            week=week[name],
            week_percent=percent(week[name], totals["week"]),
        )
        for name in (*CLASSES, UNCLASSED)
        if name in week
    ], totals
