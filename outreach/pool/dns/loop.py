"""The periodic DNS check: one domain per unit of work, each re-checked every
``OUTREACH_DNS_CHECK_INTERVAL_MINUTES``.

Domains that only send through a local provider (the sandbox, the simulator's) are skipped:
nothing of theirs reaches a receiver, so their DNS cannot hurt or help deliverability. A domain
never checked is checked first, and its sends wait for that check (see ``store``).
"""

from __future__ import annotations

import threading
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Max, Q

from outreach.lib import clock
from outreach.lib.loop import Loop
from outreach.pool.dns.resolver import Resolver
from outreach.pool.dns.store import check_and_store, checked_domains
from outreach.pool.models import Domain


def due_domain() -> Domain | None:
    """The domain whose last check is oldest and older than the interval (never checked first;
    its ``last_checked`` is then None)."""
    minutes = settings.OUTREACH_DNS_CHECK_INTERVAL_MINUTES
    if minutes <= 0:
        return None
    cutoff = clock.now() - timedelta(minutes=minutes)
    candidates = (
        checked_domains()
        .annotate(last_checked=Max("dns_checks__checked_at"))
        .filter(Q(last_checked__isnull=True) | Q(last_checked__lt=cutoff))
        .order_by(F("last_checked").asc(nulls_first=True), "name")
    )
    return candidates.select_related("provider").first()


def check_due() -> Domain | None:
    """Check the most overdue domain; the domain checked, or None when none was due."""
    domain = due_domain()
    if domain is not None:
        check_and_store(domain, Resolver())
    return domain


def check_one() -> bool:
    return check_due() is not None


def _first_checks() -> bool:
    # A domain never checked holds its sends until its first check (store.unchecked_domain_ids):
    # those go one after another. A re-check is one per pass: the pass boundary is where the
    # loop records its heartbeat, and it spreads the queries out.
    domain = check_due()
    return domain is not None and domain.last_checked is None  # type: ignore[attr-defined]


def make_loop(stop: threading.Event) -> Loop:
    return Loop("dns", _first_checks, idle_seconds=30.0, stop=stop)
