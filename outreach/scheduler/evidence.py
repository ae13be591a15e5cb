"""What the scheduler reads of delivery outcomes, answered by the layers that record them.

The scheduler sits below the sending, events and metrics layers and imports none of them.
The figures it needs (a mailbox's rates for routing, a warming mailbox's record for graduation,
a simulated day's outcomes) are functions those layers register when their app is ready
(the ``ready`` methods of the metrics and events apps).
Before registration (a bare unit test of the pure parts) nothing is known: no rates, no events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class MailboxRates:
    """A mailbox's hard-bounce and complaint rates over the thresholds' window, and whether
    its last day shows a spike (any complaint, or bounces above the warning rate)."""

    bounce_rate: float = 0.0
    complaint_rate: float = 0.0
    recent_spike: bool = False


@dataclass(frozen=True)
class OutcomeCounts:
    """One mailbox's outcomes since some moment, from the recorded events."""

    hard_bounces: int = 0
    complaints: int = 0
    blocks: int = 0
    refused: int = 0  # refused at send time (one "smtp" event each): attempts too


MailboxRatesReader = Callable[[datetime, Any], dict[int, MailboxRates]]
OutcomeCountsReader = Callable[[int, datetime], OutcomeCounts]
# (start, end) -> {"delivered": n, "hard_bounces": n, "complaints": n}
DayOutcomesReader = Callable[[datetime, datetime], dict[str, int]]

_readers: dict[str, Callable[..., Any]] = {}


def register(
    *,
    mailbox_rates: MailboxRatesReader | None = None,
    outcome_counts: OutcomeCountsReader | None = None,
    day_outcomes: DayOutcomesReader | None = None,
) -> None:
    """Called by the recording layers at start-up (idempotent)."""
    for name, reader in (
        ("mailbox_rates", mailbox_rates),
        ("outcome_counts", outcome_counts),
        ("day_outcomes", day_outcomes),
    ):
        if reader is not None:
            _readers[name] = reader


def mailbox_rates(now: datetime, thresholds: Any) -> dict[int, MailboxRates]:
    """Per mailbox with any evidence: its rates (see :class:`MailboxRates`)."""
    reader = _readers.get("mailbox_rates")
    return reader(now, thresholds) if reader else {}


def outcome_counts(mailbox_id: int, since: datetime) -> OutcomeCounts:
    reader = _readers.get("outcome_counts")
    return reader(mailbox_id, since) if reader else OutcomeCounts()


def day_outcomes(start: datetime, end: datetime) -> dict[str, int]:
    reader = _readers.get("day_outcomes")
    return reader(start, end) if reader else {}
