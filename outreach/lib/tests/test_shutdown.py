"""Stopping on SIGTERM/SIGINT: nothing in the signal handler can deadlock, and the stop is bounded.

The signal handlers are exercised in child processes: a handler runs on the main thread, and a
deadlock there would hang the test run instead of failing it. Each child arms faulthandler, so
a hang ends it with the stacks of its threads on stderr.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

from outreach.lib.shutdown import EXIT_STOP_TIMED_OUT, SIGNALS, Shutdown

PRELUDE = """
import faulthandler, signal, sys, threading, time
faulthandler.dump_traceback_later(8, exit=True)
"""

# A second SIGTERM arrives while the first one is setting the stop event, at the exact point
# where `Event.set` holds the event's lock (it is notifying the waiters). A handler that calls
# `stop.set()` itself runs again inside the first one and waits for that lock for ever.
SIGNAL_INSIDE_EVENT_SET = """
from outreach.lib.loop import stop_on_signals

stop = threading.Event()
notify_all = stop._cond.notify_all

def notify_all_then_another_signal():
    signal.raise_signal(signal.SIGTERM)
    notify_all()

stop._cond.notify_all = notify_all_then_another_signal
stop_on_signals(stop)
signal.raise_signal(signal.SIGTERM)
if not stop.wait(5):
    sys.exit("the stop event was never set")
print("stopped")
"""

# The unit of work in flight never ends.
STUCK_UNIT = """
from outreach.lib.shutdown import Shutdown

stop = threading.Event()
with Shutdown(stop, grace_seconds=1):
    signal.raise_signal(signal.SIGTERM)
    signal.raise_signal(signal.SIGINT)
    stop.wait()
    time.sleep(60)
print("not bounded")
"""

# The unit finishes in time; later signals change nothing.
FINISHED_UNIT = """
from outreach.lib.shutdown import Shutdown, stopping

stop = threading.Event()
with Shutdown(stop, grace_seconds=1) as shutdown:
    assert not stopping()
    signal.raise_signal(signal.SIGINT)
    stop.wait()
    assert stopping() and shutdown.signalled
    signal.raise_signal(signal.SIGTERM)
    signal.raise_signal(signal.SIGINT)
time.sleep(1.2)  # past the bound: disarmed once the work is done
print("stopped")
"""


def _child(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PRELUDE) + script],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "outreach.settings"},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_it_stops_when_a_second_signal_arrives_while_the_stop_event_is_being_set() -> None:
    done = _child(SIGNAL_INSIDE_EVENT_SET)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "stopped"


def test_it_exits_when_the_in_flight_work_outlasts_the_bound() -> None:
    done = _child(STUCK_UNIT)
    assert done.returncode == EXIT_STOP_TIMED_OUT, done.stderr
    assert "did not finish within 1 s of the stop signal" in done.stderr
    assert "not bounded" not in done.stdout


def test_it_ignores_later_signals_and_disarms_the_bound_once_the_work_is_done() -> None:
    done = _child(FINISHED_UNIT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "stopped"


def test_a_command_that_ends_on_its_own_gives_the_previous_handlers_back() -> None:
    before = {signum: signal.getsignal(signum) for signum in SIGNALS}
    with Shutdown(threading.Event(), grace_seconds=1) as shutdown:
        assert signal.getsignal(signal.SIGTERM) == shutdown._on_signal
    assert {signum: signal.getsignal(signum) for signum in SIGNALS} == before
