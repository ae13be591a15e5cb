"""Keep the rollups current: one increment per stored event and per provider call."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from outreach.events.models import Event
from outreach.metrics import rollups
from outreach.sending.models import SendAttempt

log = logging.getLogger(__name__)


def on_event_recorded(sender: Any, event: Event, **kwargs: Any) -> None:
    # A savepoint: a failing rollup must never lose the event stored in the same transaction;
    # `outreach rollups --rebuild DAY` repairs the count.
    try:
        with transaction.atomic():
            rollups.record_event(event)
    except Exception:
        log.exception("rollup of event %s failed", event.pk)


def on_send_attempted(sender: Any, attempt: SendAttempt, **kwargs: Any) -> None:
    try:
        with transaction.atomic():
            rollups.record_attempt(attempt)
    except Exception:
        log.exception("rollup of send attempt %s failed", attempt.pk)
