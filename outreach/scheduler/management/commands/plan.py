"""`outreach plan --target N [--by DATE] [--json]`: what a daily target needs, when today's pool
reaches it, what to buy to reach it by a date, and when each warming mailbox graduates."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.console import Console

from outreach.scheduler import plan


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"--by: {value!r} is not a date (expected YYYY-MM-DD)") from exc


class Command(BaseCommand):
    help = "Plan capacity: mailboxes and domains for a daily target, and when it is reached."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--target", type=int, required=True, help="sends a day to reach")
        parser.add_argument("--by", type=_date, help="the date to reach it by (YYYY-MM-DD)")
        parser.add_argument(
            "--per-domain",
            type=int,
            default=plan.DEFAULT_MAILBOXES_PER_DOMAIN,
            help="mailboxes on each bought domain (default %(default)s)",
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        target: int = options["target"]
        if target < 1:
            raise CommandError("--target must be at least 1")
        if options["per_domain"] < 1:
            raise CommandError("--per-domain must be at least 1")
        pool = plan.load_pool()
        by: date | None = options["by"]
        if by is not None and by < pool.today:
            raise CommandError(f"--by {by} is in the past (today is {pool.today})")
        result = plan.make_plan(pool, target, by=by, per_domain=options["per_domain"])
        if options["json"]:
            self.stdout.write(json.dumps(result.to_dict()))
            return
        console = Console(file=self.stdout, width=120)  # type: ignore[arg-type]
        for line in plan.describe(result):
            console.print(line, highlight=False)
