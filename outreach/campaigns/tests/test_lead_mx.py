"""MX checks of lead import against a real DNS server on loopback."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from outreach.campaigns.addresses import MxChecker
from outreach.campaigns.leadrows import ImportOptions
from outreach.campaigns.leads import import_leads
from outreach.campaigns.models import Lead
from outreach.pool.dns.tests.dnsserver import DnsServer, Zone

HEADER = "email,first_name\n"


@pytest.fixture
def zone() -> Zone:
    zone = Zone()
    zone.add("acme-mail.com", "MX", "10 mx.acme-mail.com")
    zone.add("mx.acme-mail.com", "A", "192.0.2.10")
    # A globally routable address: a private or TEST-NET one is no fallback for MX.
    zone.add("a-only.com", "A", "93.184.216.34")
    zone.silent.add("slow-dns.com")
    return zone


@pytest.fixture(autouse=True)
def dns_server(zone: Zone, settings: object) -> Iterator[DnsServer]:
    with DnsServer(zone) as server:
        settings.OUTREACH_DNS_NAMESERVERS = [f"127.0.0.1:{server.port}"]  # type: ignore[attr-defined]
        yield server


@pytest.mark.django_db
def test_it_rejects_domains_that_cannot_receive_mail_when_enabled() -> None:
    text = HEADER + "".join(
        f"{who}@{domain},X\n"
        for who, domain in [
            ("ann", "acme-mail.com"),
            ("bo", "acme-mail.com"),
            ("cy", "a-only.com"),
            ("di", "no-such-domain.com"),
            ("ed", "slow-dns.com"),
        ]
    )
    report = import_leads(io.StringIO(text), options=ImportOptions(check_mx=True, mx_timeout=1))
    assert report.skipped["no_mx"] == 1
    assert [e.email for e in report.errors] == ["di@no-such-domain.com"]
    # A timeout is no verdict: the lead is imported.
    assert set(Lead.objects.values_list("email", flat=True)) == {
        "ann@acme-mail.com",
        "bo@acme-mail.com",
        "cy@a-only.com",
        "ed@slow-dns.com",
    }


@pytest.mark.django_db
def test_it_makes_no_lookups_unless_enabled() -> None:
    report = import_leads(io.StringIO(HEADER + "di@no-such-domain.com,X\n"))
    assert report.imported == 1


def test_it_looks_each_domain_up_once() -> None:
    checker = MxChecker(timeout=1)
    for _ in range(3):
        assert checker.problem("acme-mail.com") is None
        assert checker.problem("no-such-domain.com") is not None
    assert checker.lookups == 2
