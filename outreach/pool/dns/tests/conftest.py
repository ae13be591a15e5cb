"""Fixtures of the DNS tests: a real DNS server on 127.0.0.1 serving a zone the test edits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from outreach.pool.dns.resolver import Resolver
from outreach.pool.dns.tests.dnsserver import DnsServer, Zone
from outreach.pool.models import Domain, ProviderAccount, SesIdentity
from outreach.testing import make_provider

DOMAIN = "send1.example.com"
TOKENS = ["tok1aaaa", "tok2bbbb", "tok3cccc"]
DKIM_KEY = "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC1"


CANARIES = ["gmail.com", "outlook.com"]


@pytest.fixture
def zone() -> Zone:
    """A zone with the names every working resolver finds (the canaries' MX)."""
    zone = Zone()
    for name in CANARIES:
        zone.add(name, "MX", f"10 mx.{name}")
    return zone


@pytest.fixture
def dns_server(zone: Zone) -> Iterator[DnsServer]:
    with DnsServer(zone) as server:
        yield server


@pytest.fixture
def resolver(dns_server: DnsServer) -> Resolver:
    # Short timeout: the "silent" names of a test cost this much each.
    return Resolver([("127.0.0.1", dns_server.port)], timeout=0.5)


@pytest.fixture(autouse=True)
def _dns_settings(settings: object) -> None:
    settings.OUTREACH_BASE_URL = "https://go.outreach.example.net"  # type: ignore[attr-defined]
    settings.OUTREACH_DNS_DOMAIN_BLOCKLISTS = ["dbl.test"]  # type: ignore[attr-defined]
    settings.OUTREACH_DNS_IP_BLOCKLISTS = ["ips.test"]  # type: ignore[attr-defined]
    settings.OUTREACH_DNS_CRITICAL_BLOCKS_SENDING = True  # type: ignore[attr-defined]
    settings.OUTREACH_DNS_CANARIES = CANARIES  # type: ignore[attr-defined]


def publish_good(zone: Zone, name: str = DOMAIN, region: str = "eu-west-1") -> None:
    """Everything a domain sending through SES with Easy DKIM and a custom MAIL FROM needs."""
    zone.add(name, "MX", f"10 inbound.{name}")
    zone.add(name, "TXT", "v=spf1 include:amazonses.com ~all", "google-site-verification=x")
    zone.add("amazonses.com", "TXT", "v=spf1 ip4:199.255.192.0/22 ip4:199.127.232.0/22 -all")
    for token in TOKENS:
        zone.add(f"{token}._domainkey.{name}", "CNAME", f"{token}.dkim.amazonses.com")
        zone.add(f"{token}.dkim.amazonses.com", "TXT", DKIM_KEY)
    zone.add(f"_dmarc.{name}", "TXT", f"v=DMARC1; p=none; rua=mailto:dmarc@{name}")
    zone.add(f"bounce.{name}", "MX", f"10 feedback-smtp.{region}.amazonses.com")
    zone.add(f"bounce.{name}", "TXT", "v=spf1 include:amazonses.com ~all")
    zone.add("go.outreach.example.net", "A", "203.0.113.10")
    publish_blocklist_tests(zone)


def publish_blocklist_tests(zone: Zone) -> None:
    """The test entries every blocklist lists (RFC 5782), for the test lists."""
    zone.add("test.dbl.test", "A", "127.0.1.2")
    zone.add("2.0.0.127.ips.test", "A", "127.0.0.2")


@pytest.fixture
def ses_domain(db: None) -> Domain:
    """A domain sending through SES, with its identity set up (tokens, MAIL FROM)."""
    provider = make_provider(
        "ses-eu", kind=ProviderAccount.Kind.SES, settings={"region": "eu-west-1"}
    )
    domain = Domain.objects.create(name=DOMAIN, provider=provider)
    SesIdentity.objects.create(
        domain=domain, region="eu-west-1", dkim_tokens=TOKENS, mail_from=f"bounce.{DOMAIN}"
    )
    return domain
