"""The ``alerts`` loop: deliver the outbox one alert at a time, and run the periodic health
pass every ``OUTREACH_HEALTH_INTERVAL_SECONDS``."""

from __future__ import annotations

import threading
import time

from django.conf import settings

from outreach.alerts import delivery, rules
from outreach.lib.loop import Loop


class _Every:
    """Runs ``action`` at most once per ``seconds`` (monotonic), called from on_tick."""

    def __init__(self, seconds: float, action: object) -> None:
        self.seconds = seconds
        self.action = action
        self.last = float("-inf")

    def __call__(self) -> None:
        now = time.monotonic()
        if now - self.last >= self.seconds:
            self.last = now
            self.action()  # type: ignore[operator]


def make_loop(stop: threading.Event) -> Loop:
    return Loop(
        name="alerts",
        handle_one=delivery.deliver_one,
        idle_seconds=2.0,
        on_tick=_Every(settings.OUTREACH_HEALTH_INTERVAL_SECONDS, rules.periodic_pass),
        stop=stop,
    )
