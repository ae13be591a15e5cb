"""Every long-running command stops within its bound, however the stop signals arrive.

Each case is a child process forked from the test process (Django is already set up there, so a
child costs milliseconds, not the second a fresh interpreter takes): it runs the command, tells
the parent once its signal handlers are installed, and is signalled. Each child arms
faulthandler, so one that hangs ends with the stacks of its threads in the test output.
"""

from __future__ import annotations

import faulthandler
import os
import random
import re
import select
import signal
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from django.conf import settings as django_settings
from django.core.management import call_command, get_commands, load_command_class
from django.db import connections
from django.utils.module_loading import import_string

from outreach.lib import shutdown
from outreach.lib.loop import Loop

COMMANDS = {
    "run": ["--bind", "127.0.0.1:0", "--threads", "2"],
    "worker": [],
    "scheduler": [],
    "inbox": [],
    "alerts": [],
}
# Each pattern is (signal, seconds to wait before sending the next one).
PATTERNS = {
    "one SIGTERM": [(signal.SIGTERM, 0.0)],
    "two SIGTERMs 1 ms apart": [(signal.SIGTERM, 0.001), (signal.SIGTERM, 0.0)],
    "a burst of 100": [(signal.SIGTERM, 0.0)] * 100,
    "SIGTERM then SIGINT": [(signal.SIGTERM, 0.001), (signal.SIGINT, 0.0)],
}
# Each pattern is sent this many times to each command, after a random pause of up to
# MAX_LANDING seconds, so that the signals land at different points: while the command starts
# its loops, inside a first unit of work, in the idle wait. The handler takes no lock, so
# there is no rare interleaving to hunt (the deadlock itself is driven deterministically in
# outreach/lib/tests/test_shutdown.py). Three of each, 60 children, take 10 to 19 s per
# database on two cores (the longer under a load average of 9).
REPEATS = 3
MAX_LANDING = 0.15
# OUTREACH_SHUTDOWN_SECONDS in the children: an idle command stops long before it.
BOUND = 10


@contextmanager
def forked(command: str, *args: str) -> Iterator[int]:
    """A child running ``outreach <command> <args>``; yields its pid once it is listening to
    signals. The child exits 0 when the command returns, 1 when it raised."""
    ready_r, ready_w = os.pipe()
    connections.close_all()  # the child opens its own; a shared socket would corrupt both
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        status = 1
        try:
            os.close(ready_r)
            faulthandler.dump_traceback_later(BOUND + 5, exit=True)
            _announce_when_installed(ready_w)
            call_command(command, *args)
            status = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(status)
    os.close(ready_w)
    try:
        if not select.select([ready_r], [], [], BOUND)[0] or not os.read(ready_r, 1):
            raise AssertionError(f"outreach {command} never installed its signal handlers")
        yield pid
    finally:
        os.close(ready_r)
        try:
            if os.waitpid(pid, os.WNOHANG) == (0, 0):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        except ChildProcessError:
            pass  # reaped by exit_status()


def _announce_when_installed(ready_w: int) -> None:
    install = shutdown.Shutdown.__init__

    def installed(self: shutdown.Shutdown, *args: object, **kwargs: object) -> None:
        install(self, *args, **kwargs)  # type: ignore[arg-type]
        os.write(ready_w, b"!")

    shutdown.Shutdown.__init__ = installed  # type: ignore[method-assign]


def exit_status(pid: int, timeout: float) -> int | None:
    """The child's exit status, or None when it is still running after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    return None


def _import_once(command: str) -> None:
    """Import the command and the loops here, once, rather than in every child."""
    load_command_class(get_commands()[command], command)
    for path in django_settings.OUTREACH_LOOPS:
        import_string(path)


def test_every_long_running_command_stops_within_its_bound(
    transactional_db: None, settings: object
) -> None:
    # One test for all the commands: on PostgreSQL the database flush after each test costs
    # more than the children of one command.
    settings.OUTREACH_SHUTDOWN_SECONDS = BOUND  # type: ignore[attr-defined]
    for command, args in COMMANDS.items():
        _import_once(command)
        landing = random.Random(command)
        for pattern, signals in PATTERNS.items():
            for attempt in range(REPEATS):
                with forked(command, *args) as pid:
                    time.sleep(landing.uniform(0, MAX_LANDING))
                    for signum, pause in signals:
                        os.kill(pid, signum)
                        time.sleep(pause)
                    status = exit_status(pid, BOUND)
                assert status == 0, f"outreach {command}, {pattern}, try {attempt + 1}: {status}"


# --- outreach run while a loop finishes its unit of work ----------------------------------

# The loop of the tests below: its unit of work starts, says so, and lasts until the test lets
# it end (a byte on RELEASE) or for ever.
BUSY: tuple[int, int] = (-1, -1)
RELEASE: tuple[int, int] = (-1, -1)


def held_loop(stop: threading.Event) -> Loop:
    def handle_one() -> bool:
        os.write(BUSY[1], b"!")
        os.read(RELEASE[0], 1)
        return False

    return Loop(name="held", handle_one=handle_one, idle_seconds=60, stop=stop)


@pytest.fixture
def held_run(transactional_db: None, settings: object) -> Iterator[str]:
    """``outreach run`` is to run only the held loop; yields the port it is to listen on."""
    global BUSY, RELEASE
    BUSY, RELEASE = os.pipe(), os.pipe()
    settings.OUTREACH_LOOPS = [f"{__name__}.held_loop"]  # type: ignore[attr-defined]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    try:
        yield str(port)
    finally:
        for fd in (*BUSY, *RELEASE):
            os.close(fd)


def _wait_until_busy() -> None:
    if not select.select([BUSY[0]], [], [], BOUND)[0] or os.read(BUSY[0], 1) != b"!":
        raise AssertionError("the held loop never started its unit of work")


def _healthz_when_stopping(port: str) -> requests.Response:
    deadline = time.monotonic() + 5
    while True:
        response = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
        if response.status_code == 503 or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


def test_outreach_run_answers_stopping_until_the_unit_of_work_ends(held_run: str) -> None:
    with forked("run", "--bind", f"127.0.0.1:{held_run}", "--threads", "2") as pid:
        _wait_until_busy()
        os.kill(pid, signal.SIGTERM)
        response = _healthz_when_stopping(held_run)
        assert response.status_code == 503
        assert response.json() == {"status": "stopping"}
        assert exit_status(pid, 0.5) is None  # the unit of work is still in flight
        os.write(RELEASE[1], b"!")
        assert exit_status(pid, BOUND) == 0


def test_outreach_run_exits_at_its_bound_when_the_unit_of_work_does_not_end(
    held_run: str, settings: object
) -> None:
    settings.OUTREACH_SHUTDOWN_SECONDS = 1  # type: ignore[attr-defined]
    with forked("run", "--bind", f"127.0.0.1:{held_run}", "--threads", "2") as pid:
        _wait_until_busy()
        os.kill(pid, signal.SIGTERM)
        assert exit_status(pid, BOUND) == shutdown.EXIT_STOP_TIMED_OUT


def test_the_systemd_units_leave_the_bound_time_to_act() -> None:
    deploy = Path(__file__).resolve().parents[2] / "deploy"
    for unit in ("outreach.service", "outreach-loop@.service"):
        found = re.search(r"^TimeoutStopSec=(\d+)$", (deploy / unit).read_text(), re.M)
        assert found, unit
        assert int(found[1]) > django_settings.OUTREACH_SHUTDOWN_SECONDS, unit
