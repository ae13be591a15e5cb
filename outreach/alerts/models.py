"""The alert outbox, its quiet-period keys, and the last known health of provider accounts."""

from __future__ import annotations

from django.db import models

from outreach.lib import alerting, clock


class Alert(models.Model):
    Severity = alerting.Severity

    class State(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"  # permanent delivery error, reported on the dashboard

    # Same key within the quiet period = the same alert, not repeated.
    key = models.CharField(max_length=200, db_index=True)
    kind = models.CharField(max_length=50)
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.WARNING)
    text = models.TextField()
    figures = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=clock.now)
    last_error = models.TextField(blank=True)
    # Fingerprints of the channels (Apprise URLs) that already have it: a retry after a
    # partial failure goes only to the others.
    delivered_to = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=clock.now, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"[{self.severity}] {self.text[:60]}"


class AlertKey(models.Model):
    """The quiet period of one alert key: the same key is not raised again before ``quiet_until``.

    A row per key, claimed with a conditional UPDATE, so a webhook and the periodic pass noticing
    the same problem at the same moment raise one alert, not two.
    """

    key = models.CharField(max_length=200, unique=True)
    quiet_until = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.key} quiet until {self.quiet_until:%Y-%m-%d %H:%M}"


class ProviderHealth(models.Model):
    """The last account check of a provider (SES ``get_account``), for the sending engine's
    circuit breaker and the dashboard: read it instead of calling the provider."""

    provider_account = models.OneToOneField(
        "pool.ProviderAccount", on_delete=models.CASCADE, related_name="health"
    )
    healthy = models.BooleanField(default=True)
    problems = models.JSONField(default=list, blank=True)
    details = models.JSONField(default=dict, blank=True)
    checked_at = models.DateTimeField(default=clock.now)

    def __str__(self) -> str:
        return f"{self.provider_account_id}: {'healthy' if self.healthy else 'unhealthy'}"
