"""`outreach reconcile`: look up the messages in doubt (`unknown`) once, and say what became
of them (the scheduler's pass does the same on its own)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from outreach.sending.reconcile import reconcile_due


class Command(BaseCommand):
    help = "Look up the messages in doubt: found → sent; not found after the grace → rerouted."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--now", help="act as if it were this ISO 8601 instant")
        parser.add_argument("--limit", type=int, default=200, help="messages per run")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        now = None
        if options["now"]:
            try:
                now = datetime.fromisoformat(options["now"])
            except ValueError as exc:
                raise CommandError(f"--now: not an ISO 8601 instant: {options['now']!r}") from exc
            if now.tzinfo is None:
                raise CommandError("--now: give a time zone (e.g. +00:00)")
        report = reconcile_due(now, limit=options["limit"])
        if options["json"]:
            self.stdout.write(json.dumps(report.__dict__, sort_keys=True))
            return
        self.stdout.write(
            f"{report.looked_up} looked up: {report.sent} found sent, {report.resent} back to "
            f"routing, {report.waiting} still in doubt"
        )
