"""Project-wide records: heartbeats of the engine loops."""

from __future__ import annotations

from django.db import models

from outreach.lib import clock


class Heartbeat(models.Model):
    """The last sign of life of one engine loop on one host.

    ``running`` turns False on a clean stop; a running loop whose ``beat_at`` is older than
    ``settings.OUTREACH_HEARTBEAT_STALE_SECONDS`` has died or hangs (reported by /healthz).
    """

    name = models.CharField(max_length=64)
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    running = models.BooleanField(default=True)
    started_at = models.DateTimeField(default=clock.now)
    beat_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["name", "host", "pid"], name="heartbeat_unique")
        ]

    def __str__(self) -> str:
        return f"{self.name}@{self.host}:{self.pid}"


class RetentionMark(models.Model):
    """How far the retention prune (:mod:`outreach.retention`) has walked one rule's table:
    every row up to ``last_id`` is done, so a pass reads only the rows after it and never
    rescans years of pruned history."""

    name = models.CharField(max_length=64, unique=True)
    last_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(default=clock.now)

    def __str__(self) -> str:
        return f"{self.name} pruned up to id {self.last_id}"
