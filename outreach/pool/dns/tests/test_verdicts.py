"""DNS verdicts that know when they cannot tell, and hold a domain until it is checked."""

from __future__ import annotations

import threading
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from outreach.lib import clock
from outreach.pool.dns import blocked_domain_ids, sending_blocked
from outreach.pool.dns.loop import make_loop
from outreach.pool.dns.resolver import Resolver
from outreach.pool.dns.store import check_and_store
from outreach.pool.dns.tests.conftest import CANARIES, DOMAIN, publish_good
from outreach.pool.dns.tests.dnsserver import DnsServer, Zone
from outreach.pool.models import Domain, Mailbox
from outreach.scheduler.engine import run_pass
from outreach.testing import enroll, make_campaign, make_leads, make_provider

pytestmark = pytest.mark.django_db


def nxdomain_for_everything(zone: Zone) -> None:
    """A resolver with no way out (no internet, a filtering resolver): every name NXDOMAIN."""
    zone.records.clear()


def test_it_says_could_not_check_when_the_resolver_finds_nothing_at_all(
    zone: Zone, dns_server: DnsServer, ses_domain: Domain
) -> None:
    nxdomain_for_everything(zone)
    out = StringIO()
    server = f"127.0.0.1:{dns_server.port}"

    with pytest.raises(CommandError) as failed:
        call_command("dns", "check", DOMAIN, "--nameserver", server, "--timeout", "1", stdout=out)

    assert failed.value.returncode == 2  # could not check, not "fails critically"
    assert f"{DOMAIN}: UNKNOWN" in out.getvalue()
    assert "blocks sending" not in out.getvalue()
    assert f"the resolver finds no MX for {CANARIES[0]}" in out.getvalue()
    assert not sending_blocked(ses_domain)


def test_it_believes_a_missing_record_once_the_resolver_finds_the_canaries(
    zone: Zone, resolver: Resolver, ses_domain: Domain
) -> None:
    publish_good(zone)
    zone.remove(f"_dmarc.{DOMAIN}", "TXT")
    assert check_and_store(ses_domain, resolver).blocks_sending
    # The same resolver, later unable to see the canaries: the failure is kept, not cleared.
    nxdomain_for_everything(zone)
    again = check_and_store(ses_domain, Resolver([("127.0.0.1", resolver_port(resolver))]))
    assert again.outcome == "unknown" and again.blocks_sending


def test_it_takes_the_canaries_from_the_settings(
    zone: Zone, resolver: Resolver, ses_domain: Domain, settings: object
) -> None:
    publish_good(zone)
    settings.OUTREACH_DNS_CANARIES = ["must-exist.test"]  # type: ignore[attr-defined]
    assert check_and_store(ses_domain, resolver).outcome == "unknown"
    zone.add("must-exist.test", "MX", "10 mx.must-exist.test")
    fresh = Resolver([("127.0.0.1", resolver_port(resolver))], timeout=0.5)
    assert check_and_store(ses_domain, fresh).outcome == "ok"


def resolver_port(resolver: Resolver) -> int:
    return resolver._resolver.nameservers[0].port  # type: ignore[union-attr]


def test_it_checks_a_never_checked_domain_before_its_first_send(
    zone: Zone, dns_server: DnsServer, ses_domain: Domain, settings: object
) -> None:
    settings.OUTREACH_DNS_CHECK_INTERVAL_MINUTES = 360  # type: ignore[attr-defined]
    settings.OUTREACH_DNS_NAMESERVERS = [f"127.0.0.1:{dns_server.port}"]  # type: ignore[attr-defined]
    publish_good(zone)
    Mailbox.objects.create(address=f"rep1@{DOMAIN}", domain=ses_domain, state="active")
    local = Domain.objects.create(name="local.example.com", provider=make_provider())
    enroll(make_campaign(), make_leads(1))
    now = clock.now()

    assert blocked_domain_ids() == {ses_domain.pk}  # the sandbox's DNS is never checked
    first = run_pass(now, send=False, health=False)
    assert (first.planned, first.claimed) == (1, 0)

    assert make_loop(threading.Event()).handle_one() is True  # a first check
    assert ses_domain.dns_checks.get().outcome == "ok"
    assert blocked_domain_ids() == set() and not sending_blocked(local)
    assert run_pass(now, send=False, health=False).claimed == 1
