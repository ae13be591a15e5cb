"""`outreach worker`: send claimed messages until SIGTERM (in-flight sends finish first)."""

from __future__ import annotations

import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from outreach.lib.loop import Loop, run_loop, stop_on_signals
from outreach.sending.engine import Worker


class Command(BaseCommand):
    help = "Send claimed messages through their providers (a loop, until SIGTERM)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--concurrency",
            type=int,
            default=None,
            help="parallel provider calls (default: OUTREACH_WORKER_CONCURRENCY)",
        )
        parser.add_argument("--once", action="store_true", help="send what is due now, then exit")
        parser.add_argument(
            "--idle", type=float, default=1.0, help="seconds to sleep when nothing is due"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()
        worker = Worker(concurrency=options["concurrency"], stop=stop)
        try:
            if options["once"]:
                worker.on_tick()
                sent = 0
                while worker.handle_one():
                    sent += 1
                self.stdout.write(f"{sent} batch(es) sent")
                return
            with stop_on_signals(stop):
                run_loop(
                    Loop(
                        name="worker",
                        handle_one=worker.handle_one,
                        idle_seconds=options["idle"],
                        on_tick=worker.on_tick,
                        stop=stop,
                    )
                )
        finally:
            worker.close()
