"""Normalized events (one vocabulary for every provider, raw payload kept) and dead letters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import F

from outreach.campaigns.models import Campaign, Message
from outreach.events import classify
from outreach.lib import clock, eventtypes
from outreach.pool.models import Mailbox


class Event(models.Model):
    class Type(models.TextChoices):
        # The vocabulary of outreach.lib.eventtypes, which owns it.
        DELIVERED = eventtypes.DELIVERED
        BOUNCED = eventtypes.BOUNCED
        DEFERRED = eventtypes.DEFERRED
        COMPLAINED = eventtypes.COMPLAINED
        UNSUBSCRIBED = eventtypes.UNSUBSCRIBED
        OPENED = eventtypes.OPENED
        CLICKED = eventtypes.CLICKED
        REPLIED = eventtypes.REPLIED
        AUTO_REPLIED = eventtypes.AUTO_REPLIED
        BLOCKED = eventtypes.BLOCKED

    class BounceType(models.TextChoices):
        NONE = ""
        HARD = eventtypes.HARD
        SOFT = eventtypes.SOFT

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


# Statuses of a webhook request refused for its credentials or signature (401, 403) or for a
# one-time token seen before (409). Such a request proves nothing about its sender: it is
# counted (RefusedWebhook), never kept with its body, and never replayed.
AUTH_REFUSALS = frozenset({401, 403, 409})


class DeadLetter(models.Model):
    """A webhook request that authenticated but could not be processed, kept for
    ``outreach events replay`` (at most ``OUTREACH_DEAD_LETTER_CAP`` per endpoint)."""

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

    @property
    def replayable(self) -> bool:
        """Letters refused for authentication (kept before such requests stopped being
        stored) carry nothing the operator can vouch for."""
        return self.status_code not in AUTH_REFUSALS

    @classmethod
    def trim(cls, endpoint: str) -> int:
        """Keep the newest ``OUTREACH_DEAD_LETTER_CAP`` letters of ``endpoint``; returns how
        many older ones were deleted. Bounds the disk a misbehaving sender can fill."""
        cap = settings.OUTREACH_DEAD_LETTER_CAP
        boundary = (
            cls.objects.filter(endpoint=endpoint)
            .order_by("-id")
            .values_list("id", flat=True)[cap : cap + 1]
        )
        oldest_kept = list(boundary)
        if not oldest_kept:
            return 0
        deleted, _ = cls.objects.filter(endpoint=endpoint, id__lte=oldest_kept[0]).delete()
        return deleted

    @classmethod
    def prune(cls, now: datetime | None = None) -> int:
        """Delete dead letters and refusal counts older than ``OUTREACH_DEAD_LETTER_DAYS``;
        returns how many dead letters."""
        limit = (now or clock.now()) - timedelta(days=settings.OUTREACH_DEAD_LETTER_DAYS)
        deleted, _ = cls.objects.filter(received_at__lt=limit).delete()
        RefusedWebhook.objects.filter(window__lt=limit).delete()
        return deleted


class RefusedWebhook(models.Model):
    """How many webhook requests one endpoint refused with one status (see AUTH_REFUSALS, and
    503 while no webhook secret is set in production) in one window of a few minutes.

    One row per window, never one per request, and nothing of the request's body: a flood of
    forged requests costs a counter, not disk. Read by /metrics and the refused-webhooks alert.
    """

    WINDOW = timedelta(minutes=5)

    endpoint = models.CharField(max_length=200)
    status_code = models.PositiveIntegerField()
    window = models.DateTimeField(db_index=True)
    count = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "status_code", "window"], name="refused_webhook_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.count} x {self.status_code} on {self.endpoint} from {self.window}"

    @classmethod
    def count_one(cls, endpoint: str, status: int, error: str, now: datetime) -> None:
        window = datetime.fromtimestamp(
            now.timestamp() // cls.WINDOW.total_seconds() * cls.WINDOW.total_seconds(), tz=UTC
        )
        key = {"endpoint": endpoint[:200], "status_code": status, "window": window}
        with transaction.atomic():
            bumped = cls.objects.filter(**key).update(count=F("count") + 1, last_error=error[:300])
            if bumped:
                return
            try:
                with transaction.atomic():
                    cls.objects.create(**key, count=1, last_error=error[:300])
            except IntegrityError:  # another request created the window's row meanwhile
                cls.objects.filter(**key).update(count=F("count") + 1, last_error=error[:300])


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


class InboundMail(models.Model):
    """One mail read over IMAP that belongs to us, kept whole for the inbox: a reply threaded
    to our message, mail from a known lead, or a delivery status notification.

    Stored once per mailbox and key (its Message-ID, else a digest of its bytes), so a
    restart or a renumbered folder never stores it twice. Attachments are kept as names and
    sizes only; the HTML body is stored already made safe (scripts, handlers and remote
    images removed), so the dashboard never loads anything the sender chose.
    """

    class Kind(models.TextChoices):
        REPLY = "reply"  # threaded to one of our messages
        LEAD_MAIL = "lead_mail"  # from a known lead, no thread of ours found
        DSN = "dsn"  # delivery status notification or feedback report

    class Label(models.TextChoices):
        # The labels of outreach.events.classify, which owns them.
        INTERESTED = classify.INTERESTED
        NOT_INTERESTED = classify.NOT_INTERESTED
        OUT_OF_OFFICE = classify.OUT_OF_OFFICE
        AUTO_REPLY = classify.AUTO_REPLY
        UNSUBSCRIBE_REQUEST = classify.UNSUBSCRIBE_REQUEST
        WRONG_PERSON = classify.WRONG_PERSON
        BOUNCE = classify.BOUNCE
        OTHER = classify.OTHER

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="inbound_mails")
    key = models.CharField(max_length=255)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    folder = models.CharField(max_length=255, blank=True)
    message_id_header = models.CharField(max_length=500, blank=True)
    in_reply_to = models.CharField(max_length=500, blank=True)
    references = models.TextField(blank=True)
    from_address = models.CharField(max_length=254, blank=True, db_index=True)
    from_name = models.CharField(max_length=200, blank=True)
    to = models.TextField(blank=True)
    subject = models.TextField(blank=True)
    headers = models.JSONField(default=list, blank=True)  # [[name, value], ...], size-capped
    text_body = models.TextField(blank=True)
    html_body = models.TextField(blank=True)  # sanitized with nh3
    visible_text = models.TextField(blank=True)  # the reply without quoted history/signature
    signature = models.TextField(blank=True)
    quoted_text = models.TextField(blank=True)
    attachments = models.JSONField(default=list, blank=True)  # [{name, size, content_type}]
    size = models.PositiveIntegerField(default=0)
    problems = models.JSONField(default=list, blank=True)  # what was wrong with the input
    # What it belongs to (any may be missing).
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="inbound_mails"
    )
    lead = models.ForeignKey(
        "campaigns.Lead",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="inbound_mails",
    )
    enrollment = models.ForeignKey(
        "campaigns.Enrollment",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="inbound_mails",
    )
    campaign = models.ForeignKey(
        Campaign, null=True, blank=True, on_delete=models.SET_NULL, related_name="inbound_mails"
    )
    # The classification, with the reason it was chosen; ``labeled_by`` is "rules" or the
    # operator who changed it (every change is in LabelChange).
    label = models.CharField(max_length=24, choices=Label.choices, default=Label.OTHER)
    label_reason = models.CharField(max_length=500, blank=True)
    labeled_by = models.CharField(max_length=150, default="rules")
    return_date = models.DateField(null=True, blank=True)
    referred_address = models.CharField(max_length=254, blank=True)
    occurred_at = models.DateTimeField(db_index=True)
    received_at = models.DateTimeField(default=clock.now)
    read_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    snoozed_until = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "key"], name="inbound_mail_unique")
        ]
        indexes = [
            # The navigation's unread count on every dashboard page reads only unread mails.
            models.Index(
                fields=["kind"],
                condition=models.Q(read_at__isnull=True),
                name="inbound_mail_unread_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} from {self.from_address}: {self.subject[:60]}"


class LabelChange(models.Model):
    """The audit of an operator's relabeling of an inbound mail."""

    mail = models.ForeignKey(InboundMail, on_delete=models.CASCADE, related_name="label_changes")
    from_label = models.CharField(max_length=24)
    to_label = models.CharField(max_length=24)
    actor = models.CharField(max_length=150)
    at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.mail_id}: {self.from_label} → {self.to_label} by {self.actor}"


