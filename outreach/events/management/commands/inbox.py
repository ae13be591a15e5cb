"""`outreach inbox`: read replies, auto-replies, bounces and unsubscribes over IMAP, and the
seeds' spam folders (placement checks)."""

from __future__ import annotations

import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from outreach.events.loop import make_loop, read_one_due
from outreach.lib.loop import run_loop, stop_on_signals

# One pass reads at most this many folders, so --once always ends.
MAX_FOLDERS_PER_PASS = 10_000


class Command(BaseCommand):
    help = (
        "Poll the IMAP folders of every mailbox and the spam folders of every seed that has "
        "IMAP credentials (a loop)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--once", action="store_true", help="read every due folder once, then exit"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["once"]:
            count = 0
            while count < MAX_FOLDERS_PER_PASS and read_one_due():
                count += 1
            self.stdout.write(f"inbox: {count} folder(s) read")
            return
        stop = threading.Event()
        with stop_on_signals(stop):
            run_loop(make_loop(stop))
