"""`outreach scheduler`: the planning and routing loop, until SIGTERM."""

from __future__ import annotations

import threading
from typing import Any

from django.core.management.base import BaseCommand

from outreach.lib.loop import run_loop, stop_on_signals
from outreach.scheduler.engine import make_loop


class Command(BaseCommand):
    help = "Run the control plane loop: plan, warm up, route and claim, every few seconds."

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()
        with stop_on_signals(stop):
            run_loop(make_loop(stop))
