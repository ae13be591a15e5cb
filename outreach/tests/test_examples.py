"""The example pool and campaign (examples/) meet the mission once warm-up ends: 1,200 cold
emails a weekday, within the caps (docs/rules.md, Caps)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from pathlib import Path

import pytest

from outreach.campaigns import config as campaign_config
from outreach.campaigns.models import Campaign
from outreach.pool import config as pool_config
from outreach.pool import config_apply as pool_config_apply
from outreach.pool.models import Mailbox, PoolSettings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MISSION = 1200

pytestmark = pytest.mark.django_db


def test_the_examples_reach_the_missions_daily_volume_once_warm_up_ends() -> None:
    pool_config_apply.apply(pool_config.parse((EXAMPLES / "pool.toml").read_text()))
    campaign_config.apply(campaign_config.load(EXAMPLES / "campaign.toml"))
    # Warm-up over: every mailbox has graduated.
    Mailbox.objects.update(state=Mailbox.State.ACTIVE)
    pool = PoolSettings.load()
    limits = pool.limits
    assert limits.mailbox_daily_cap <= 40
    assert limits.domain_daily_cap <= 250
    assert limits.global_daily_cap <= 1500

    by_domain: dict[int, int] = defaultdict(int)
    caps = {}
    for mailbox in Mailbox.objects.select_related("domain"):
        by_domain[mailbox.domain_id] += mailbox.cap_on(date(2027, 1, 4), limits, pool.warmup)
        caps[mailbox.domain_id] = mailbox.domain.cap(limits)
    capacity = min(limits.global_daily_cap, sum(min(n, caps[d]) for d, n in by_domain.items()))
    assert capacity >= MISSION

    campaign = Campaign.objects.get(slug="example-intro")
    assert campaign.daily_cap is None or campaign.daily_cap >= MISSION
    assert set(campaign.window_days) >= {1, 2, 3, 4, 5}
    # Each mailbox's share fits its window even at the widest pacing gap.
    window = datetime.combine(date.min, campaign.window_end) - datetime.combine(
        date.min, campaign.window_start
    )
    widest_gap = limits.pacing_gap_seconds + limits.pacing_jitter_seconds
    assert window.total_seconds() // widest_gap >= limits.mailbox_daily_cap
