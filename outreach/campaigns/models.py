"""Leads, campaigns and their sequences, enrollments, messages and the suppression list."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from outreach.lib import clock
from outreach.pool.models import Domain, Mailbox, ProviderAccount


class Lead(models.Model):
    email = models.EmailField(unique=True)  # normalized: see campaigns.addresses.normalize_email
    email_domain = models.CharField(max_length=253, db_index=True)
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    company = models.CharField(max_length=200, blank=True)
    title = models.CharField(max_length=200, blank=True)
    timezone = models.CharField(max_length=64, blank=True)  # IANA name; blank = unknown
    custom = models.JSONField(default=dict, blank=True)
    # When a reply of the lead was labeled interested (the inbox marks it).
    interested_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now)
    updated_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email


class Campaign(models.Model):
    class State(models.TextChoices):
        DRAFT = "draft"
        ACTIVE = "active"
        PAUSED = "paused"
        STOPPED = "stopped"
        FINISHED = "finished"

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    state = models.CharField(max_length=16, choices=State.choices, default=State.DRAFT)
    # Sending window: ISO weekdays (1 = Monday) and local hours [start, end), in the lead's
    # time zone when known, else this one.
    timezone = models.CharField(max_length=64, default="UTC")
    window_days = models.JSONField(default=list, blank=True)
    window_start = models.TimeField(default="09:00")
    window_end = models.TimeField(default="17:00")
    daily_cap = models.PositiveIntegerField(null=True, blank=True)
    # Empty = every domain/mailbox of the pool may send this campaign.
    allowed_domains = models.ManyToManyField(Domain, blank=True, related_name="campaigns")
    allowed_mailboxes = models.ManyToManyField(Mailbox, blank=True, related_name="campaigns")
    stop_on_company_reply = models.BooleanField(default=False)
    # A reply labeled not_interested suppresses the replier's whole company domain.
    suppress_company_on_refusal = models.BooleanField(default=False)
    # A highly targeted campaign may use warming mailboxes within their warm-up cap.
    allow_warming_mailboxes = models.BooleanField(default=False)
    # Allow a lead to be in this and another active campaign sharing mailboxes.
    allow_shared_leads = models.BooleanField(default=False)
    # Every recipient asked for this mail: the warning about cold mail through providers whose
    # policies forbid it (outreach.campaigns.cold_mail) does not apply.
    opted_in = models.BooleanField(default=False)
    # Open pixel and click rewriting, both off by default: each is a spam signal for cold
    # mail. Read when a message is built, so a change applies to messages built from then on.
    track_opens = models.BooleanField(default=False)
    track_clicks = models.BooleanField(default=False)
    postal_address = models.TextField(blank=True)
    from_name = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(default=clock.now)
    started_at = models.DateTimeField(null=True, blank=True)
    # Messages that could not be built since the campaign last started or resumed; enough of
    # them pause it (outreach.campaigns.lifecycle.record_build_failure).
    build_failures = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @staticmethod
    def tracking_in_use() -> bool:
        """Whether a campaign not stopped or finished tracks opens or clicks (the pool's DNS
        checks then expect each domain's tracking host)."""
        return (
            Campaign.objects.filter(Q(track_opens=True) | Q(track_clicks=True))
            .exclude(state__in=[Campaign.State.STOPPED, Campaign.State.FINISHED])
            .exists()
        )


class Step(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField()  # 1-based
    delay_days = models.PositiveIntegerField(default=0)
    delay_hours = models.PositiveIntegerField(default=0)
    # Follow-ups may reuse the thread's first subject as "Re: ..." instead of their own.
    reply_to_thread = models.BooleanField(default=True)

    class Meta:
        ordering = ["campaign", "position"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "position"], name="step_position_unique")
        ]

    def __str__(self) -> str:
        return f"{self.campaign.slug} step {self.position}"


