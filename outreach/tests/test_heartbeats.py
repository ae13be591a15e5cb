"""Engine loops leave heartbeats; /healthz reports a loop that stopped beating."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client

from outreach.lib.loop import Loop, run_loop
from outreach.models import Heartbeat
from outreach.sending.engine import Worker


@pytest.mark.django_db(transaction=True)
def test_a_loop_beats_while_running_and_records_its_clean_stop() -> None:
    stop = threading.Event()
    seen: list[bool] = []

    def handle_one() -> bool:
        seen.append(Heartbeat.objects.get(name="probe").running)
        stop.set()
        return False

    run_loop(Loop("probe", handle_one, idle_seconds=0.01, stop=stop))
    assert seen == [True]
    assert Heartbeat.objects.get(name="probe").running is False


@pytest.mark.django_db
def test_healthz_reports_a_loop_that_stopped_beating(client: Client) -> None:
    client.force_login(User.objects.create_user("ops", is_staff=True))
    assert client.get("/healthz").status_code == 200
    Heartbeat.objects.create(
        name="worker",
        host="box-1",
        pid=4242,
        running=True,
        beat_at=datetime.now(UTC) - timedelta(minutes=30),
    )
    response = client.get("/healthz")
    assert response.status_code == 503
    stale = response.json()["stale_loops"]
    assert [(s["name"], s["host"]) for s in stale] == [("worker", "box-1")]
    assert stale[0]["silent_seconds"] >= 1800


@pytest.mark.django_db
def test_healthz_ignores_loops_that_stopped_cleanly(client: Client) -> None:
    Heartbeat.objects.create(
        name="inbox",
        host="box-1",
        pid=1,
        running=False,
        beat_at=datetime.now(UTC) - timedelta(days=1),
    )
    assert client.get("/healthz").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_failing_unit_of_work_does_not_kill_the_loop() -> None:
    stop = threading.Event()
    calls: list[int] = []

    def handle_one() -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database went away")
        stop.set()
        return False

    run_loop(Loop("flaky", handle_one, idle_seconds=0.01, error_pause_seconds=0.01, stop=stop))
    assert len(calls) == 2


def test_a_busy_loop_beats_well_inside_the_stale_limit_it_allows() -> None:
    """A loop with a backlog beats every Loop.tick_seconds, the sending worker between units
    of up to Worker.PIPELINE_SECONDS: the smallest stale limit the settings accept leaves
    room for both, so a busy worker never reads as a dead one."""
    env = {**os.environ, "OUTREACH_HEARTBEAT_STALE_SECONDS": "59"}
    run = subprocess.run(
        [sys.executable, "-c", "import outreach.settings"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode != 0
    assert "OUTREACH_HEARTBEAT_STALE_SECONDS: must be >= 60, got 59" in run.stderr
    assert Loop.tick_seconds + Worker.PIPELINE_SECONDS <= 60
