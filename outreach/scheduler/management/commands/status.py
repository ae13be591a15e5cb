"""`outreach status [--json]`: every mailbox with its state, today's cap and use, what holds its
domain back (cooldown, DNS), and the pool's capacity today."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from rich.console import Console
from rich.table import Table

from outreach.scheduler.status import pool_status


class Command(BaseCommand):
    help = "Show the pool: mailboxes with domain, state, today's cap and sends."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print a JSON list")

    def handle(self, *args: Any, **options: Any) -> None:
        status = pool_status()
        rows = status.mailboxes
        if options["json"]:
            self.stdout.write(json.dumps([r.to_dict() for r in rows]))
            return
        table = Table(title="Mailboxes")
        for column in ("address", "domain", "state"):
            table.add_column(column)
        table.add_column("cap today", justify="right")
        table.add_column("sent today", justify="right")
        table.add_column("held by")
        for r in rows:
            table.add_row(r.address, r.domain, r.state, str(r.cap_today), str(r.sent_today), r.held)
        console = Console(file=self.stdout, width=140)  # type: ignore[arg-type]
        console.print(table)
        console.print(
            f"{len(rows)} mailboxes, {status.sent_today}/{status.capacity_today} sent today"
        )
