"""The bot loop: long-poll Telegram, answer allow-listed chats, count and ignore the others.

One unit of work is one ``getUpdates`` call (waiting up to ``OUTREACH_TELEGRAM_POLL_SECONDS``
for a message, which keeps a SIGTERM's wait below ``OUTREACH_SHUTDOWN_SECONDS``) and the
answers to what it brought. No public endpoint is needed: the bot asks, Telegram answers.

Run it once per installation: Telegram answers a second concurrent ``getUpdates`` of the same
bot with 409 Conflict, which is logged and waited out.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from django.conf import settings
from django.db.models import F

from outreach.lib import clock
from outreach.lib.loop import Loop
from outreach.lib.telegram_api import BotApi, BotApiError, Incoming, incoming_of
from outreach.telegram.commands import Commands
from outreach.telegram.models import BotCursor, IgnoredChat

log = logging.getLogger(__name__)

# A reply refused with 429 is tried again after Telegram's retry_after, this many times in all.
SEND_ATTEMPTS = 3
# Telegram refuses longer messages.
MAX_TEXT = 4096
# After an error without retry_after (network, 409 Conflict, 5xx), wait this long.
ERROR_PAUSE_SECONDS = 5


class Bot:
    """One bot. ``wait(seconds)`` pauses (the loop's stop event: a SIGTERM cuts it short)."""

    def __init__(
        self,
        api: BotApi,
        allowed_chats: set[int],
        *,
        poll_seconds: int,
        wait: Callable[[float], object],
    ) -> None:
        self.api = api
        self.allowed_chats = allowed_chats
        self.poll_seconds = poll_seconds
        self.wait = wait
        self.commands = Commands()

    def handle_one(self) -> bool:
        """Poll once and handle what came; True when a message came (poll again at once)."""
        cursor = BotCursor.load()
        try:
            updates = self.api.get_updates(cursor.offset, self.poll_seconds)
        except BotApiError as exc:
            log.warning("telegram: getUpdates failed: %s", exc)
            self.wait(exc.retry_after or ERROR_PAUSE_SECONDS)
            return False
        for update in updates:
            # Saved before acting: a crash loses this command rather than doing it twice.
            BotCursor.objects.filter(pk=cursor.pk).update(offset=int(update["update_id"]) + 1)
            message = incoming_of(update)
            if message is None:
                continue
            if message.chat_id not in self.allowed_chats:
                self._ignore(message)
                continue
            log.info("telegram: %s in chat %s: %s", message.sender, message.chat_id, message.text)
            self.reply(message.chat_id, self.commands.answer(message))
        return bool(updates)

    def reply(self, chat_id: int, text: str) -> bool:
        """Send ``text``, waiting out 429s (``retry_after``); False when it could not go."""
        if len(text) > MAX_TEXT:
            text = text[: MAX_TEXT - 4] + "\n..."
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                self.api.send_message(chat_id, text)
                return True
            except BotApiError as exc:
                if exc.code != 429 or attempt == SEND_ATTEMPTS:
                    log.warning("telegram: reply to chat %s failed: %s", chat_id, exc)
                    return False
                log.info("telegram: 429, waiting %s s as asked", exc.retry_after)
                self.wait(exc.retry_after or ERROR_PAUSE_SECONDS)
        return False

    def _ignore(self, message: Incoming) -> None:
        """A stranger: no answer (a bot that answers confirms it exists), a count, a log line."""
        now = clock.now()
        sender = message.sender.removeprefix("telegram:")[:100]
        bumped = IgnoredChat.objects.filter(chat_id=message.chat_id).update(
            messages=F("messages") + 1, last_at=now, last_sender=sender
        )
        if not bumped:
            IgnoredChat.objects.get_or_create(
                chat_id=message.chat_id,
                defaults={"messages": 1, "first_at": now, "last_at": now, "last_sender": sender},
            )
        log.warning(
            "telegram: ignored a message from chat %s (%s): not in OUTREACH_TELEGRAM_CHAT_IDS",
            message.chat_id,
            sender,
        )


def bot_from_settings(wait: Callable[[float], object]) -> Bot:
    api = BotApi(settings.OUTREACH_TELEGRAM_API_URL, settings.OUTREACH_TELEGRAM_BOT_TOKEN)
    return Bot(
        api,
        set(settings.OUTREACH_TELEGRAM_CHAT_IDS),
        poll_seconds=settings.OUTREACH_TELEGRAM_POLL_SECONDS,
        wait=wait,
    )


def make_loop(stop: threading.Event) -> Loop:
    bot = bot_from_settings(stop.wait)
    # The long poll is the wait; the idle second only bounds a poll of 0 s.
    return Loop(name="telegram", handle_one=bot.handle_one, idle_seconds=1.0, stop=stop)
