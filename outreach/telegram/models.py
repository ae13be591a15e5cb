"""What the bot keeps between restarts: where it is in the update stream, strangers, and the
resumes awaiting their ``/confirm``."""

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


class PendingResume(models.Model):
    """A ``/resume`` shown to a chat and awaiting its ``/confirm`` (one per chat, the latest).

    Kept in the database, not in the bot's memory, so a restart of the bot loop between the
    two steps does not lose it; ``expires_at`` bounds how stale the evidence shown may be."""

    chat_id = models.BigIntegerField(unique=True)
    mailbox = models.ForeignKey(
        "pool.Mailbox", on_delete=models.CASCADE, related_name="telegram_resumes"
    )
    # The state the evidence was shown for: a change meanwhile voids the confirm.
    state = models.CharField(max_length=16)
    reason = models.CharField(max_length=500)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"chat {self.chat_id}: resume mailbox {self.mailbox_id} until {self.expires_at}"
