"""Keep the rollups current: one increment per batch of stored events and of provider calls."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from outreach.events.models import Event
from outreach.metrics import rollups
from outreach.sending.models import SendAttempt

log = logging.getLogger(__name__)


def on_events_recorded(sender: Any, events: list[Event], **kwargs: Any) -> None:
    # A savepoint: a failing rollup must never lose the events stored in the same
    # transaction; `outreach rollups --rebuild DAY` repairs the counts.
    try:
        with transaction.atomic():
            rollups.record_events(events)
    except Exception:
        log.exception("rollup of events %s failed", [e.pk for e in events])


def on_send_attempted(
    sender: Any,
    attempts: list[SendAttempt] | None = None,
    attempt: SendAttempt | None = None,
    **kwargs: Any,
) -> None:
    batch = attempts_of(attempts, attempt)
    try:
        with transaction.atomic():
            rollups.record_attempts(batch)
    except Exception:
        log.exception("rollup of send attempts %s failed", [a.pk for a in batch])


def attempts_of(
    attempts: list[SendAttempt] | None, attempt: SendAttempt | None
) -> list[SendAttempt]:
    """The attempts of a ``send_attempted`` signal: a batch (``attempts``, as the engine sends
    it) or a single one (``attempt``)."""
    return list(attempts or []) + ([attempt] if attempt is not None else [])
