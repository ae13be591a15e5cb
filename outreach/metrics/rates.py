"""A mailbox's rates for routing, from the rollups: the same figures the health rules judge
(:func:`outreach.alerts.rules.mailbox_figures`), so the router and the rules never disagree
about a mailbox's bounce or complaint rate."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from outreach.metrics import rollups
from outreach.metrics.figures import RATE_COUNTERS
from outreach.scheduler.evidence import MailboxRates


def mailbox_rates(now: datetime, thresholds: Any) -> dict[int, MailboxRates]:
    """Per mailbox: hard-bounce and complaint rates over the thresholds' window of pool days
    (per attempt, :attr:`Figures.attempts`), and whether today shows a spike (any complaint,
    or more than one hard bounce and above the warning rate of today's sends). Two grouped
    queries, whatever the pool size."""
    tz = rollups.pool_timezone()
    today = rollups.day_of(now, tz)
    first, last = rollups.window_days(thresholds.window_days, today)
    # Read every pass, over the whole pool: only what the rates below are made of.
    window = rollups.figures_by("mailbox_id", first=first, last=last, counters=RATE_COUNTERS)
    day = rollups.figures_by("mailbox_id", first=today, last=today, counters=RATE_COUNTERS)
    rates = {}
    for mailbox_id, figures in window.items():
        if mailbox_id is None:
            continue
        today_figures = day.get(mailbox_id)
        spike = today_figures is not None and (
            today_figures.complained > 0
            or (
                today_figures.bounced_hard > 1
                and today_figures.bounced_hard
                > thresholds.bounce_warning_rate * max(today_figures.sent, 1)
            )
        )
        rates[mailbox_id] = MailboxRates(figures.bounce_rate, figures.complaint_rate, spike)
    return rates
