"""The alert outbox."""

from __future__ import annotations

from django.db import models

from outreach.lib import clock


class Alert(models.Model):
    class Severity(models.TextChoices):
        INFO = "info"
        WARNING = "warning"
        CRITICAL = "critical"

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
    created_at = models.DateTimeField(default=clock.now, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"[{self.severity}] {self.text[:60]}"