class Variant(models.Model):
    step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="variants")
    label = models.CharField(max_length=16, default="A")
    weight = models.PositiveIntegerField(default=1)
    subject = models.TextField(blank=True)  # Jinja2 + spintax; blank on a follow-up = "Re: ..."
    body_html = models.TextField(blank=True)
    body_text = models.TextField(blank=True)  # derived from HTML when blank

    class Meta:
        ordering = ["step", "label"]
        constraints = [
            models.UniqueConstraint(fields=["step", "label"], name="variant_label_unique")
        ]

    def __str__(self) -> str:
        return f"{self.step} variant {self.label}"


class Enrollment(models.Model):
    class State(models.TextChoices):
        ACTIVE = "active"
        FINISHED = "finished"
        STOPPED = "stopped"

    class StopReason(models.TextChoices):
        REPLY = "reply"
        COMPANY_REPLY = "company_reply"
        BOUNCE = "bounce"
        COMPLAINT = "complaint"
        UNSUBSCRIBE = "unsubscribe"
        SUPPRESSED = "suppressed"
        MANUAL = "manual"
        CAMPAIGN_STOPPED = "campaign_stopped"
        MAILBOX_UNAVAILABLE = "mailbox_unavailable"
        # Its message ended without going out and will not be sent again (a permanent
        # refusal, retries exhausted, an operator's "give up"; or cancelled).
        SEND_FAILED = "send_failed"
        MESSAGE_CANCELLED = "message_cancelled"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="enrollments")
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="enrollments")
    state = models.CharField(
        max_length=16, choices=State.choices, default=State.ACTIVE, db_index=True
    )
    stop_reason = models.CharField(max_length=32, choices=StopReason.choices, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    # Position of the last step that produced a message (0 = none yet), and when the next
    # step falls due (None when there is no next step).
    last_step = models.PositiveIntegerField(default=0)
    next_due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # The thread: its first message's mailbox and Message-ID; follow-ups are pinned to both.
    thread_mailbox = models.ForeignKey(
        Mailbox, null=True, blank=True, on_delete=models.PROTECT, related_name="threads"
    )
    thread_message_id = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "lead"], name="enrollment_unique")
        ]
        indexes = [
            # The next step to fall due among the active enrollments (the simulator's clock
            # reads it every pass): a seek, not a sort of every active enrollment.
            models.Index(fields=["state", "next_due_at"], name="enrollment_next_due_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.lead} in {self.campaign}"


class Message(models.Model):
    """One email. Each (enrollment, step) yields at most one (docs/rules.md, Messages).

    States: ``scheduled`` → ``claimed`` (mailbox chosen, one unit of every cap reserved, lease
    running) → ``sending`` (committed before the provider call) → ``sent`` | ``retry``
    (transient failure; ``not_before`` is the next attempt) | ``failed`` | ``cancelled`` |
    ``unknown`` (the process died during the provider call: never resent automatically).
    Warm-up messages have no enrollment and go to seed addresses.
    """

    class State(models.TextChoices):
        SCHEDULED = "scheduled"
        CLAIMED = "claimed"
        SENDING = "sending"
        SENT = "sent"
        RETRY = "retry"
        FAILED = "failed"
        CANCELLED = "cancelled"
        UNKNOWN = "unknown"

    class Kind(models.TextChoices):
        CAMPAIGN = "campaign"
        WARMUP = "warmup"
        REPLY = "reply"  # the operator's answer from the inbox, sent at once

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.CAMPAIGN)
    # Every index is rewritten when a message changes state (claimed, sending, sent), so
    # the model keeps only the ones a query needs: the enrollment is found through
    # one_message_per_enrollment_step, the mailbox through message_mailbox_sent_idx.
    enrollment = models.ForeignKey(
        Enrollment,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="messages",
        db_index=False,
    )
    step = models.ForeignKey(
        Step, null=True, blank=True, on_delete=models.PROTECT, related_name="messages"
    )
    variant = models.ForeignKey(
        Variant, null=True, blank=True, on_delete=models.PROTECT, related_name="messages"
    )
    campaign = models.ForeignKey(
        Campaign, null=True, blank=True, on_delete=models.CASCADE, related_name="messages"
    )
    to_email = models.EmailField()
    to_domain = models.CharField(max_length=253)
    # A follow-up must go from this mailbox; None = the router chooses.
    # Indexed by message_pinned_due_idx (only the pinned rows), not by a plain FK index.
    pinned_mailbox = models.ForeignKey(
        Mailbox,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="pinned_messages",
        db_index=False,
    )
    mailbox = models.ForeignKey(
        Mailbox,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="messages",
        db_index=False,
    )
    provider_account = models.ForeignKey(
        ProviderAccount, null=True, blank=True, on_delete=models.PROTECT, related_name="messages"
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.SCHEDULED)
    # Earliest send time (window and delay); for `retry`, the next attempt.
    not_before = models.DateTimeField(default=clock.now)
    # A follow-up waiting for its mailbox is cancelled after this.
    expires_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=128, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # The pool day whose counters this claim reserved (released on cancel/permanent failure
    # before the provider call).
    quota_day = models.DateField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    subject = models.TextField(blank=True)
    # NULL until the message is built (so the many unbuilt ones do not collide); unique and
    # indexed through Meta, as a plain B-tree: lookups are exact, never LIKE.
    message_id_header = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    in_reply_to = models.CharField(max_length=255, blank=True)
    references = models.TextField(blank=True)
    provider_message_id = models.CharField(max_length=255, blank=True)
    # While ``sending``: when this attempt's provider call began (committed before the call,
    # so a message without it never reached a provider), and when the provider accepted it
    # (written before the worker's next call on that connection). A worker killed mid-batch
    # thus leaves at most one message per connection truly in doubt.
    call_started_at = models.DateTimeField(null=True, blank=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    # While ``unknown``: when the reconciliation last looked for it, and why it is still in
    # doubt (shown on the dashboard).
    reconciled_at = models.DateTimeField(null=True, blank=True)
    doubt = models.CharField(max_length=500, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=clock.now)
    updated_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["enrollment", "step"],
                condition=Q(enrollment__isnull=False),
                name="one_message_per_enrollment_step",
            ),
            models.UniqueConstraint(fields=["message_id_header"], name="message_id_header_unique"),
        ]
        indexes = [
            # Due messages in (not_before, id) order, the routing pass's keyset: with the id
            # in the index a batch is read without sorting the backlog's ties (a campaign's
            # whole import is often due at one instant).
            models.Index(fields=["state", "not_before", "id"], name="message_due_idx"),
            # The routing pass's pinned messages (follow-ups, warm-up), read mailbox by
            # mailbox; partial, so the many unpinned messages cost it nothing.
            models.Index(
                fields=["pinned_mailbox", "state", "not_before"],
                condition=Q(pinned_mailbox__isnull=False),
                name="message_pinned_due_idx",
            ),
            models.Index(fields=["state", "lease_expires_at"], name="message_lease_idx"),
            # Follow-ups (and warm-up mail) waiting past their limit, looked for every pass;
            # partial, so the scheduled backlog of first steps (no limit) is never scanned.
            models.Index(
                fields=["state", "expires_at"],
                condition=Q(expires_at__isnull=False),
                name="message_expiry_idx",
            ),
            models.Index(fields=["mailbox", "sent_at"], name="message_mailbox_sent_idx"),
            # The overview's recipient mix reads the last week of sends across the pool.
            models.Index(fields=["sent_at"], name="message_sent_at_idx"),
            models.Index(fields=["provider_message_id"], name="message_provider_id_idx"),
        ]

    def __str__(self) -> str:
        return f"message {self.pk} to {self.to_email} ({self.state})"


class Suppression(models.Model):
    """Addresses and whole domains that are never contacted (docs/rules.md, Suppression)."""

    class Kind(models.TextChoices):
        ADDRESS = "address"
        DOMAIN = "domain"

    class Source(models.TextChoices):
        HARD_BOUNCE = "hard_bounce"
        COMPLAINT = "complaint"
        UNSUBSCRIBE = "unsubscribe"
        MANUAL = "manual"
        IMPORT = "import"

    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.ADDRESS)
    value = models.CharField(max_length=254)  # lower-cased address or domain
    source = models.CharField(max_length=16, choices=Source.choices)
    reason = models.CharField(max_length=500, blank=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["kind", "value"], name="suppression_unique")]

    def __str__(self) -> str:
        return f"{self.kind} {self.value} ({self.source})"
