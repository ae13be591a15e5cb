"""`outreach alerts`: deliver alerts and run the periodic health rules until SIGTERM."""

from __future__ import annotations

import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from outreach.alerts import delivery, rules
from outreach.alerts.loop import make_loop
from outreach.lib.loop import run_loop, stop_on_signals


class Command(BaseCommand):
    help = "Deliver the alert outbox and run the periodic health rules (a loop, until SIGTERM)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--once",
            action="store_true",
            help="run the health pass once, deliver what is due, and exit",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["once"]:
            rules.periodic_pass()
            delivered = 0
            while delivery.deliver_one():
                delivered += 1
            self.stdout.write(f"health pass done; {delivered} alert(s) handled")
            return
        stop = threading.Event()
        with stop_on_signals(stop):
            run_loop(make_loop(stop))
