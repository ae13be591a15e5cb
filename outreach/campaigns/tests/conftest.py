"""Fixtures of the campaigns tests: a small pool, a campaign with variants, paths to data."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from outreach.campaigns.models import Campaign, Step, Variant
from outreach.lib import clock
from outreach.pool.models import Mailbox
from outreach.testing import make_campaign, make_pool

DATA = Path(__file__).parent / "data"
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.fixture(autouse=True)
def _pinned_clock() -> None:
    """A Monday morning; the root conftest releases the clock after each test."""
    clock.set_now(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))


@pytest.fixture
def pool(db: None) -> list[Mailbox]:
    return make_pool(domains=2, mailboxes_per_domain=2)


@pytest.fixture
def campaign(db: None) -> Campaign:
    """Draft, two steps; step 2 has variants A and B, B needs ``first_name``."""
    campaign = make_campaign("intro", steps=2, state=Campaign.State.DRAFT)
    step2 = Step.objects.get(campaign=campaign, position=2)
    step2.variants.update(body_html="<p>Hi {{ first_name | default('there') }}</p>")
    Variant.objects.create(
        step=step2, label="B", subject="", body_html="<p>Hey {{ first_name }}, again.</p>"
    )
    return campaign
