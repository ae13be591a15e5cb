"""Background loops: one unit of work at a time, until there is none, then sleep.

A loop is a callable ``handle_one() -> bool`` ("was there work"). :func:`run_loop` calls it
until it returns False (with the heartbeat and the loop's tick between two units at least
every ``tick_seconds``), sleeps ``idle_seconds`` (waking early when ``stop`` is set), and
returns once ``stop`` is set, never in the middle of a unit of work: SIGTERM lets in-flight
work finish. A unit that raises is logged and the loop goes on after a pause, so a database
restart or a provider outage does not kill the process. A unit that failed because the
database could not be reached starts an outage; the first pass that reaches the database
again ends it and reports its duration (``db_recovered_hook``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import InterfaceError, OperationalError

from outreach.lib.shutdown import Shutdown

log = logging.getLogger(__name__)


@dataclass
class Loop:
    name: str
    handle_one: Callable[[], bool]
    idle_seconds: float = 2.0
    error_pause_seconds: float = 5.0
    # Called once per pass through the loop, work or not, and between units at least every
    # tick_seconds while work keeps coming (with the heartbeat).
    on_tick: Callable[[], object] | None = None
    # A loop that always has work still beats and ticks this often (between two units): a
    # backlog longer than OUTREACH_HEARTBEAT_STALE_SECONDS must not read as a dead loop,
    # nor hold up what the tick does (the sending worker's recovery and provider health).
    tick_seconds: float = 30.0
    # Called once when the loop stops, after its last unit of work (work a unit left in
    # flight, connections to close).
    on_stop: Callable[[], None] | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    # time.monotonic() of the first unit that failed on a database error of the current
    # outage; None while the database answers.
    db_down_since: float | None = None


# Called with the loop's name on every pass; the project sets it to record heartbeats
# (outreach.apps), so lib stays free of domain imports.
heartbeat_hook: Callable[[str, bool], None] | None = None


# Called as ``(loop name, seconds)`` once the database answers again after units of work of
# that loop failed on database errors; the project raises the `database_unreachable` alert
# (outreach.apps). It runs inside the loop's error handling: if it fails, the outage goes on.
db_recovered_hook: Callable[[str, float], None] | None = None


def _beat(loop: Loop, *, running: bool = True) -> None:
    if heartbeat_hook is not None:
        heartbeat_hook(loop.name, running)


def _tick(loop: Loop) -> None:
    if loop.on_tick is not None:
        loop.on_tick()


def _report_recovery(loop: Loop) -> None:
    """The database answered (the heartbeat went through): report the outage that ended."""
    if loop.db_down_since is None:
        return
    seconds = time.monotonic() - loop.db_down_since
    if db_recovered_hook is not None:
        db_recovered_hook(loop.name, seconds)
    log.warning("loop %s: database reachable again after %.0f s", loop.name, seconds)
    loop.db_down_since = None


def run_loop(loop: Loop) -> None:
    log.info("loop %s: started", loop.name)
    while not loop.stop.is_set():
        try:
            _beat(loop)
            if heartbeat_hook is not None:
                _report_recovery(loop)  # the heartbeat reached the database
            _tick(loop)
            ticked = time.monotonic()
            while not loop.stop.is_set() and loop.handle_one():
                # Not once the stop is asked for: a tick may call out (provider health).
                if not loop.stop.is_set() and time.monotonic() - ticked >= loop.tick_seconds:
                    _beat(loop)
                    _tick(loop)
                    ticked = time.monotonic()
            # Without a heartbeat hook the recovery shows only once a whole pass succeeded.
            _report_recovery(loop)
        except (OperationalError, InterfaceError):
            # The connection failed (refused, dropped, closed): the database is unreachable,
            # not a query that is wrong.
            if loop.db_down_since is None:
                loop.db_down_since = time.monotonic()
            log.exception("loop %s: database error; pausing", loop.name)
            _close_db_connections()
            loop.stop.wait(loop.error_pause_seconds)
            continue
        except Exception:
            log.exception("loop %s: unit of work failed; pausing", loop.name)
            _close_db_connections()
            loop.stop.wait(loop.error_pause_seconds)
            continue
        _close_db_connections()
        loop.stop.wait(loop.idle_seconds)
    if loop.on_stop is not None:
        try:
            loop.on_stop()
        except Exception:
            log.exception("loop %s: stopping failed", loop.name)
    try:
        _beat(loop, running=False)  # a clean stop is not a dead loop
    except Exception:
        log.exception("loop %s: could not record the stop", loop.name)
    log.info("loop %s: stopped", loop.name)


def _close_db_connections() -> None:
    # A connection left open across a database restart is dead; Django reconnects on the
    # next query once the stale one is closed.
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        conn.close_if_unusable_or_obsolete()


def stop_on_signals(stop: threading.Event) -> Shutdown:
    """Set ``stop`` on SIGTERM and SIGINT, and end the process if the in-flight work is not done
    ``OUTREACH_SHUTDOWN_SECONDS`` later (main thread only; see :mod:`outreach.lib.shutdown`).
    Use it as ``with stop_on_signals(stop): ...`` around the command's work."""
    return Shutdown(stop, settings.OUTREACH_SHUTDOWN_SECONDS)


# Loops that ``outreach run`` starts beside the web server. Apps register theirs at import
# time of their ``loops`` module (see ``outreach.settings.ENGINE_LOOPS``).
LoopFactory = Callable[[threading.Event], Loop]
