"""The periodic DNS check: one domain per unit of work, each re-checked every
``OUTREACH_DNS_CHECK_INTERVAL_MINUTES``.

Domains that only send through the local sandbox provider are skipped: nothing of theirs
reaches a receiver, so their DNS cannot hurt or help deliverability.
"""

from __future__ import annotations

import threading
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Max, Q

from outreach.lib import clock
from outreach.lib.loop import Loop
from outreach.pool.dns.resolver import Resolver
from outreach.pool.dns.store import check_and_store
from outreach.pool.models import Domain, ProviderAccount


def due_domain() -> Domain | None:
    """The domain whose last check is oldest and older than the interval (never checked first)."""
    minutes = settings.OUTREACH_DNS_CHECK_INTERVAL_MINUTES
    if minutes <= 0:
        return None
    cutoff = clock.now() - timedelta(minutes=minutes)
    candidates = (
        Domain.objects.exclude(state=Domain.State.RETIRED)
        .exclude(provider__kind=ProviderAccount.Kind.SANDBOX)
        .annotate(last_checked=Max("dns_checks__checked_at"))
        .filter(Q(last_checked__isnull=True) | Q(last_checked__lt=cutoff))
        .order_by(F("last_checked").asc(nulls_first=True), "name")
    )
    return candidates.select_related("provider").first()


def check_one() -> bool:
    domain = due_domain()
    if domain is None:
        return False
    check_and_store(domain, Resolver())
    return True


def make_loop(stop: threading.Event) -> Loop:
    # One domain per pass: a domain whose lookups all time out takes a while, and the pass
    # boundary is where the loop records its heartbeat; it also spreads the queries out.
    return Loop("dns", lambda: check_one() and False, idle_seconds=30.0, stop=stop)