class InboxSkip(models.Model):
    """Mail read over IMAP that did not belong to us (a stranger's, a newsletter): counted per
    mailbox and day, never stored."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="inbox_skips")
    day = models.DateField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["mailbox", "day"], name="inbox_skip_unique")]

    def __str__(self) -> str:
        return f"{self.mailbox_id} {self.day}: {self.count} skipped"


class Answer(models.Model):
    """The operator's answer to an inbound mail, sent from the inbox (its message is the
    ``reply`` Message that went out)."""

    mail = models.ForeignKey(InboundMail, on_delete=models.CASCADE, related_name="answers")
    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="answer")
    text = models.TextField()
    actor = models.CharField(max_length=150)
    at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"answer to {self.mail_id} by {self.actor}"


class WebhookEndpoint(models.Model):
    """A receiver of outgoing webhooks (the user's CRM), from the pool file's ``[[webhooks]]``.

    ``secret`` is a secret reference (env: or enc:) to a Standard Webhooks key
    (``whsec_`` + base64). An endpoint left out of the file is disabled, never deleted, so
    its delivery history stays.
    """

    name = models.SlugField(max_length=64, unique=True)
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=1000)
    events = models.JSONField(default=list, blank=True)  # empty: every event
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=clock.now)

    def __str__(self) -> str:
        return f"{self.name} → {self.url}"


class WebhookDelivery(models.Model):
    """One event for one endpoint: the outbox row, retried with backoff for 24 hours, then
    dead-lettered. ``msg_id`` is the ``webhook-id``: the same on every retry, so a receiver
    that got it twice can tell."""

    class State(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        DEAD = "dead"  # 24 hours of failures: kept to replay by hand

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event_type = models.CharField(max_length=64)
    msg_id = models.CharField(max_length=100)
    payload = models.JSONField(default=dict)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=clock.now, db_index=True)
    last_status = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=clock.now, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "msg_id"], name="webhook_delivery_once")
        ]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"], name="webhook_due_idx"),
            # The webhooks page's counts per endpoint and state, from the index alone.
            models.Index(fields=["endpoint", "state"], name="webhook_endpoint_state_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.msg_id} → {self.endpoint_id} ({self.state})"
