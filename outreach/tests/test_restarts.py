"""Restarts and outages: the engine survives its database going away, and stops cleanly.

1. PostgreSQL stopped (``pg_ctl stop -m fast``) and started again while ``outreach scheduler``
   and ``outreach worker`` run as real processes against an SMTP sink: the loops reconnect by
   themselves and finish the work, no message arrives twice, every message ends ``sent``,
   ``unknown`` (a send whose result could not be stored during the outage: never resent) or
   back in routing (a call whose start could not be written was not made), and a
   ``database_unreachable`` alert says how long the database was away. The test owns its
   PostgreSQL server (initdb + pg_ctl on a free port), so stopping it disturbs nobody.
2. SIGTERM on ``outreach scheduler``, ``outreach inbox`` and ``outreach alerts`` lets the unit
   of work in flight finish and exits 0 (``outreach worker``: ``sending/tests/test_crash.py``).
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from outreach.campaigns.models import Message
from outreach.lib import clock
from outreach.models import Heartbeat
from outreach.providers.smtp.testserver import SmtpTestServer
from outreach.scheduler.models import DailyCounter
from outreach.sending.engine import Worker
from outreach.testing import child_database_url, enroll, make_campaign, make_leads, make_pool
from outreach.tests import scenario
from outreach.tests.pgserver import PgServer, postgres_bin, wait_until

LEADS = 150
OUTAGE_SECONDS = 8
WORKER_CONCURRENCY = 2


def _on_postgres_run() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture
def pg() -> Iterator[PgServer]:
    if not _on_postgres_run():
        pytest.skip("outages of a PostgreSQL server: the PostgreSQL run")
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("initdb/pg_ctl not installed")
    server = PgServer(bindir).init()
    server.start()
    try:
        yield server
    finally:
        server.remove()


def _env(database_url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OUTREACH_TEST_DATABASE_NAME"}
    env.update(
        DATABASE_URL=database_url,
        OUTREACH_LOG_LEVEL="WARNING",
        OUTREACH_VAR_DIR=str(tmp_path / "var"),
        OUTREACH_OUTBOX_DIR=str(tmp_path / "outbox"),
    )
    return env


def _outreach(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "outreach", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )


def _spawn(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "outreach", *args], env=env, stdout=out, stderr=out
        )


def _states(url: str) -> collections.Counter[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT state, count(*) FROM campaigns_message GROUP BY state")
        return collections.Counter({state: count for state, count in rows})


@pytest.mark.slow
def test_it_survives_a_postgresql_restart_while_the_loops_run(
    pg: PgServer, sink: SmtpTestServer, tmp_path: Path
) -> None:
    pg.create_database("outreach")
    url = pg.url("outreach")
    env = _env(url, tmp_path)
    _outreach(env, "migrate", "-v0")
    # Thirty mailboxes with a one-second pacing gap, claimed by a scheduler that passes every
    # few seconds: the sending spans half a minute, and the outage falls in the middle of it.
    limits = {"pacing_gap_seconds": 1, "pacing_jitter_seconds": 0}
    load = scenario.command(
        smtp_port=sink.port, leads=LEADS, domains=10, mailboxes_per_domain=3, limits=limits
    )
    _outreach(env, "shell", "-c", load)
    logs = {name: tmp_path / f"{name}.log" for name in ("scheduler", "worker")}
    scheduler = _spawn(env, logs["scheduler"], "scheduler")
    worker = _spawn(
        env, logs["worker"], "worker", "--idle", "0.2", "--concurrency", str(WORKER_CONCURRENCY)
    )
    try:
        assert wait_until(lambda: len(sink.received) >= 20, timeout=90), "nothing was sent"

        pg.stop()
        down_at = time.monotonic()
        during = len(sink.received)
        time.sleep(OUTAGE_SECONDS)
        pg.start()
        outage = time.monotonic() - down_at

        # Every message reaches the end of its road: sent, or stranded in `sending` by an
        # outage that struck between the provider's answer and the commit of `sent`.
        def settled() -> bool:
            states = _states(url)
            return states["sent"] + states["sending"] + states["unknown"] == LEADS

        assert wait_until(settled, timeout=120, step=1), _states(url)
        assert scheduler.poll() is None and worker.poll() is None, "a loop died"
        assert len(sink.received) > during, "nothing was sent after the restart"
    finally:
        for proc in (scheduler, worker):
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(timeout=60) for proc in (scheduler, worker)]
    assert codes == [0, 0], {name: log.read_text()[-3000:] for name, log in logs.items()}

    # A stranded `sending` row becomes `unknown` once its lease has run out (never resent).
    later = (clock.now() + timedelta(minutes=10)).isoformat()
    _outreach(env, "tick", "--now", later, "--no-send")

    tags = [int(r.message["X-Outreach-Message"]) for r in sink.received]
    assert len(tags) == len(set(tags)), "a message arrived twice"
    with psycopg.connect(url, autocommit=True) as conn:
        final: dict[int, str] = dict(
            conn.execute("SELECT id, state FROM campaigns_message").fetchall()
        )
        alerts = conn.execute(
            "SELECT severity, figures FROM alerts_alert WHERE kind = 'database_unreachable'"
        ).fetchall()
    assert len(final) == LEADS
    states = collections.Counter(final.values())
    assert set(states) <= {"sent", "unknown", "scheduled", "claimed"}, states
    sent = {pk for pk, state in final.items() if state == "sent"}
    assert sent <= set(tags)  # every `sent` message arrived
    # Back in routing (and claimed again by the tick): never handed to the SMTP server.
    rerouted = {pk for pk, state in final.items() if state in ("scheduled", "claimed")}
    assert not rerouted & set(tags)
    assert set(tags) <= set(final)  # nothing else did
    # `unknown`: only what was in flight when the database went away (one batch).
    assert states["unknown"] <= WORKER_CONCURRENCY * Worker.BATCH_PER_THREAD, states

    assert alerts, "no alert said the database was unreachable"
    severity, figures = alerts[0]
    assert severity == "critical"
    # Measured by the first loop to report, from the first failure it saw (an idle loop sees
    # the outage late): within the outage, and never longer than it plus the reconnection.
    assert 1 <= figures["seconds"] <= outage + 30, figures


# --- SIGTERM ------------------------------------------------------------------------------


def _needs_file_database() -> None:
    if connection.vendor == "sqlite" and "memory" in str(connection.settings_dict["NAME"]):
        pytest.skip("loop processes need a database file (OUTREACH_TEST_DATABASE_NAME)")


def _stop_with_sigterm(proc: subprocess.Popen[bytes], log: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=60)
    assert code == 0, log.read_text()[-3000:]


def _beating(name: str) -> bool:
    return Heartbeat.objects.filter(name=name, running=True).exists()


@pytest.mark.django_db(transaction=True)
def test_it_stops_the_scheduler_on_sigterm_between_claims(tmp_path: Path) -> None:
    _needs_file_database()
    make_pool(5, 2, limits={"pacing_gap_seconds": 0, "pacing_jitter_seconds": 0})
    campaign = make_campaign()
    enroll(campaign, make_leads(2000))
    log = tmp_path / "scheduler.log"
    proc = _spawn(_env(child_database_url(), tmp_path), log, "scheduler")
    assert wait_until(lambda: Message.objects.exists(), timeout=60), log.read_text()[-3000:]

    # Mid-pass: planning done, claiming under way (or just finished).
    _stop_with_sigterm(proc, log)

    # Each claim is whole: every claimed message holds one unit of the global counter, no
    # unit is held without its message, and the loop said it stopped cleanly.
    claimed = Message.objects.filter(state=Message.State.CLAIMED).count()
    used = sum(DailyCounter.objects.filter(scope="global").values_list("used", flat=True))
    assert used == claimed
    assert Message.objects.filter(state=Message.State.SCHEDULED).count() + claimed == 2000
    assert Heartbeat.objects.filter(name="scheduler", running=False).exists()
    assert not _beating("scheduler")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("command", ["inbox", "alerts"])
def test_it_stops_the_loop_on_sigterm_and_exits_0(command: str, tmp_path: Path) -> None:
    _needs_file_database()
    log = tmp_path / f"{command}.log"
    proc = _spawn(_env(child_database_url(), tmp_path), log, command)
    assert wait_until(lambda: _beating(command), timeout=60), log.read_text()[-3000:]

    _stop_with_sigterm(proc, log)

    assert Heartbeat.objects.filter(name=command, running=False).exists()


# --- the outage report itself ---------------------------------------------------------------


def _probe_reports(
    monkeypatch: pytest.MonkeyPatch, errors: list[Exception], pause: float
) -> list[tuple[str, float]]:
    """Run a loop whose first passes raise ``errors``, then stops; what it reported as a
    database recovery (name, seconds down)."""
    from outreach.lib import loop as loops

    reports: list[tuple[str, float]] = []
    failures = iter(errors)
    stop = threading.Event()

    def handle_one() -> bool:
        error = next(failures, None)
        if error is not None:
            raise error
        stop.set()
        return False

    monkeypatch.setattr(loops, "heartbeat_hook", None)
    monkeypatch.setattr(loops, "db_recovered_hook", lambda name, s: reports.append((name, s)))
    monkeypatch.setattr(loops, "_close_db_connections", lambda: None)
    loops.run_loop(
        loops.Loop("probe", handle_one, idle_seconds=0, error_pause_seconds=pause, stop=stop)
    )
    return reports


def test_it_reports_an_outage_once_the_database_answers_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from django.db import OperationalError

    refused = OperationalError("connection refused")
    reports = _probe_reports(monkeypatch, [refused, refused], pause=0.05)

    assert len(reports) == 1
    name, seconds = reports[0]
    assert name == "probe"
    assert 0.05 <= seconds < 30


def test_it_does_not_take_a_wrong_query_for_an_outage(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.db import IntegrityError

    reports = _probe_reports(monkeypatch, [IntegrityError("duplicate key")], pause=0.01)
    assert reports == []
