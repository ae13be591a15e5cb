"""The one clock of the engine.

Every "now" in outreach comes from :func:`now`, so the whole engine can run on simulated time:
tests, ``outreach tick --now``, and ``outreach simulate`` set the clock with :func:`frozen` or
:func:`set_now` and advance it with :func:`advance`. Outside of those it is the system clock.

The override is process-wide (not thread-local) on purpose: the simulation drives the
scheduler and the sending engine from several threads that must agree on the time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

_lock = threading.Lock()
_override: datetime | None = None


def now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    override = _override
    if override is not None:
        return override
    return datetime.now(UTC)


def today(tz: str | tzinfo = "UTC") -> date:
    """The calendar day it is now in ``tz`` (the pool's day for caps)."""
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    return now().astimezone(zone).date()


def set_now(when: datetime | None) -> None:
    """Pin the clock to ``when`` (aware), or release it with ``None``."""
    global _override
    if when is not None and when.tzinfo is None:
        raise ValueError("the clock only takes timezone-aware datetimes")
    with _lock:
        _override = when.astimezone(UTC) if when is not None else None


def advance(delta: timedelta) -> datetime:
    """Move a pinned clock forward; it is an error on the real clock."""
    global _override
    with _lock:
        if _override is None:
            raise RuntimeError("advance() needs a pinned clock (set_now or frozen)")
        _override = _override + delta
        return _override


@contextmanager
def frozen(when: datetime) -> Iterator[None]:
    """Run a block at ``when``; the previous clock is restored afterwards."""
    previous = _override
    set_now(when)
    try:
        yield
    finally:
        set_now(previous)
