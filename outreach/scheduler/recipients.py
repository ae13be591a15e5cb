"""Recipient providers: who hosts a recipient domain's mail, from its MX records.

Gmail filters mail from Google Workspace senders with more trust than mail from elsewhere,
Outlook the same for Microsoft 365; a burst of cold mail into one provider looks like a
campaign to its filters. So routing may prefer a sender of the recipient's own provider and
cap the pool's mail into each provider per hour (``[limits]`` ``prefer_same_provider``,
``recipient_provider_hourly_cap``).

:func:`classify_mx` is the pure rule; :func:`providers_of` looks each domain up once and keeps
the answer for :data:`TTL` in :class:`RecipientDomain`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery

from outreach.lib import clock
from outreach.pool.dns.resolver import CouldNotCheck, Resolver
from outreach.scheduler.models import RecipientDomain

# MX records change rarely (a company moving to Google or Microsoft); a week is fresh enough.
TTL = timedelta(days=7)
# A lookup that failed (timeout, SERVFAIL) is tried again after this, not at every pass.
RETRY_AFTER = timedelta(hours=1)
UNKNOWN = "unknown"  # stored for a failed lookup; routing reads it as "" (not known)

# MX host suffixes of each provider class, as the providers publish them.
PROVIDER_MX: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("google", ("google.com", "googlemail.com")),
    ("microsoft", ("mail.protection.outlook.com", "outlook.com", "hotmail.com")),
    ("yahoo", ("yahoodns.net", "yahoo.com")),
    (
        "gateway",
        (
            "pphosted.com",  # Proofpoint
            "ppe-hosted.com",  # Proofpoint Essentials
            "mimecast.com",
            "mimecast.co.za",
            "barracudanetworks.com",
            "messagelabs.com",  # Broadcom (Symantec) Email Security.cloud
            "iphmx.com",  # Cisco Secure Email
            "trendmicro.com",
            "sophos.com",
        ),
    ),
)
CLASSES = ("google", "microsoft", "yahoo", "gateway", "other")


def classify_mx(records: Iterable[str]) -> tuple[str, str]:
    """(provider class, preferred MX host) from MX records ("10 aspmx.l.google.com.").

    The most preferred host (lowest number) decides: a gateway in front of Microsoft 365 is a
    gateway, since its filters see the mail first. No MX at all: ("", "").
    """
    hosts: list[tuple[int, str]] = []
    for record in records:
        parts = record.split()
        if len(parts) != 2:
            continue
        try:
            hosts.append((int(parts[0]), parts[1].rstrip(".").lower()))
        except ValueError:
            continue
    if not hosts:
        return "", ""
    host = min(hosts)[1]
    for provider, suffixes in PROVIDER_MX:
        if any(host == s or host.endswith("." + s) for s in suffixes):
            return provider, host
    return "other", host


def providers_of(
    domains: Iterable[str], *, now: datetime | None = None, resolver: Resolver | None = None
) -> dict[str, str]:
    """The provider class of each domain: kept answers younger than :data:`TTL`, the others
    looked up now (a lookup that fails gives "" and is tried again next time)."""
    now = now or clock.now()
    wanted = {d.lower() for d in domains if d}
    fresh = Q(checked_at__gt=now - TTL) & ~Q(provider=UNKNOWN) | Q(
        checked_at__gt=now - RETRY_AFTER, provider=UNKNOWN
    )
    known = dict(
        RecipientDomain.objects.filter(fresh, domain__in=wanted).values_list("domain", "provider")
    )
    missing = sorted(wanted - known.keys())
    if missing:
        resolver = resolver or Resolver()
        for domain in missing:
            try:
                provider, mx = classify_mx(resolver.query(domain, "MX").records)
            except CouldNotCheck:
                provider, mx = UNKNOWN, ""
            RecipientDomain.objects.update_or_create(
                domain=domain, defaults={"provider": provider, "mx": mx, "checked_at": now}
            )
            known[domain] = provider
    return {domain: ("" if p == UNKNOWN else p) for domain, p in known.items()}


# How the mix names a recipient domain with no class: never looked up, no MX, or a lookup that
# failed. Shown as is rather than guessed.
UNCLASSED = "unknown"


def provider_mix(messages: QuerySet[Any]) -> dict[str, int]:
    """How many of ``messages`` went to each recipient provider class, in :data:`CLASSES`
    order then :data:`UNCLASSED`; classes with none are left out. One query: each message's
    ``to_domain`` joined to its kept :class:`RecipientDomain` answer (no lookup is made)."""
    provider = RecipientDomain.objects.filter(domain=OuterRef("to_domain")).values("provider")
    rows = (
        messages.annotate(recipient_provider=Subquery(provider[:1]))
        .order_by()
        .values_list("recipient_provider")
        .annotate(n=Count("pk"))
    )
    counts: Counter[str] = Counter()
    for name, n in rows:
        counts[name if name in CLASSES else UNCLASSED] += n
    return {name: counts[name] for name in (*CLASSES, UNCLASSED) if counts[name]}
