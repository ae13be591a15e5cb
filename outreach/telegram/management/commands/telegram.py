"""`outreach telegram [--once]`: the Telegram bot on its own (``outreach run`` also runs it)."""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from outreach.lib.loop import run_loop, stop_on_signals
from outreach.telegram.bot import bot_from_settings, make_loop


class Command(BaseCommand):
    help = "Answer the operator's Telegram commands (a loop, until SIGTERM)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--once", action="store_true", help="poll once, answer what came, and exit"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.OUTREACH_TELEGRAM_BOT_TOKEN:
            raise CommandError("OUTREACH_TELEGRAM_BOT_TOKEN is not set (see docs/telegram.md)")
        if not settings.OUTREACH_TELEGRAM_CHAT_IDS:
            self.stderr.write("OUTREACH_TELEGRAM_CHAT_IDS is empty: every message will be ignored")
        stop = threading.Event()
        if options["once"]:
            handled = bot_from_settings(stop.wait).handle_one()
            self.stdout.write("handled new messages" if handled else "no new message")
            return
        with stop_on_signals(stop):
            run_loop(make_loop(stop))
