"""`outreach rollups --rebuild DAY [DAY...]`: recompute days of rollups from the raw tables."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from outreach.metrics import rollups


class Command(BaseCommand):
    help = "Recompute the daily rollups of the given pool days (YYYY-MM-DD) from raw events."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rebuild", nargs="+", metavar="DAY", required=True)
        parser.add_argument(
            "--days", type=int, default=1, help="rebuild this many days from each DAY on"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        for raw in options["rebuild"]:
            try:
                start = date.fromisoformat(raw)
            except ValueError:
                raise CommandError(f"not a day (YYYY-MM-DD): {raw!r}") from None
            for offset in range(max(options["days"], 1)):
                day = start + timedelta(days=offset)
                rows = rollups.rebuild(day)
                self.stdout.write(f"{day}: {rows} rollup row(s)")
