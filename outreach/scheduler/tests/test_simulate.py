"""`outreach simulate`: 30 simulated days of the real control plane on the example pool.

The month is simulated once (module fixture, inside a transaction rolled back afterwards) and
read back into plain values; each test then states one property of it.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction

from outreach.campaigns.models import Message
from outreach.management import simulated_sending
from outreach.pool.models import PoolSettings, StateChange
from outreach.pool.policy import WarmupSchedule, warmup_cap
from outreach.scheduler import simulate, simulate_day

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE_POOL = ROOT / "examples" / "pool.toml"
EXAMPLE_CAMPAIGN = ROOT / "examples" / "campaign.toml"
# A Thursday. The US moves to summer time on Sunday 8 March 2026: step 2 of the leads mailed
# on the first day falls due that Sunday and waits for Monday's window opening, an hour
# earlier in UTC than the Thursday one.
START = date(2026, 3, 5)

pytestmark = [
    pytest.mark.skipif(not EXAMPLE_POOL.exists(), reason="examples/pool.toml missing"),
    # pytest-django sets up the test database only for a run that holds a test marked so:
    # without it, this module run alone would simulate in the development database.
    pytest.mark.django_db,
]


@dataclass
class Sent:
    mailbox: str
    sent_at: datetime
    kind: str
    lead_timezone: str
    step: int | None
    enrollment_id: int | None
    in_reply_to: str
    message_id_header: str


@dataclass
class Month:
    data: dict[str, Any]
    sent: list[Sent]
    graduations: dict[str, datetime]
    gap_seconds: int
    warmup: WarmupSchedule
    target: int
    window: tuple[set[int], time, time, str]


def _sent(m: Message) -> Sent:
    assert m.mailbox is not None and m.sent_at is not None
    return Sent(
        mailbox=m.mailbox.address,
        sent_at=m.sent_at,
        kind=m.kind,
        lead_timezone=m.enrollment.lead.timezone if m.enrollment else "",
        step=m.step.position if m.step else None,
        enrollment_id=m.enrollment_id,
        in_reply_to=m.in_reply_to,
        message_id_header=m.message_id_header or "",
    )


@pytest.fixture(scope="module")
def month(django_db_setup: None, django_db_blocker: Any) -> Month:
    """30 days from START on the example pool and campaign, 200 leads; the clock moves in
    10-minute steps (the properties hold at any resolution, the run is shorter)."""
    options = simulate.Options(
        days=30,
        leads=200,
        resolution_seconds=600,
        bounce_rate=0.01,
        complaint_rate=0.0,
        config=EXAMPLE_POOL,
        campaign=EXAMPLE_CAMPAIGN if EXAMPLE_CAMPAIGN.exists() else None,
        seed=7,
        start=START,
    )
    with django_db_blocker.unblock(), transaction.atomic():
        # As `outreach simulate` runs it: the engine's take and finish without building each
        # message (test_simulate_fast shows both sends come out the same).
        result = simulate.simulate(options, send_due=simulated_sending.send_due)
        data = json.loads(json.dumps(result.to_dict()))
        sent = [
            _sent(m)
            for m in Message.objects.filter(state=Message.State.SENT)
            .select_related("mailbox", "enrollment__lead", "step")
            .order_by("sent_at", "pk")
        ]
        graduations = {
            c.mailbox.address: c.at
            for c in StateChange.objects.filter(from_state="warming", to_state="active")
            .exclude(mailbox=None)
            .select_related("mailbox")
            if c.mailbox is not None
        }
        pool = PoolSettings.load()
        campaign = result.campaign
        window = (
            set(campaign["window"]["days"]),
            time.fromisoformat(campaign["window"]["start"]),
            time.fromisoformat(campaign["window"]["end"]),
            campaign["timezone"],
        )
        found = Month(
            data=data,
            sent=sent,
            graduations=graduations,
            gap_seconds=pool.limits.pacing_gap_seconds,
            warmup=pool.warmup,
            target=pool.limits.mailbox_daily_cap,
            window=window,
        )
        # Nothing of the month stays in the test database.
        transaction.set_rollback(True)
    return found


@pytest.mark.slow
def test_it_reports_every_day_in_the_documented_json_shape(month: Month) -> None:
    data = month.data
    assert len(data["days"]) == 30
    assert [d["date"] for d in data["days"]][:2] == ["2026-03-05", "2026-03-06"]
    for day in data["days"]:
        for key in ("date", "capacity", "sent", "sent_by_mailbox_max", "cap_exceeded"):
            assert key in day
        assert 0 <= day["sent"]
        assert day["utilization"] == pytest.approx(day["sent"] / day["capacity"], abs=1e-3)
        assert set(day["mailboxes_by_state"]) <= {"warming", "active", "paused", "cooldown"}
    date.fromisoformat(data["finish_date"])
    assert data["totals"]["sent"] == sum(d["sent"] for d in data["days"]) == len(month.sent)


@pytest.mark.slow
def test_it_never_exceeds_a_cap_on_any_day(month: Month) -> None:
    for day in month.data["days"]:
        assert day["cap_exceeded"] == 0, day["cap_exceeded_details"]
        assert day["sent"] <= day["capacity"]
        assert day["sent_by_mailbox_max"] <= month.target
    cap = month.data["campaign"]["daily_cap"]
    assert all(day["campaign_sent"] <= (cap or day["capacity"]) for day in month.data["days"])


@pytest.mark.slow
def test_it_ramps_warming_mailboxes_up_as_the_brief_says_day_by_day(month: Month) -> None:
    warmed = [m for m in month.data["mailboxes"] if m["warmed"]]
    assert len(warmed) == 6  # the example's two new domains
    for mailbox in warmed:
        warming_days = [i for i, s in enumerate(mailbox["states"]) if s == "warming"]
        for i in warming_days:
            expected = warmup_cap(i + 1, month.warmup, target=month.target)
            assert mailbox["cap"][i] == expected, (mailbox["address"], i + 1)
            assert mailbox["sent"][i] == expected, (mailbox["address"], i + 1)
    assert [warmup_cap(d, month.warmup, target=40) for d in range(1, 15)] == [
        5, 6, 7, 8, 9, 10, 10, 12, 15, 18, 22, 27, 33, 40,
    ]  # fmt: skip


@pytest.mark.slow
def test_it_graduates_the_warming_mailboxes_once_they_reach_their_target(month: Month) -> None:
    warmed = {m["address"] for m in month.data["mailboxes"] if m["warmed"]}
    assert set(month.graduations) == warmed
    for address, at in month.graduations.items():
        # Day 14 of warm-up is the first at 40/day.
        assert at.date() == START + timedelta(days=13), address
    assert all(m["state"] == "active" for m in month.data["mailboxes"] if m["warmed"])
    graduated = [a for d in month.data["days"] for a in d["graduated"]]
    assert sorted(graduated) == sorted(warmed)


@pytest.mark.slow
def test_it_sends_only_inside_the_window_in_the_recipients_time_zone_across_dst(
    month: Month,
) -> None:
    days, start, end, campaign_tz = month.window
    campaign_sends = [s for s in month.sent if s.kind == Message.Kind.CAMPAIGN]
    assert campaign_sends
    for s in campaign_sends:
        local = s.sent_at.astimezone(ZoneInfo(s.lead_timezone or campaign_tz))
        assert local.isoweekday() in days, s
        assert start <= local.time() < end, s
    # New York leads: 09:00 EST is 14:00 UTC before 8 March, 09:00 EDT is 13:00 UTC after.
    new_york = [s.sent_at for s in campaign_sends if s.lead_timezone == "America/New_York"]
    before = [t for t in new_york if t.date() < date(2026, 3, 8)]
    after = [t for t in new_york if t.date() > date(2026, 3, 8)]
    assert before and after
    assert min(t.timetz() for t in before) >= time(14, 0, tzinfo=UTC)
    assert time(13, 0, tzinfo=UTC) <= min(t.timetz() for t in after) < time(14, 0, tzinfo=UTC)


@pytest.mark.slow
def test_it_keeps_the_pacing_gap_between_two_sends_of_a_mailbox(month: Month) -> None:
    by_mailbox: dict[str, list[datetime]] = defaultdict(list)
    for s in month.sent:
        by_mailbox[s.mailbox].append(s.sent_at)
    gap = timedelta(seconds=month.gap_seconds)
    for address, times in by_mailbox.items():
        for earlier, later in itertools.pairwise(times):
            assert later - earlier >= gap, (address, earlier, later)


@pytest.mark.slow
def test_it_sends_follow_ups_from_the_first_messages_mailbox_in_its_thread(month: Month) -> None:
    first: dict[int, Sent] = {
        s.enrollment_id: s for s in month.sent if s.step == 1 and s.enrollment_id is not None
    }
    follow_ups = [s for s in month.sent if s.step is not None and s.step > 1]
    assert len(follow_ups) > len(first)  # steps 2 and 3 went out for most leads
    for s in follow_ups:
        assert s.enrollment_id is not None
        thread = first[s.enrollment_id]
        assert s.mailbox == thread.mailbox
        assert s.in_reply_to == thread.message_id_header


@pytest.mark.slow
def test_it_finishes_the_campaign_and_says_when(month: Month) -> None:
    days = month.data["days"]
    assert month.data["finish_date_projected"] is False
    last_campaign_day = max(d["date"] for d in days if d["campaign_sent"])
    assert month.data["finish_date"] == last_campaign_day
    assert days[-1]["campaign_pending"] == 0
    assert days[-1]["enrollments_active"] == 0


def test_it_runs_from_the_command_line_in_a_throwaway_database(tmp_path: Path) -> None:
    """The operator's database is never touched: the one in DATABASE_URL is not even created."""
    operator_db = tmp_path / "operator.sqlite3"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{operator_db}",
        "OUTREACH_VAR_DIR": str(tmp_path / "var"),
        "OUTREACH_LOG_LEVEL": "WARNING",
    }
    report = tmp_path / "report"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "outreach",
            "simulate",
            "--days",
            "2",
            "--leads",
            "12",
            "--config",
            str(EXAMPLE_POOL),
            "--start",
            "2026-03-02",
            "--json",
            "--report",
            str(report),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert [d["date"] for d in data["days"]] == ["2026-03-02", "2026-03-03"]
    assert all(d["cap_exceeded"] == 0 for d in data["days"])
    assert data["days"][0]["campaign_sent"] == 12
    assert data["finish_date"]
    assert sum(data["recipient_providers"].values()) == data["totals"]["sent"]
    assert not operator_db.exists()
    html = (report / "index.html").read_text()
    assert html.count("<svg") == 2
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert json.loads((report / "simulation.json").read_text())["days"] == data["days"]


