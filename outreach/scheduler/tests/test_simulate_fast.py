"""`outreach simulate` sends through the engine's take and finish without building each
message (``outreach.management.simulated_sending``). Same pool, seed and days through the
engine's complete send and through that shortcut must come out the same: every day's sends
per mailbox, caps (none exceeded), bounces, complaints, pauses with their reasons,
graduations, the warm-up ramp and the campaign's finish."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction

from outreach.management import simulated_sending
from outreach.scheduler import engine, planning, simulate

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE_POOL = ROOT / "examples" / "pool.toml"
EXAMPLE_CAMPAIGN = ROOT / "examples" / "campaign.toml"
START = date(2026, 3, 2)  # a Monday

pytestmark = [
    pytest.mark.skipif(not EXAMPLE_POOL.exists(), reason="examples/pool.toml missing"),
    # pytest-django sets up the test database only for a run that holds a test marked so:
    # without it, this module run alone would simulate in the development database.
    pytest.mark.django_db,
]


def _run(send_due: Any) -> dict[str, Any]:
    """Four days of the example pool, with bounces and complaints enough to pause mailboxes;
    rolled back afterwards."""
    options = simulate.Options(
        days=4,
        leads=500,
        bounce_rate=0.04,
        complaint_rate=0.01,
        resolution_seconds=600,
        config=EXAMPLE_POOL,
        campaign=EXAMPLE_CAMPAIGN if EXAMPLE_CAMPAIGN.exists() else None,
        seed=3,
        start=START,
    )
    planning._settle_cursor = 0  # process state of the settling pass: each run starts afresh
    with transaction.atomic():
        data = json.loads(json.dumps(simulate.simulate(options, send_due=send_due).to_dict()))
        transaction.set_rollback(True)
    del data["elapsed_seconds"], data["sends_per_second"]  # the only figures of the machine
    return data


@pytest.fixture(scope="module")
def both(django_db_setup: None, django_db_blocker: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    with django_db_blocker.unblock():
        full = _run(None)
        fast = _run(simulated_sending.send_due)
    return full, fast


@pytest.mark.slow
def test_the_shortcut_sends_what_the_full_send_sends_per_mailbox_and_day(
    both: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    full, fast = both
    assert full["totals"]["sent"] > 0
    per_mailbox = {m["address"]: m["sent"] for m in full["mailboxes"]}
    assert {m["address"]: m["sent"] for m in fast["mailboxes"]} == per_mailbox
    assert [d["sent"] for d in fast["days"]] == [d["sent"] for d in full["days"]]


@pytest.mark.slow
def test_the_shortcut_respects_every_cap_and_pauses_as_the_full_send_does(
    both: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    full, fast = both
    assert fast["totals"]["cap_exceeded"] == full["totals"]["cap_exceeded"] == 0
    # The rates pause mailboxes: the comparison is about something.
    assert full["totals"]["pauses"] > 0
    assert [d["pauses"] for d in fast["days"]] == [d["pauses"] for d in full["days"]]
    for key in ("hard_bounces", "complaints", "delivered", "graduated", "mailboxes_by_state"):
        assert [d[key] for d in fast["days"]] == [d[key] for d in full["days"]], key


@pytest.mark.slow
def test_the_shortcut_leaves_every_figure_of_the_report_as_the_full_send_does(
    both: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    full, fast = both
    assert fast == full


@pytest.mark.slow
def test_the_simulation_gives_the_engine_its_own_send_step_back(
    both: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    # simulate() lends its send step to the pass for the run only.
    assert engine.steps.send_due is not simulated_sending.send_due
