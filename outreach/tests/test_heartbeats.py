"""Engine loops leave heartbeats; /healthz reports a loop that stopped beating."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client

from outreach.lib.loop import Loop, run_loop
from outreach.models import Heartbeat


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
