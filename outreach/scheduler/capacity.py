"""Capacity today: how many messages the pool may send on the pool's day, and what holds a
domain back. The one rule `outreach status`, the dashboard and the simulator read.

A domain sends only when the router would route through it: its state is ``active`` and no
DNS verdict holds it (a critical failure, or its first check still to come). Its capacity is
the sum of its mailboxes' caps today (0 for mailboxes that cannot send: paused, cooldown,
retired), bounded by the domain's cap; the pool's is the sum over domains, bounded by the
global cap.
"""

from __future__ import annotations

from collections.abc import Iterable

from outreach.pool import dns
from outreach.pool.models import Domain


def domain_capacity(domain_cap: int, mailbox_caps: Iterable[int], *, held: str = "") -> int:
    """What one domain may send today: its mailboxes' caps bounded by its own; 0 when held."""
    if held:
        return 0
    return min(domain_cap, sum(mailbox_caps))


def pool_capacity(domain_capacities: Iterable[int], global_cap: int) -> int:
    """What the pool may send today: its domains' capacities bounded by the global cap."""
    return min(global_cap, sum(domain_capacities))


def domain_holds() -> dict[int, str]:
    """Why each domain that cannot send now cannot (domain id → reason); a domain that can
    send is absent. Three queries whatever the pool size."""
    holds: dict[int, str] = {}
    stopped = Domain.objects.exclude(state=Domain.State.ACTIVE).values_list(
        "pk", "state", "cooldown_until"
    )
    for pk, state, until in stopped:
        if state == Domain.State.COOLDOWN and until is not None:
            holds[pk] = f"domain in cooldown until {until:%Y-%m-%d %H:%M}"
        else:
            holds[pk] = f"domain {state}"
    unchecked = dns.unchecked_domain_ids()
    for pk in dns.blocked_domain_ids():
        holds.setdefault(
            pk,
            "DNS: waiting for its first check" if pk in unchecked else "DNS: critical failure",
        )
    return holds
