"""Counts of recorded events that the scheduler reads through
:mod:`outreach.scheduler.evidence` (registered when the events app is ready)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from outreach.events.models import Event
from outreach.scheduler.evidence import OutcomeCounts


def outcome_counts(mailbox_id: int, since: datetime) -> OutcomeCounts:
    """A mailbox's hard bounces, complaints, blocks and send-time refusals since ``since``."""
    events = Event.objects.filter(mailbox_id=mailbox_id, occurred_at__gte=since)
    return OutcomeCounts(
        hard_bounces=events.filter(
            type=Event.Type.BOUNCED, bounce_type=Event.BounceType.HARD
        ).count(),
        complaints=events.filter(type=Event.Type.COMPLAINED).count(),
        blocks=events.filter(type=Event.Type.BLOCKED).count(),
        # The sending engine records each refusal at send time as one event of source "smtp".
        refused=events.filter(
            source="smtp", type__in=(Event.Type.BOUNCED, Event.Type.BLOCKED)
        ).count(),
    )


def day_outcomes(start: datetime, end: datetime) -> dict[str, int]:
    """Deliveries, hard bounces and complaints recorded in [start, end)."""
    events = Counter(
        Event.objects.filter(occurred_at__gte=start, occurred_at__lt=end)
        .values_list("type", "bounce_type")
        .iterator()
    )
    return {
        "delivered": events[(Event.Type.DELIVERED, "")],
        "hard_bounces": events[(Event.Type.BOUNCED, Event.BounceType.HARD)],
        "complaints": events[(Event.Type.COMPLAINED, "")],
    }
