"""The pool at a glance: one row per mailbox with its cap and use today."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from outreach.lib import clock
from outreach.pool.models import Mailbox, PoolSettings
from outreach.scheduler.models import DailyCounter


@dataclass(frozen=True)
class MailboxStatus:
    address: str
    domain: str
    state: str
    cap_today: int
    sent_today: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pool_status() -> list[MailboxStatus]:
    """Two queries whatever the pool size: mailboxes with their domains, and today's counters."""
    pool = PoolSettings.load()
    day = clock.today(pool.timezone)
    used = dict(
        DailyCounter.objects.filter(day=day, scope=DailyCounter.Scope.MAILBOX).values_list(
            "key", "used"
        )
    )
    return [
        MailboxStatus(
            address=mb.address,
            domain=mb.domain.name,
            state=mb.state,
            cap_today=mb.cap_today(pool, day),
            sent_today=used.get(str(mb.pk), 0),
        )
        for mb in Mailbox.objects.select_related("domain").order_by("domain__name", "address")
    ]
