"""DNS of the sending domains: authentication checks, blocklists, Cloudflare records.

The scheduler asks :func:`sending_blocked` (or :func:`blocked_domain_ids`) before routing a
message through a domain; ``outreach dns check|plan|apply`` and the periodic loop
(:mod:`outreach.pool.dns.loop`) keep the stored verdicts fresh.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from outreach.pool.models import DnsCheck, Domain


def sending_blocked(domain: Domain | int) -> bool:
    """True when a critical DNS failure of ``domain`` blocks sending from it (see store)."""
    from outreach.pool.dns.store import sending_blocked as blocked

    return blocked(domain)


def blocked_domain_ids() -> set[int]:
    from outreach.pool.dns.store import blocked_domain_ids as blocked

    return blocked()


def unchecked_domain_ids() -> set[int]:
    """Domains held until their first DNS check (empty when checks are by hand only)."""
    from outreach.pool.dns.store import unchecked_domain_ids as unchecked

    return unchecked()


def latest_check(domain: Domain | int) -> DnsCheck | None:
    """The latest stored DNS check of ``domain`` (for the dashboard's domain pages)."""
    from outreach.pool.dns.store import latest_check as latest

    return latest(domain)
