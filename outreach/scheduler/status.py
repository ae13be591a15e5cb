"""The pool at a glance: one row per mailbox with its cap and use today, what holds its
domain back, and the pool's capacity today (:mod:`outreach.scheduler.capacity`)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from outreach.lib import clock
from outreach.pool.models import Mailbox, PoolSettings
from outreach.scheduler.capacity import domain_capacity, domain_holds, pool_capacity
from outreach.scheduler.models import DailyCounter


@dataclass(frozen=True)
class MailboxStatus:
    address: str
    domain: str
    state: str
    cap_today: int
    sent_today: int
    # Why its domain cannot send now ("domain in cooldown until ...", "DNS: critical
    # failure"); "" when it can.
    held: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PoolStatus:
    mailboxes: list[MailboxStatus]
    capacity_today: int

    @property
    def sent_today(self) -> int:
        return sum(r.sent_today for r in self.mailboxes)


def pool_status() -> PoolStatus:
    """A few queries whatever the pool size: mailboxes with their domains, today's counters,
    and the domains' holds."""
    pool = PoolSettings.load()
    day = clock.today(pool.timezone)
    used = dict(
        DailyCounter.objects.filter(day=day, scope=DailyCounter.Scope.MAILBOX).values_list(
            "key", "used"
        )
    )
    holds = domain_holds()
    rows = []
    caps: dict[int, list[int]] = defaultdict(list)
    domains = {}
    for mb in Mailbox.objects.select_related("domain").order_by("domain__name", "address"):
        cap = mb.cap_today(pool, day)
        caps[mb.domain_id].append(cap)
        domains[mb.domain_id] = mb.domain
        rows.append(
            MailboxStatus(
                address=mb.address,
                domain=mb.domain.name,
                state=mb.state,
                cap_today=cap,
                sent_today=used.get(str(mb.pk), 0),
                held=holds.get(mb.domain_id, ""),
            )
        )
    capacity = pool_capacity(
        (
            domain_capacity(domains[pk].cap(pool.limits), mailbox_caps, held=holds.get(pk, ""))
            for pk, mailbox_caps in caps.items()
        ),
        pool.limits.global_daily_cap,
    )
    return PoolStatus(rows, capacity)
