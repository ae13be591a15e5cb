"""`outreach inbox`: read replies, auto-replies, bounces and unsubscribes over IMAP, and the
seeds' spam folders (placement checks).

`outreach inbox classify FILE.eml … [--json]` prints the label each mail would get, without
touching the database.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from outreach.events.classify import classify_content
from outreach.events.loop import make_loop, read_one_due
from outreach.events.mailcontent import read_content
from outreach.lib import clock
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
            "action", nargs="?", choices=["classify"], help="classify: label .eml files"
        )
        parser.add_argument("files", nargs="*", help="with classify: the .eml files")
        parser.add_argument(
            "--json", action="store_true", help="with classify: one JSON object a line"
        )
        parser.add_argument(
            "--once", action="store_true", help="read every due folder once, then exit"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "classify":
            self.classify(options["files"], as_json=options["json"])
            return
        if options["once"]:
            count = 0
            while count < MAX_FOLDERS_PER_PASS and read_one_due():
                count += 1
            self.stdout.write(f"inbox: {count} folder(s) read")
            return
        stop = threading.Event()
        with stop_on_signals(stop):
            run_loop(make_loop(stop))

    def classify(self, files: list[str], *, as_json: bool) -> None:
        """Label each file; a file that cannot be read is reported and the rest go on."""
        if not files:
            raise CommandError("inbox classify: name at least one .eml file")
        failed = 0
        for name in files:
            try:
                raw = Path(name).read_bytes()
            except OSError as exc:
                failed += 1
                self.stderr.write(f"{name}: cannot read: {exc.strerror or exc}")
                continue
            content = read_content(raw)
            received = content.date.date() if content.date else clock.today()
            verdict = classify_content(content, received=received)
            returns = verdict.return_date.isoformat() if verdict.return_date else None
            if as_json:
                row = {
                    "file": name,
                    "label": verdict.label,
                    "reason": verdict.reason,
                    "return_date": returns,
                }
                if verdict.referred_address:
                    row["referred_address"] = verdict.referred_address
                self.stdout.write(json.dumps(row, ensure_ascii=False))
            else:
                extra = f" (back {returns})" if returns else ""
                self.stdout.write(f"{name}: {verdict.label}{extra}: {verdict.reason}")
        if failed:
            raise CommandError(f"inbox classify: {failed} file(s) could not be read")
