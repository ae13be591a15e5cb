"""A provider that accepts every message and schedules what its recipient will "do".

It never touches the database (the provider contract): each accepted message becomes one or
two pending :class:`Notification` s in a :class:`Feed`, due at an instant of the simulated
clock. The feed plays the provider's webhook: :func:`record_due` hands the notifications that
have come due to the events collector (which registers itself with :func:`set_recorder`; it
sits above the providers), where the real events code stores them, so suppression, stopped
enrollments, complaint pauses and the health rules react exactly as they would to SES
notifications.

Outcomes are decided per recipient address from a hash of the address and the run's seed, so
one address always bounces or never does (as real dead mailboxes do) and a run is
reproducible.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from outreach.lib import clock
from outreach.lib.eventtypes import BOUNCED, COMPLAINED, DELIVERED, HARD
from outreach.providers import base
from outreach.providers.base import Envelope, Provider, SendResult

KIND = "simulated"
SOURCE = "simulated"


@dataclass(frozen=True)
class Notification:
    """One notification of the simulated provider: what its webhook would have posted."""

    type: str
    recipient: str
    occurred_at: datetime
    provider_event_id: str
    provider_message_id: str
    outreach_message_id: int | None
    bounce_type: str = ""
    diagnostic: str = ""
    raw: dict[str, Any] = field(default_factory=dict)
    source: str = SOURCE


@dataclass(frozen=True)
class Rates:
    """What recipients do, as fractions of the messages sent to them.

    Delays are how long after the send each notification arrives: SES reports deliveries
    and hard bounces within seconds to minutes, complaints hours later.
    """

    bounce_rate: float = 0.0
    complaint_rate: float = 0.0
    seed: int = 0
    delivery_delay: timedelta = timedelta(seconds=20)
    bounce_delay: timedelta = timedelta(minutes=2)
    complaint_delay: timedelta = timedelta(hours=5)
    # Addresses that always accept and never complain (the warm-up seed inboxes).
    safe_addresses: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for name in ("bounce_rate", "complaint_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {value}")


def draw(seed: int, address: str, purpose: str) -> float:
    """A uniform number in [0, 1) fixed by the seed, the address and what it decides."""
    digest = hashlib.sha256(f"{seed}:{purpose}:{address.lower()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(order=True)
class _Pending:
    due: datetime
    order: int
    notification: Notification = field(compare=False)


class Feed:
    """Pending provider notifications in due order; shared by the provider's instances."""

    def __init__(self, rates: Rates | None = None) -> None:
        self.rates = rates or Rates()
        self._lock = threading.Lock()
        self._heap: list[_Pending] = []
        self._order = itertools.count()
        self.accepted = 0

    def configure(self, rates: Rates) -> None:
        with self._lock:
            self.rates = rates
            self._heap.clear()
            self.accepted = 0

    def accept(self, envelope: Envelope, provider_message_id: str, at: datetime) -> None:
        """Decide what becomes of one accepted message and queue its notifications."""
        rates = self.rates
        recipient = envelope.recipient.lower()
        events: list[tuple[datetime, str, str]] = []
        safe = recipient in rates.safe_addresses
        if not safe and draw(rates.seed, recipient, "bounce") < rates.bounce_rate:
            events.append((at + rates.bounce_delay, BOUNCED, HARD))
        else:
            events.append((at + rates.delivery_delay, DELIVERED, ""))
            if not safe and draw(rates.seed, recipient, "complaint") < rates.complaint_rate:
                events.append((at + rates.complaint_delay, COMPLAINED, ""))
        with self._lock:
            self.accepted += 1
            for due, type_, bounce_type in events:
                notification = Notification(
                    type=type_,
                    recipient=recipient,
                    occurred_at=due,
                    provider_event_id=f"{provider_message_id}:{type_}",
                    provider_message_id=provider_message_id,
                    outreach_message_id=envelope.message_id,
                    bounce_type=bounce_type,
                    diagnostic="5.1.1 user unknown (simulated)" if bounce_type else "",
                    raw={"simulated": True, "type": type_, "recipient": recipient},
                )
                heapq.heappush(self._heap, _Pending(due, next(self._order), notification))

    def next_at(self) -> datetime | None:
        with self._lock:
            return self._heap[0].due if self._heap else None

    def pop_due(self, now: datetime) -> list[Notification]:
        out = []
        with self._lock:
            while self._heap and self._heap[0].due <= now:
                out.append(heapq.heappop(self._heap).notification)
        return out

    def __len__(self) -> int:
        return len(self._heap)


FEED = Feed()


class SimulatedProvider(Provider):
    """Accepts every message at once; what happens next is queued in :data:`FEED`."""

    kind = KIND
    # Nothing leaves the process: signing would only cost time.
    needs_dkim_signature = False

    def send(self, raw_message: bytes, envelope: Envelope) -> SendResult:
        provider_id = f"sim-{envelope.message_id}"
        FEED.accept(envelope, provider_id, clock.now())
        return SendResult(provider_message_id=provider_id, code="250", response="accepted")


# Stores a batch of notifications through the events code; returns how many were new.
Recorder = Callable[[list[Notification]], int]


def _never_registered(notifications: list[Notification]) -> int:
    raise RuntimeError("no recorder registered: is outreach.events installed?")


_recorder: Recorder = _never_registered


def set_recorder(recorder: Recorder) -> None:
    """Called by ``EventsConfig.ready``: where due notifications are stored."""
    global _recorder
    _recorder = recorder


def record_due(now: datetime, feed: Feed = FEED) -> int:
    """Store every notification due at ``now`` through the real events code (the webhook's
    part), as one batch, as a webhook delivers several; returns how many were new."""
    due = feed.pop_due(now)
    return _recorder(due) if due else 0


def register() -> None:
    """Make ``kind = "simulated"`` provider accounts use this plugin."""
    # The registry fills in the built-in providers only while it is empty: load them first so
    # registering this one does not hide them.
    base.provider_class("sandbox")
    base.register(KIND, lambda: SimulatedProvider)
