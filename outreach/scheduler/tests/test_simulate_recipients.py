"""`outreach simulate` reports whom its sends went to: the recipient provider class of each
simulated send, read from the MX answers routing kept, with "unknown" for domains it has none
for (the generated ``.example`` companies have no MX)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from django.db import transaction

from outreach.campaigns.models import Message
from outreach.management.commands.simulate import render_table
from outreach.scheduler import simulate
from outreach.scheduler.models import RecipientDomain

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE_POOL = ROOT / "examples" / "pool.toml"
START = date(2026, 3, 2)  # a Monday
SEED = 11

pytestmark = pytest.mark.skipif(not EXAMPLE_POOL.exists(), reason="examples/pool.toml missing")


def _generated_domains(leads: int) -> list[str]:
    """The company domains the simulation will generate for this seed (made and undone)."""
    with transaction.atomic():
        made = simulate.generate_leads(leads, random.Random(SEED), datetime.now(UTC))
        domains = sorted({lead.email_domain for lead in made})
        transaction.set_rollback(True)
    return domains


@pytest.mark.django_db
def test_it_counts_the_simulated_sends_per_recipient_provider_and_they_add_up() -> None:
    google, microsoft, *_others = _generated_domains(12)
    checked = datetime(2026, 3, 1, tzinfo=UTC)
    RecipientDomain.objects.create(domain=google, provider="google", checked_at=checked)
    RecipientDomain.objects.create(domain=microsoft, provider="microsoft", checked_at=checked)
    options = simulate.Options(
        days=1,
        leads=12,
        resolution_seconds=600,
        config=EXAMPLE_POOL,
        seed=SEED,
        start=START,
    )

    data = simulate.simulate(options).to_dict()

    mix = data["recipient_providers"]
    assert sum(mix.values()) == data["totals"]["sent"] > 0
    by_domain = Counter(
        Message.objects.filter(sent_at__isnull=False).values_list("to_domain", flat=True)
    )
    assert mix.get("google", 0) == by_domain[google] > 0
    assert mix.get("microsoft", 0) == by_domain[microsoft] > 0
    # Everything else (other companies, warm-up seeds) has no kept class: unknown, not guessed.
    assert mix["unknown"] == data["totals"]["sent"] - by_domain[google] - by_domain[microsoft]
    assert set(mix) <= {"google", "microsoft", "yahoo", "gateway", "other", "unknown"}
    assert f"google {mix['google']} (" in render_table(data)
