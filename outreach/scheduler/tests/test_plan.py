"""`outreach plan`: what a daily target needs, and when today's pool reaches it.

The projection is checked against the simulator, which runs the real control plane: on the
same pool, the day the plan says the target is reached is the day the simulation reaches it,
and the capacity the plan projects for that day is within 5% of the simulated one.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction

from outreach.lib import clock
from outreach.pool import config as pool_config
from outreach.pool import config_apply as pool_config_apply
from outreach.pool.models import Mailbox
from outreach.pool.policy import Limits, WarmupSchedule
from outreach.scheduler import plan, simulate

START = date(2026, 3, 2)  # a Monday
# One warm domain (2 x 40 = 80/day) and one new domain whose two mailboxes start warm-up.
POOL_TOML = """
timezone = "UTC"
[limits]
mailbox_daily_cap = 40
domain_daily_cap = 250
global_daily_cap = 1500
[warmup]
seeds = ["seed@inbox-seeds.example.net"]
[providers.sandbox]
kind = "sandbox"
{domains}
"""


def _domain(name: str, warm: bool) -> str:
    boxes = "".join(
        f'[[domains.mailboxes]]\naddress = "{who}@{name}"\nwarmup = {"false" if warm else "true"}\n'
        for who in ("ann", "bob")
    )
    return f'[[domains]]\nname = "{name}"\nprovider = "sandbox"\n{boxes}'


@pytest.fixture
def pool_file(tmp_path: Path) -> Path:
    path = tmp_path / "pool.toml"
    domains = [_domain("warm.example", True), _domain("fresh.example", False)]
    path.write_text(POOL_TOML.format(domains="\n".join(domains)), encoding="utf-8")
    return path


def _pool(**mailboxes: tuple[str, int | None]) -> plan.Pool:
    return plan.Pool(
        today=START,
        limits=Limits(),
        warmup=WarmupSchedule(),
        domains=(plan.PlannedDomain("a.example", 250),),
        mailboxes=tuple(
            plan.PlannedMailbox(name, "a.example", state, 40, warmup_day_today=day)
            for name, (state, day) in mailboxes.items()
        ),
    )


def test_it_counts_mailboxes_and_domains_for_a_target_once_warm() -> None:
    needs = plan.needs(1200, Limits())
    assert (needs.mailboxes, needs.domains, needs.over_global_cap) == (30, 10, False)
    assert plan.needs(1600, Limits()).over_global_cap
    # A domain cap below three mailboxes' worth needs more domains.
    assert plan.needs(1200, Limits(domain_daily_cap=100)).domains == 12


def test_it_projects_a_warming_mailbox_to_its_graduation_day() -> None:
    pool = _pool(w=("warming", 1), a=("active", None), p=("paused", None))
    # Day 14 of the schedule is the first at 40/day (docs/scheduling.md).
    assert plan.graduation_day(pool.mailboxes[0], pool) == START + timedelta(days=13)
    assert plan.capacity_on(START, pool) == 40 + 5  # the paused mailbox gives nothing
    assert plan.first_day_reached(pool, 80) == START + timedelta(days=13)
    assert plan.first_day_reached(pool, 200) is None


def test_it_buys_the_fewest_mailboxes_that_reach_the_target_by_the_date() -> None:
    pool = _pool(a=("active", None))
    by = START + timedelta(days=20)
    bought = plan.to_buy(pool, 400, by)
    assert bought is not None
    assert bought.capacity_by >= 400
    # Bought tomorrow, a mailbox is on warm-up day 20 on `by`: at its full 40.
    assert bought.mailboxes == 9 and bought.domains == 3
    # One fewer would not do.
    fewer = plan._with_new_mailboxes(pool, bought.mailboxes - 1, 0, 3)
    assert plan.capacity_on(by, fewer) < 400
    assert plan.to_buy(pool, 40, by) == plan.Purchase(0, 0, START + timedelta(days=1), 40)
    assert plan.to_buy(pool, 2000, by) is None  # above the global cap


@pytest.mark.slow
@pytest.mark.django_db
def test_it_agrees_with_a_30_day_simulation_on_the_day_the_target_is_reached(
    pool_file: Path,
) -> None:
    target = 140  # 80 warm + 2 warming mailboxes at 30 or more: warm-up day 13
    with clock.frozen(datetime.combine(START, time(0), tzinfo=UTC)):
        with transaction.atomic():
            pool_config_apply.apply(pool_config.parse(pool_file.read_text(encoding="utf-8")))
            projected = plan.make_plan(plan.load_pool(START), target, days=30)
            transaction.set_rollback(True)
    options = simulate.Options(
        days=30,
        leads=4,
        config=pool_file,
        start=START,
        resolution_seconds=4 * 3600,
        complaint_rate=0.0,
        bounce_rate=0.0,
    )
    result = simulate.simulate(options)
    simulated = [d["capacity"] for d in result.to_dict()["days"]]
    sim_day = next(i for i, c in enumerate(simulated) if c >= target)
    assert projected.reached_on == START + timedelta(days=sim_day)
    assert abs(projected.capacities[sim_day] - simulated[sim_day]) <= 0.05 * simulated[sim_day]
    assert projected.capacities == simulated


@pytest.mark.django_db
def test_the_command_prints_the_plan_as_json(pool_file: Path) -> None:
    with clock.frozen(datetime.combine(START, time(12), tzinfo=UTC)):
        pool_config_apply.apply(pool_config.parse(pool_file.read_text(encoding="utf-8")))
        out = StringIO()
        call_command("plan", "--target", "140", "--by", "2026-03-10", "--json", stdout=out)
    data: dict[str, Any] = json.loads(out.getvalue())
    assert data["reached_on"] == "2026-03-14"
    assert data["have"] == {"mailboxes": 4, "domains": 2}
    assert data["buy"]["mailboxes"] >= 1
    assert {g["mailbox"] for g in data["graduations"]} == set(
        Mailbox.objects.filter(state="warming").values_list("address", flat=True)
    )
    assert all(g["on"] == "2026-03-15" for g in data["graduations"])


@pytest.mark.django_db
def test_the_command_refuses_a_bad_date_or_target() -> None:
    with pytest.raises(CommandError, match="not a date"):
        call_command("plan", "--target", "100", "--by", "2026-02-30")
    with pytest.raises(CommandError, match="at least 1"):
        call_command("plan", "--target", "0")
