"""Daily counters: the units of every cap, reserved atomically when a message is claimed."""

from __future__ import annotations

from django.db import models


class DailyCounter(models.Model):
    """How many messages were handed out under one cap on one pool day.

    ``key`` identifies the subject within its scope: a mailbox or domain or campaign id, a
    recipient domain name, or ``"*"`` for the global cap. A reservation is a conditional
    ``UPDATE ... SET used = used + 1 WHERE used < cap`` whose affected row count must be 1.
    """

    class Scope(models.TextChoices):
        GLOBAL = "global"
        DOMAIN = "domain"
        MAILBOX = "mailbox"
        CAMPAIGN = "campaign"
        RECIPIENT_DOMAIN = "recipient_domain"

    scope = models.CharField(max_length=20, choices=Scope.choices)
    key = models.CharField(max_length=253)
    day = models.DateField()
    used = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "key", "day"], name="daily_counter_unique")
        ]
        indexes = [models.Index(fields=["day", "scope"], name="daily_counter_day_idx")]

    def __str__(self) -> str:
        return f"{self.scope}:{self.key} {self.day} = {self.used}"


class RecipientDomain(models.Model):
    """Who hosts a recipient domain's mail, from its MX records (outreach.scheduler.recipients),
    looked up once and kept for a while: routing reads it for every message to the domain."""

    domain = models.CharField(max_length=253, unique=True)
    # "google", "microsoft", "yahoo", "gateway" (Proofpoint, Mimecast...), "other", or ""
    # when the domain has no MX.
    provider = models.CharField(max_length=16, blank=True)
    mx = models.CharField(max_length=253, blank=True)  # the preferred MX host, for the record
    checked_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.domain}: {self.provider or 'no MX'}"
