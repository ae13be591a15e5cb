"""`outreach events list`, `outreach events replay ID...` and `outreach events prune`: the
webhook dead letters."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from outreach.events.models import DeadLetter
from outreach.events.webhooks import replay


class Command(BaseCommand):
    help = "Dead letters of the provider webhooks: list them, replay them once the cause is fixed."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="dead letters not yet replayed, newest first")
        listing.add_argument("--all", action="store_true", help="include replayed ones")
        listing.add_argument("--limit", type=int, default=50)
        again = sub.add_parser("replay", help="reprocess dead letters through their endpoint")
        again.add_argument("ids", nargs="+", type=int, metavar="ID")
        sub.add_parser(
            "prune",
            help="delete dead letters older than OUTREACH_DEAD_LETTER_DAYS "
            "(the alerts loop does it on its own)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "prune":
            self.stdout.write(f"{DeadLetter.prune()} dead letter(s) deleted")
            return
        if options["action"] == "list":
            letters = DeadLetter.objects.all()
            if not options["all"]:
                letters = letters.filter(replayed_at__isnull=True)
            for letter in letters[: options["limit"]]:
                self.stdout.write(
                    f"{letter.pk:>6}  {letter.received_at:%Y-%m-%d %H:%M:%S}  "
                    f"{letter.status_code}  {_one_line(letter.endpoint)}  "
                    f"{_one_line(letter.error)[:80]}"
                )
            return
        failed = 0
        for pk in options["ids"]:
            found = DeadLetter.objects.filter(pk=pk).first()
            if found is None:
                raise CommandError(f"no dead letter {pk}")
            status, body = replay(found)
            if status == 200:
                self.stdout.write(f"dead letter {pk}: replayed: {body}")
            else:
                failed += 1
                self.stderr.write(f"dead letter {pk}: still refused ({status}): {body[:300]}")
        if failed:
            raise CommandError(f"{failed} dead letter(s) still refused")


def _one_line(text: str) -> str:
    # An error may quote a provider's multi-line answer: one row per dead letter, always.
    return " ".join(text.split())
