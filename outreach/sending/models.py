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
