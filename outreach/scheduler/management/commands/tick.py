"""`outreach tick --now ISO8601`: one complete pass of the control plane as if it were then."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from outreach.lib import clock
from outreach.scheduler.engine import run_pass


def parse_instant(value: str) -> datetime:
    """An ISO 8601 instant; without an offset it is taken as UTC."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--now: not an ISO 8601 date-time: {value!r}") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "Run one pass of the control plane (leases, planning, warm-up, graduation, routing, "
        "sending when the engine is installed) as if it were --now; for tests and debugging."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--now", help="ISO 8601 instant (default: the real clock)")
        parser.add_argument("--no-send", action="store_true", help="plan and claim only")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        now = parse_instant(options["now"]) if options["now"] else clock.now()
        with clock.frozen(now):
            report = run_pass(now, send=not options["no_send"])
        data = report.to_dict()
        if options["json"]:
            self.stdout.write(json.dumps(data, sort_keys=True))
            return
        data.pop("claimed_by_mailbox")
        self.stdout.write(" ".join(f"{k}={v}" for k, v in data.items() if v is not None))
