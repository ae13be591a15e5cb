"""`outreach prune [--dry-run]`: apply the retention settings now (the alerts loop does it on
its own once a day) and print what went, per table."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from outreach import retention


class Command(BaseCommand):
    help = (
        "Remove raw provider payloads and mail bodies older than their retention "
        "(OUTREACH_RETAIN_RAW_DAYS, OUTREACH_RETAIN_BODY_DAYS, OUTREACH_DEAD_LETTER_DAYS)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would be removed, change nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        dry = options["dry_run"]
        report = retention.prune(dry_run=dry)
        verb = "would remove" if dry else "removed"
        days = {
            "raw": settings.OUTREACH_RETAIN_RAW_DAYS,
            "body": settings.OUTREACH_RETAIN_BODY_DAYS,
        }
        self.stdout.write(
            f"retention: raw {_days(days['raw'])}, bodies {_days(days['body'])}, "
            f"dead letters {_days(settings.OUTREACH_DEAD_LETTER_DAYS)}"
        )
        for rule in retention.RULES:
            if rule.name not in report.counts:
                self.stdout.write(f"  {rule.name:<28} kept for ever")
        for name, count in report.counts.items():
            self.stdout.write(f"  {name:<28} {verb} {count}")
        self.stdout.write(f"{verb} {report.total} in all")


def _days(days: int) -> str:
    return f"{days} days" if days else "for ever"
