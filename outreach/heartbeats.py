"""Heartbeats of the engine loops: recorded on every pass, read by /healthz and the doctor."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings

from outreach.models import Heartbeat


def beat(name: str, running: bool = True) -> None:
    # Real time, not the engine clock: a simulated clock must not make a live loop look dead.
    now = datetime.now(UTC)
    Heartbeat.objects.update_or_create(
        name=name,
        host=socket.gethostname(),
        pid=os.getpid(),
        defaults={"beat_at": now, "running": running},
        create_defaults={"beat_at": now, "started_at": now, "running": running},
    )


@dataclass(frozen=True)
class StaleLoop:
    name: str
    host: str
    pid: int
    silent_seconds: int


def stale_loops() -> list[StaleLoop]:
    """Loops that are supposed to run but have not beaten within the allowed silence."""
    now = datetime.now(UTC)
    limit = now - timedelta(seconds=settings.OUTREACH_HEARTBEAT_STALE_SECONDS)
    return [
        StaleLoop(hb.name, hb.host, hb.pid, int((now - hb.beat_at).total_seconds()))
        for hb in Heartbeat.objects.filter(running=True, beat_at__lt=limit).order_by("name")
    ]
