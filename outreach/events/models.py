"""Normalized events (one vocabulary for every provider, raw payload kept) and dead letters."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models

from outreach.campaigns.models import Campaign, Message
from outreach.lib import clock
from outreach.pool.models import Mailbox


class Event(models.Model):
    class Type(models.TextChoices):
        DELIVERED = "delivered"
        BOUNCED = "bounced"
        DEFERRED = "deferred"
        COMPLAINED = "complained"
        UNSUBSCRIBED = "unsubscribed"
        OPENED = "opened"
        CLICKED = "clicked"
        REPLIED = "replied"
        AUTO_REPLIED = "auto_replied"
        BLOCKED = "blocked"

    class BounceType(models.TextChoices):
        NONE = ""
        HARD = "hard"
        SOFT = "soft"

    # "ses", "mailgun", "postmark", "sendgrid", "imap", "unsubscribe", "smtp" ...
    source = models.CharField(max_length=32)
    # The provider's own id for this event; a repeat delivery of the same id is ignored.
    provider_event_id = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001 (NULLs are distinct under the unique constraint)
    type = models.CharField(max_length=16, choices=Type.choices, db_index=True)
    bounce_type = models.CharField(max_length=4, choices=BounceType.choices, blank=True)
    diagnostic = models.TextField(blank=True)
    recipient = models.CharField(max_length=254, blank=True, db_index=True)
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    # Denormalized from the message so rollups and filters need no join.
    mailbox = models.ForeignKey(
        Mailbox, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    campaign = models.ForeignKey(
        Campaign, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    provider_message_id = models.CharField(max_length=255, blank=True)
    # The message could not be found: stored and flagged, never dropped.
    unmatched = models.BooleanField(default=False)
    occurred_at = models.DateTimeField(db_index=True)
    received_at = models.DateTimeField(default=clock.now)
    raw = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "provider_event_id"], name="event_provider_id_unique"
            )
        ]
        indexes = [models.Index(fields=["mailbox", "occurred_at"], name="event_mailbox_idx")]

    def __str__(self) -> str:
        return f"{self.type} {self.recipient} ({self.source})"


class DeadLetter(models.Model):
    """A webhook request that could not be processed, kept for ``outreach events replay``."""

    endpoint = models.CharField(max_length=200)
    headers = models.JSONField(default=dict, blank=True)
    body = models.TextField(blank=True)  # size-capped
    error = models.TextField()
    status_code = models.PositiveIntegerField()
    received_at = models.DateTimeField(default=clock.now, db_index=True)
    replayed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"dead letter {self.pk} on {self.endpoint}: {self.error[:60]}"

    @classmethod
    def prune(cls, now: datetime | None = None) -> int:
        """Delete those older than ``OUTREACH_DEAD_LETTER_DAYS``; returns how many."""
        limit = (now or clock.now()) - timedelta(days=settings.OUTREACH_DEAD_LETTER_DAYS)
        deleted, _ = cls.objects.filter(received_at__lt=limit).delete()
        return deleted


class SeenToken(models.Model):
    """A webhook nonce already accepted (Mailgun's signature token): a replay is refused.

    Stored in the transaction that stores the events it carried, so a post that failed on a
    database error leaves no trace and the provider's retry goes through.
    """

    source = models.CharField(max_length=32)
    token = models.CharField(max_length=255)
    seen_at = models.DateTimeField(default=clock.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "token"], name="seen_token_unique")
        ]

    def __str__(self) -> str:
        return f"{self.source} token {self.token[:12]}…"


class FolderCursor(models.Model):
    """How far one IMAP folder has been read: UIDVALIDITY and the last UID handled, and when
    it is due again (claimed with a conditional UPDATE of ``next_check_at``)."""

    uid_validity = models.BigIntegerField(null=True, blank=True)
    last_uid = models.BigIntegerField(default=0)
    checked_at = models.DateTimeField(null=True, blank=True)
    next_check_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # The first of the reads that have failed since the last one that worked.
    failing_since = models.DateTimeField(null=True, blank=True)

    folder: str

    class Meta:
        abstract = True


class InboxCursor(FolderCursor):
    """How far the IMAP reader has read one folder of one mailbox.

    A new UIDVALIDITY means the server renumbered the folder: the cursor starts over and the
    events' unique ids (the Message-ID of each mail) keep anything from being counted twice.
    """

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="inbox_cursors")
    folder = models.CharField(max_length=255, default="INBOX")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "folder"], name="inbox_cursor_unique")
        ]

    def __str__(self) -> str:
        return f"{self.mailbox} {self.folder} @ {self.uid_validity}/{self.last_uid}"


class SeedCursor(FolderCursor):
    """How far the placement check has read one spam folder of one seed inbox (an address of
    ``PoolSettings.seed_addresses`` configured with IMAP access; see outreach.events.seeds)."""

    address = models.EmailField()
    folder = models.CharField(max_length=255)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["address", "folder"], name="seed_cursor_unique")
        ]

    def __str__(self) -> str:
        return f"seed {self.address} {self.folder} @ {self.uid_validity}/{self.last_uid}"