def test_it_refuses_a_pool_file_that_does_not_exist(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "outreach", "simulate", "--config", str(tmp_path / "no.toml")],
        env={**os.environ, "OUTREACH_VAR_DIR": str(tmp_path / "var")},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode != 0
    assert "not found" in out.stderr


def test_it_counts_a_send_over_any_cap_so_a_reservation_bug_would_show() -> None:
    caps = simulate_day.DayCaps(
        mailbox={"a@send1.example.com": 2, "b@send1.example.com": 2},
        domain={"send1.example.com": 3},
        total=4,
        campaign={"launch": 3},
        recipient_domain=1,
    )

    def send(mailbox: str, campaign: str | None = "launch", to: str = "x.example") -> Any:
        return simulate_day.SendRecord(mailbox, "send1.example.com", campaign, to)

    within = [send("a@send1.example.com", to="x.example"), send("b@send1.example.com", None)]
    assert simulate_day.caps_exceeded(within, caps) == []
    over = [
        send("a@send1.example.com", to="x.example"),
        send("a@send1.example.com", to="y.example"),
        send("a@send1.example.com", to="y.example"),
        send("b@send1.example.com", None),
        send("b@send1.example.com", None),
    ]
    assert simulate_day.caps_exceeded(over, caps) == [
        "global: 5 > 4",
        "mailbox a@send1.example.com: 3 > 2",
        "domain send1.example.com: 5 > 3",
        "recipient domain y.example: 2 > 1",
    ]
