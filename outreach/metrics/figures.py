"""Figures: the counts of one subject (a mailbox, a domain, the pool) over some period.

Plain values, no database: rollups produce them, health rules and the dashboard read them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# The counters kept per rollup row, in display order.
COUNTERS: tuple[str, ...] = (
    "sent",
    "failed",
    "transient",
    "delivered",
    "bounced_hard",
    "bounced_soft",
    "deferred",
    "complained",
    "unsubscribed",
    "opened",
    "clicked",
    "replied",
    "auto_replied",
    "blocked",
    "refused",
    # Of ``opened`` and ``clicked``, those our tracking classified as a person (an estimate:
    # outreach.events.visitors); ``opened`` and ``clicked`` count every visitor.
    "opened_human",
    "clicked_human",
)


# What :attr:`Figures.attempts`, :attr:`Figures.bounce_rate` and :attr:`Figures.complaint_rate`
# are made of: a read for those rates alone needs no other counter.
RATE_COUNTERS: tuple[str, ...] = ("sent", "refused", "bounced_hard", "complained")

_COUNTER_SET = frozenset(COUNTERS)


@dataclass(frozen=True)
class Figures:
    """Counts over a period. Rates are over :attr:`attempts`: the messages the provider
    accepted (``sent``) plus those the recipient's server refused while we were still talking
    to it (``refused``: a 5.1.x or 5.7.x answer to RCPT or DATA). A refused message is also
    counted where it belongs (``bounced_hard`` or ``blocked``): it was an attempt that
    bounced, and leaving it out would make a mailbox whose every message is refused look
    clean ("0 sent, 0% bounced")."""

    sent: int = 0
    refused: int = 0
    failed: int = 0
    transient: int = 0
    delivered: int = 0
    bounced_hard: int = 0
    bounced_soft: int = 0
    deferred: int = 0
    complained: int = 0
    unsubscribed: int = 0
    opened: int = 0
    clicked: int = 0
    replied: int = 0
    auto_replied: int = 0
    blocked: int = 0
    opened_human: int = 0
    clicked_human: int = 0

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> Figures:
        """The counters among ``data``'s keys (a row of sums: None or absent reads 0)."""
        # Only the counters the row has and that are not 0: a routing pass reads the rates
        # of every mailbox of the pool, four counters of the seventeen each.
        return cls(**{name: int(v) for name, v in data.items() if v and name in _COUNTER_SET})

    def __add__(self, other: Figures) -> Figures:
        return Figures(**{name: getattr(self, name) + getattr(other, name) for name in COUNTERS})

    @property
    def attempts(self) -> int:
        """Messages that reached a recipient's server: accepted or refused there."""
        return self.sent + self.refused

    def rate(self, counter: str) -> float:
        """``counter`` per attempt; 0.0 when nothing was attempted."""
        return getattr(self, counter) / self.attempts if self.attempts else 0.0

    @property
    def bounce_rate(self) -> float:
        return self.rate("bounced_hard")

    @property
    def complaint_rate(self) -> float:
        return self.rate("complained")

    # Open and click rates are the human estimates only: machine opens (Apple's proxy, image
    # proxies, scanners) say nothing about readers, and rules must never act on them.
    @property
    def open_rate(self) -> float:
        return self.rate("opened_human")

    @property
    def click_rate(self) -> float:
        return self.rate("clicked_human")

    @property
    def reply_rate(self) -> float:
        return self.rate("replied")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = asdict(self)
        data["attempts"] = self.attempts
        data["bounce_rate"] = round(self.bounce_rate, 4)
        data["complaint_rate"] = round(self.complaint_rate, 4)
        data["open_rate"] = round(self.open_rate, 4)
        data["click_rate"] = round(self.click_rate, 4)
        return data
