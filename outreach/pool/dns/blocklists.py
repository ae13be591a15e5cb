"""DNS blocklists: the domain against domain lists (Spamhaus DBL...), SMTP sending IPs against
IP lists (Spamhaus ZEN...).

A listing answers with an address in 127.0.0.0/8. Spamhaus answers 127.255.255.x when it
refuses the query (public resolver, over quota): that is "could not check", not "listed" and
not "clean". So is any answer outside 127.0.0.0/8 (a resolver rewriting NXDOMAIN).
"""

from __future__ import annotations

import ipaddress

from outreach.pool.dns.findings import Finding, fail, ok, unknown
from outreach.pool.dns.resolver import CouldNotCheck, Resolver

# Every list publishes a test entry that is always listed (RFC 5782 §5: 127.0.0.2 for IP
# lists, "test" for domain lists; Spamhaus DBL uses dbltest.com). Asking for it first tells a
# working list from a resolver that answers NXDOMAIN for everything (no internet, a filtering
# resolver): without it such a resolver would make every domain look clean.
DOMAIN_TEST_ENTRIES = {"dbl.spamhaus.org": "dbltest.com"}
IP_TEST_ENTRY = "127.0.0.2"

_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
_REFUSED = ipaddress.ip_network("127.255.255.0/24")


def _classify(answers: list[str]) -> str:
    """ "clean", "listed" or "refused" for the A records of a blocklist query."""
    if not answers:
        return "clean"
    addresses = []
    for text in answers:
        try:
            addresses.append(ipaddress.ip_address(text))
        except ValueError:
            return "refused"
    if any(a not in _LOOPBACK or a in _REFUSED for a in addresses):
        return "refused"
    return "listed"


def check_listing(
    check: str, query: str, subject: str, zone: str, resolver: Resolver, fix: str, probe: str
) -> Finding:
    """Is ``query`` listed; ``probe`` is the zone's test entry, which must be."""
    label = f"{subject} on {zone}"
    try:
        if _classify(resolver.query(probe, "A").records) != "listed":
            return unknown(
                check,
                f"{zone} does not list its test entry: the list is not answering",
                subject=label,
            )
        answers = resolver.query(query, "A").records
    except CouldNotCheck as exc:
        return unknown(check, str(exc), subject=label)
    verdict = _classify(answers)
    if verdict == "refused":
        return unknown(check, f"{zone} refused the query ({', '.join(answers)})", subject=label)
    if verdict == "listed":
        return fail(
            check,
            "critical",
            f"{subject} is listed on {zone} ({', '.join(answers)})",
            fix,
            subject=label,
            codes=answers,
        )
    return ok(check, f"{subject} is not listed on {zone}", subject=label)


def check_domain_lists(domain: str, zones: list[str], resolver: Resolver) -> list[Finding]:
    return [
        check_listing(
            "blocklist",
            f"{domain}.{zone}",
            domain,
            zone,
            resolver,
            f"find why on the list's lookup page, fix it, request delisting for {domain}",
            f"{DOMAIN_TEST_ENTRIES.get(zone, 'test')}.{zone}",
        )
        for zone in zones
    ]


def reversed_ip(address: str) -> str:
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        return ".".join(reversed(address.split(".")))
    return ".".join(reversed(ip.exploded.replace(":", "")))


def check_ip_lists(hosts: list[str], zones: list[str], resolver: Resolver) -> list[Finding]:
    """``hosts`` are IP addresses or host names (resolved to their A records first)."""
    findings: list[Finding] = []
    addresses: list[str] = []
    for host in hosts:
        try:
            ipaddress.ip_address(host)
            addresses.append(host)
            continue
        except ValueError:
            pass
        try:
            found = resolver.query(host, "A").records
        except CouldNotCheck as exc:
            findings.append(unknown("ip_blocklist", str(exc), subject=host))
            continue
        if not found:
            findings.append(
                unknown("ip_blocklist", f"SMTP host {host} does not resolve", subject=host)
            )
        addresses.extend(found)
    for address in sorted(set(addresses)):
        if ipaddress.ip_address(address).is_private or ipaddress.ip_address(address).is_loopback:
            continue  # a local relay: not what receivers see
        for zone in zones:
            findings.append(
                check_listing(
                    "ip_blocklist",
                    f"{reversed_ip(address)}.{zone}",
                    address,
                    zone,
                    resolver,
                    f"sending IP {address} is listed: ask the SMTP provider, request delisting",
                    f"{reversed_ip(IP_TEST_ENTRY)}.{zone}",
                )
            )
    return findings
