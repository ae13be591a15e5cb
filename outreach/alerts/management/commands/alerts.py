"""`outreach alerts`: deliver alerts and run the periodic health rules until SIGTERM;
`outreach alerts --test`: a test alert on every channel, and which failed."""

from __future__ import annotations

import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

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
        parser.add_argument(
            "--test",
            action="store_true",
            help="send a test alert on every configured channel and say which failed",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["test"]:
            self._test()
            return
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

    def _test(self) -> None:
        results = delivery.test_channels()
        if not results:
            raise CommandError(
                "no alert channel is configured: alerts go to the log only "
                "(set OUTREACH_ALERT_URLS or OUTREACH_TELEGRAM_BOT_TOKEN, see docs/telegram.md)"
            )
        for name, outcome in results:
            self.stdout.write(f"{name}: {'ok' if outcome.ok else 'FAILED: ' + outcome.error}")
        failed = [name for name, outcome in results if not outcome.ok]
        if failed:
            raise CommandError(f"{len(failed)} of {len(results)} channel(s) failed")
        self.stdout.write(f"test alert delivered on {len(results)} channel(s)")
