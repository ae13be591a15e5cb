"""``outreach mailbox connect ADDRESS``: sign a Google or Microsoft mailbox in (OAuth2)."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from outreach.pool.connect import ConnectError, connect


class Command(BaseCommand):
    help = "Mailbox operations: connect ADDRESS signs a Google or Microsoft mailbox in."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        one = sub.add_parser("connect", help="sign the mailbox in and keep its refresh token")
        one.add_argument("address")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            line = connect(
                options["address"],
                say=lambda text: self.stdout.write(text),
                ask=input,
            )
        except ConnectError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(line))
