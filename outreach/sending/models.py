"""Every provider call, with its outcome and the provider's response."""

from __future__ import annotations

from django.db import models

from outreach.campaigns.models import Message
from outreach.lib import clock
from outreach.pool.models import Mailbox, ProviderAccount


class SendAttempt(models.Model):
    class Outcome(models.TextChoices):
        SENT = "sent"
        TRANSIENT = "transient"
        PERMANENT = "permanent"
        HARD_BOUNCE = "hard_bounce"
        BLOCKED = "blocked"
        AUTH_FAILED = "auth_failed"

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attempts_log")
    mailbox = models.ForeignKey(Mailbox, on_delete=models.PROTECT, related_name="send_attempts")
    provider_account = models.ForeignKey(
        ProviderAccount, on_delete=models.PROTECT, related_name="send_attempts"
    )
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    code = models.CharField(max_length=32, blank=True)  # SMTP reply / HTTP status
    response = models.TextField(blank=True)
    at = models.DateTimeField(default=clock.now, db_index=True)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"attempt on {self.message_id}: {self.outcome}"


class ProviderCircuit(models.Model):
    """The circuit breaker of one provider account, in the database so every worker agrees.

    ``closed``: sends go to the account. ``open``: sends go to its standby until
    ``retry_at``. ``half_open``: one worker holds the probe (until ``probe_until``) and its
    next send decides: success closes the circuit, failure opens it again.
    """

    class State(models.TextChoices):
        CLOSED = "closed"
        OPEN = "open"
        HALF_OPEN = "half_open"

    provider_account = models.OneToOneField(
        ProviderAccount, on_delete=models.CASCADE, related_name="circuit"
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.CLOSED)
    # Transient failures in a row; reset by any success.
    failures = models.PositiveIntegerField(default=0)
    opened_at = models.DateTimeField(null=True, blank=True)
    retry_at = models.DateTimeField(null=True, blank=True)
    probe_until = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    updated_at = models.DateTimeField(default=clock.now)

    def __str__(self) -> str:
        return f"circuit of {self.provider_account_id}: {self.state}"
