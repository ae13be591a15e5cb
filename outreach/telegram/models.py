"""What the bot keeps between restarts: where it is in the update stream, and strangers."""

from __future__ import annotations

from django.db import models

from outreach.lib import clock


class BotCursor(models.Model):
    """The next ``update_id`` to ask Telegram for (one row). Saved before a command is acted
    on, so a crash never replays a command: at worst one is lost, and its sender sees no
    answer."""

    offset = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"next update {self.offset}"

    @classmethod
    def load(cls) -> BotCursor:
        cursor, _ = cls.objects.get_or_create(pk=1)
        return cursor


class IgnoredChat(models.Model):
    """A chat not on OUTREACH_TELEGRAM_CHAT_IDS that wrote to the bot: counted, never answered,
    and nothing of what it wrote is kept."""

    chat_id = models.BigIntegerField(unique=True)
    messages = models.PositiveIntegerField(default=0)
    first_at = models.DateTimeField(default=clock.now)
    last_at = models.DateTimeField(default=clock.now)
    # Who wrote last (a Telegram user name or id), to recognise a colleague who needs adding.
    last_sender = models.CharField(max_length=100, blank=True)

    def __str__(self) -> str:
        return f"chat {self.chat_id}: {self.messages} message(s) ignored"
