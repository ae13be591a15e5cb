"""``outreach apply FILE.toml [--dry-run]``: make the database match the pool file."""

from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from outreach.pool.config import parse
from outreach.pool.config_apply import apply
from outreach.pool.config_spec import ConfigError
from outreach.pool.logins import check_logins


class Command(BaseCommand):
    help = "Make the database match a pool file (idempotent, all or nothing, never deletes)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--dry-run", action="store_true", help="show the changes only")
        parser.add_argument(
            "--check-auth",
            action="store_true",
            help="then log in as every Google, Microsoft and SMTP mailbox (sends nothing)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"{path}: cannot read: {exc}") from exc
        try:
            plan = apply(parse(text, path.parent), dry_run=options["dry_run"])
        except ConfigError as exc:
            raise CommandError(f"{path}: {exc}") from exc
        prefix = "would " if options["dry_run"] else ""
        for line in plan.changes:
            self.stdout.write(f"{prefix}{line}")
        if not plan.changes:
            self.stdout.write(f"{path}: no changes")
        else:
            verb = "would change" if options["dry_run"] else "applied"
            self.stdout.write(self.style.SUCCESS(f"{path}: {verb} {len(plan.changes)} item(s)"))
        if options["check_auth"] and not options["dry_run"]:
            self._check_auth()

    def _check_auth(self) -> None:
        failures = 0
        for result in check_logins():
            if result.error is None:
                self.stdout.write(f"auth ok: {result.address}")
            else:
                failures += 1
                self.stdout.write(
                    self.style.ERROR(f"auth FAILED: {result.address}: {result.error}")
                )
                self.stdout.write(f"  fix: {result.fix}")
        if failures:
            raise CommandError(f"{failures} mailbox(es) cannot log in (see above)")
