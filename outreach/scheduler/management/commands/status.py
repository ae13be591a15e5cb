"""`outreach status [--json]`: every mailbox with its state, today's cap and use."""

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
        rows = pool_status()
        if options["json"]:
            self.stdout.write(json.dumps([r.to_dict() for r in rows]))
            return
        table = Table(title="Mailboxes")
        for column in ("address", "domain", "state"):
            table.add_column(column)
        table.add_column("cap today", justify="right")
        table.add_column("sent today", justify="right")
        for r in rows:
            table.add_row(r.address, r.domain, r.state, str(r.cap_today), str(r.sent_today))
        capacity = sum(r.cap_today for r in rows)
        sent = sum(r.sent_today for r in rows)
        console = Console(file=self.stdout, width=120)  # type: ignore[arg-type]
        console.print(table)
        console.print(f"{len(rows)} mailboxes, {sent}/{capacity} sent today")
