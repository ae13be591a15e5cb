"""Opens and clicks beside replies on the campaign page, per step and A/B variant.

Read from the rollups (one grouped query). Replies stay the headline; opens and clicks show
the human estimate first and every visitor beside it (docs/tracking.md).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from django.db.models import Q, Sum

from outreach.campaigns.models import Campaign
from outreach.dashboard.campaign_rows import StepRow
from outreach.metrics.figures import COUNTERS, Figures
from outreach.metrics.models import DailyRollup

FIELDS = ("opened", "opened_human", "clicked", "clicked_human")


def add_engagement(campaign: Campaign, steps: list[StepRow]) -> bool:
    """Put the open and click counts and the human-estimate rates into each step's and each
    variant's counts; True when the page should show them (the campaign tracks, or did)."""
    totals: dict[tuple[int, int | None], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in (
        DailyRollup.objects.filter(campaign_id=campaign.pk)
        .values("step_id", "variant_id")
        .annotate(**{name: Sum(name) for name in FIELDS})
    ):
        for name in FIELDS:
            totals[(row["step_id"], row["variant_id"])][name] += row[name] or 0
            totals[(row["step_id"], None)][name] += row[name] or 0
    for s in steps:
        _fill(s.counts, totals.get((s.step.pk, None), {}))
        for variant, counts in s.variants:
            _fill(counts, totals.get((s.step.pk, variant.pk), {}))
    seen = any(n for t in totals.values() for n in t.values())
    return campaign.track_opens or campaign.track_clicks or seen


def _fill(counts: dict[str, Any], raw: dict[str, int]) -> None:
    sent = counts.get("sent", 0)
    for name in FIELDS:
        counts[name] = raw.get(name, 0)
    counts["open_percent"] = _percent(counts["opened_human"], sent)
    counts["click_percent"] = _percent(counts["clicked_human"], sent)


def _percent(n: int, sent: int) -> float:
    return round(100 * n / sent, 1) if sent else 0


def mailbox_engagement(mailbox_id: int, first_day: date) -> Figures | None:
    """The mailbox's figures from the rollups since ``first_day`` (its open and click rates are
    the human estimate: :class:`Figures`), or None when no campaign that tracks opens or
    clicks ever sent from it: then the page shows no open or click rate at all. One query."""
    tracked = Campaign.objects.filter(Q(track_opens=True) | Q(track_clicks=True)).values("pk")
    sums = DailyRollup.objects.filter(mailbox_id=mailbox_id).aggregate(
        tracked_sent=Sum("sent", filter=Q(campaign_id__in=tracked)),
        **{name: Sum(name, filter=Q(day__gte=first_day)) for name in COUNTERS},
    )
    if not sums.pop("tracked_sent"):
        return None
    return Figures.from_mapping(sums)
