"""A configurable DNS resolver that tells "missing" from "could not check".

``NXDOMAIN`` and "no answer" are facts about the domain (the record is missing); a timeout,
SERVFAIL, a refused query or a malformed answer is a fact about the path to it, and raises
:class:`CouldNotCheck` so no rule ever reads it as "missing" or as "fine".
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver
from django.conf import settings


class CouldNotCheck(Exception):
    """The lookup gave no answer we can trust (timeout, SERVFAIL, refused...)."""


@dataclass(frozen=True)
class Answer:
    """The records found (as text, TXT strings joined) and, for a CNAME chain, the target."""

    records: list[str]
    canonical: str = ""

    @property
    def missing(self) -> bool:
        return not self.records


def parse_nameservers(spec: str | list[str], default_port: int = 53) -> list[tuple[str, int]]:
    """``"ip[:port],..."`` (IPv6 as ``[addr]:port``) into (address, port) pairs."""
    items = spec.split(",") if isinstance(spec, str) else spec
    servers = []
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        if item.startswith("["):
            address, _, rest = item[1:].partition("]")
            port = rest.removeprefix(":")
        elif item.count(":") == 1:
            address, _, port = item.partition(":")
        else:
            address, port = item, ""
        try:
            servers.append((address, int(port) if port else default_port))
        except ValueError:
            raise ValueError(f"not a nameserver (ip[:port]): {item!r}") from None
    return servers


class Resolver:
    """dnspython's stub resolver with our error mapping.

    ``nameservers`` empty: the system's resolvers (/etc/resolv.conf). ``timeout`` bounds each
    lookup as a whole (dnspython's lifetime), so one unresponsive server cannot stall a check.
    """

    def __init__(
        self,
        nameservers: list[tuple[str, int]] | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        if nameservers is None:
            nameservers = parse_nameservers(getattr(settings, "OUTREACH_DNS_NAMESERVERS", []))
        lifetime = timeout if timeout is not None else settings.OUTREACH_DNS_TIMEOUT
        if nameservers:
            self._resolver = dns.resolver.Resolver(configure=False)
            self._resolver.nameservers = [
                dns.nameserver.Do53Nameserver(address, port) for address, port in nameservers
            ]
        else:
            try:
                self._resolver = dns.resolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                # No /etc/resolv.conf: every lookup then ends in NoNameservers, i.e. "could
                # not check", rather than the check crashing.
                self._resolver = dns.resolver.Resolver(configure=False)
        self._resolver.lifetime = lifetime
        self._resolver.timeout = min(lifetime, 2.0)
        self._resolver.cache = None
        self.lookups = 0
        self._untrusted: str | None = None

    def query(self, name: str, rdtype: str) -> Answer:
        """Records of ``rdtype`` at ``name``; an empty Answer when they do not exist."""
        self.lookups += 1
        try:
            answer = self._resolver.resolve(name, rdtype, search=False, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return Answer([])
        except dns.resolver.LifetimeTimeout:
            raise CouldNotCheck(f"{rdtype} {name}: timed out") from None
        except dns.resolver.NoNameservers:
            raise CouldNotCheck(f"{rdtype} {name}: SERVFAIL (no server answered)") from None
        except dns.exception.DNSException as exc:
            raise CouldNotCheck(f"{rdtype} {name}: {exc.__class__.__name__}") from None
        if answer.rrset is None:
            return Answer([], str(answer.canonical_name).rstrip("."))
        return Answer(
            [_text(rdata, rdtype) for rdata in answer.rrset],
            str(answer.canonical_name).rstrip("."),
        )

    def untrusted(self) -> str:
        """Why this resolver's "missing" cannot be believed, or "" when it can.

        A resolver that answers NXDOMAIN for everything (no internet, a filtering or broken
        resolver) would make every record of every domain look missing. So before anything
        is called missing, the MX of names that must exist (``OUTREACH_DNS_CANARIES``, e.g.
        gmail.com) is asked of the same resolver; if one is missing or unanswered, nothing
        this resolver says is missing is believed. Asked once per resolver.
        """
        if self._untrusted is None:
            self._untrusted = ""
            for name in settings.OUTREACH_DNS_CANARIES:
                try:
                    if self.query(name, "MX").missing:
                        self._untrusted = f"the resolver finds no MX for {name}, which has one"
                except CouldNotCheck as exc:
                    self._untrusted = f"the resolver does not answer for {name} ({exc})"
                if self._untrusted:
                    break
        return self._untrusted

    def cname(self, name: str) -> str | None:
        """The CNAME target at ``name`` (without following it), or None."""
        records = self.query(name, "CNAME").records
        return records[0] if records else None


def _text(rdata: object, rdtype: str) -> str:
    if dns.rdatatype.from_text(rdtype) == dns.rdatatype.TXT:
        return b"".join(rdata.strings).decode("utf-8", "replace")  # type: ignore[attr-defined]
    return str(rdata).rstrip(".") if rdtype in ("CNAME", "NS", "PTR") else str(rdata)
