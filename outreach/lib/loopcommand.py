"""The management command shape of every engine loop (``outreach scheduler``, ``worker`` ...).

A subclass names its loop factory; the command runs it until SIGTERM/SIGINT, or with
``--once`` until there is no work left (for cron-style use and tests).
"""

from __future__ import annotations

import threading
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand
from django.utils.module_loading import import_string

from outreach.lib.loop import Loop, run_loop, stop_on_signals


class LoopCommand(BaseCommand):
    # Dotted path to ``make_loop(stop: threading.Event) -> Loop``.
    loop_factory: str = ""

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--once", action="store_true", help="work until there is nothing left, then exit"
        )

    def make_loop(self, stop: threading.Event) -> Loop:
        factory = import_string(self.loop_factory)
        loop: Loop = factory(stop)
        return loop

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()
        loop = self.make_loop(stop)
        if options["once"]:
            count = 0
            while loop.handle_one():
                count += 1
            self.stdout.write(f"{loop.name}: {count} unit(s) of work")
            return
        stop_on_signals(stop)
        run_loop(loop)
