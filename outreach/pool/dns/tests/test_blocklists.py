"""Blocklists, stored results, alerts, cooldowns and the sending verdict, on a real DNS server."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from outreach.alerts.models import Alert
from outreach.lib import clock
from outreach.lib.loop import run_loop
from outreach.pool.dns import blocked_domain_ids, sending_blocked
from outreach.pool.dns.blocklists import check_domain_lists, check_ip_lists
from outreach.pool.dns.loop import check_one, due_domain, make_loop
from outreach.pool.dns.resolver import Resolver
from outreach.pool.dns.store import check_and_store
from outreach.pool.dns.tests.conftest import DOMAIN, publish_blocklist_tests, publish_good
from outreach.pool.dns.tests.dnsserver import DnsServer, Zone
from outreach.pool.models import Domain, StateChange
from outreach.testing import make_provider


def test_it_finds_a_domain_listed_in_a_local_blocklist_zone(zone: Zone, resolver: Resolver) -> None:
    publish_blocklist_tests(zone)
    zone.add(f"{DOMAIN}.dbl.test", "A", "127.0.1.2")
    listed = check_domain_lists(DOMAIN, ["dbl.test"], resolver)
    assert [(f.status, f.severity) for f in listed] == [("fail", "critical")]
    assert "listed on dbl.test (127.0.1.2)" in listed[0].message
    clean = check_domain_lists("other.example.com", ["dbl.test"], resolver)
    assert [f.status for f in clean] == ["ok"]


def test_it_treats_a_refused_blocklist_query_as_could_not_check(
    zone: Zone, resolver: Resolver
) -> None:
    publish_blocklist_tests(zone)
    zone.add("test.other.test", "A", "127.0.1.2")
    # Spamhaus answers 127.255.255.254 to queries coming through public resolvers.
    zone.add(f"{DOMAIN}.dbl.test", "A", "127.255.255.254")
    zone.servfail.add(f"{DOMAIN}.other.test")
    findings = check_domain_lists(DOMAIN, ["dbl.test", "other.test"], resolver)
    assert [f.status for f in findings] == ["unknown", "unknown"]


def test_it_does_not_call_a_domain_clean_when_the_list_does_not_answer(
    zone: Zone, resolver: Resolver
) -> None:
    # A resolver without internet answers NXDOMAIN for everything, the test entry included.
    (finding,) = check_domain_lists(DOMAIN, ["dbl.test"], resolver)
    assert finding.status == "unknown" and "test entry" in finding.message
    (finding,) = check_ip_lists(["11.22.33.44"], ["ips.test"], resolver)
    assert finding.status == "unknown"


def test_it_checks_smtp_sending_ips_against_ip_lists(zone: Zone, resolver: Resolver) -> None:
    publish_blocklist_tests(zone)
    zone.add("smtp.relay.example.net", "A", "11.22.33.44", "11.22.33.45")
    zone.add("44.33.22.11.ips.test", "A", "127.0.0.2")
    findings = check_ip_lists(["smtp.relay.example.net"], ["ips.test"], resolver)
    assert [(f.subject, f.status) for f in findings] == [
        ("11.22.33.44 on ips.test", "fail"),
        ("11.22.33.45 on ips.test", "ok"),
    ]


@pytest.mark.django_db
def test_it_puts_a_listed_domain_into_cooldown_and_blocks_it(
    zone: Zone, resolver: Resolver, ses_domain: Domain
) -> None:
    clock.set_now(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    publish_good(zone)
    zone.add(f"{DOMAIN}.dbl.test", "A", "127.0.1.2")
    check = check_and_store(ses_domain, resolver)
    assert check.outcome == "critical" and check.blocks_sending
    ses_domain.refresh_from_db()
    assert ses_domain.state == Domain.State.COOLDOWN
    assert ses_domain.cooldown_until == datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
    change = StateChange.objects.get(domain=ses_domain)
    assert change.actor == "rule:blocklist" and "dbl.test" in change.reason
    assert sending_blocked(ses_domain)


@pytest.mark.django_db
def test_it_stores_results_and_blocks_only_on_critical_failures(
    zone: Zone, resolver: Resolver, ses_domain: Domain, settings: object
) -> None:
    publish_good(zone)
    first = check_and_store(ses_domain, resolver)
    assert first.outcome == "ok" and not first.blocks_sending
    assert not sending_blocked(ses_domain) and blocked_domain_ids() == set()

    zone.remove(f"_dmarc.{DOMAIN}", "TXT")
    second = check_and_store(ses_domain, resolver)
    assert second.outcome == "critical" and second.blocks_sending
    assert sending_blocked(ses_domain.pk) and blocked_domain_ids() == {ses_domain.pk}
    assert [f["check"] for f in second.findings if f["status"] == "fail"] == ["dmarc"]

    settings.OUTREACH_DNS_CRITICAL_BLOCKS_SENDING = False  # type: ignore[attr-defined]
    assert not sending_blocked(ses_domain) and blocked_domain_ids() == set()


@pytest.mark.django_db
def test_it_keeps_the_verdict_when_a_failing_rule_could_not_be_checked(
    zone: Zone, resolver: Resolver, ses_domain: Domain
) -> None:
    publish_good(zone)
    zone.remove(f"_dmarc.{DOMAIN}", "TXT")
    assert check_and_store(ses_domain, resolver).blocks_sending
    zone.silent.add(f"_dmarc.{DOMAIN}")
    again = check_and_store(ses_domain, resolver)
    assert again.outcome == "unknown" and again.blocks_sending
    # A resolver outage of a rule that was fine does not block.
    zone.silent.clear()
    publish_good(zone)
    assert not check_and_store(ses_domain, resolver).blocks_sending
    zone.silent.add(DOMAIN)
    outage = check_and_store(ses_domain, resolver)
    assert outage.outcome == "unknown" and not outage.blocks_sending


@pytest.mark.django_db
def test_it_alerts_once_when_a_check_starts_failing(
    zone: Zone, resolver: Resolver, ses_domain: Domain, settings: object
) -> None:
    settings.OUTREACH_ALERT_QUIET_MINUTES = 0  # type: ignore[attr-defined]
    publish_good(zone)
    check_and_store(ses_domain, resolver)
    assert not Alert.objects.exists()
    zone.remove(f"_dmarc.{DOMAIN}", "TXT")
    check_and_store(ses_domain, resolver)
    check_and_store(ses_domain, resolver)  # still failing: nothing new to say
    (alert,) = Alert.objects.all()
    assert (alert.kind, alert.severity) == ("dns_check", "critical")
    assert f"no DMARC record at _dmarc.{DOMAIN}" in alert.text and "Fix: add TXT" in alert.text
    # Fixed, then broken again: a new alert.
    publish_good(zone)
    check_and_store(ses_domain, resolver)
    zone.remove(f"_dmarc.{DOMAIN}", "TXT")
    check_and_store(ses_domain, resolver)
    assert [a.text.count("\n- ") for a in Alert.objects.order_by("id")] == [1, 1]


@pytest.mark.django_db
def test_it_checks_each_sending_domain_periodically_skipping_the_sandbox(
    zone: Zone, dns_server: DnsServer, ses_domain: Domain, settings: object
) -> None:
    settings.OUTREACH_DNS_NAMESERVERS = [f"127.0.0.1:{dns_server.port}"]  # type: ignore[attr-defined]
    settings.OUTREACH_DNS_CHECK_INTERVAL_MINUTES = 60  # type: ignore[attr-defined]
    Domain.objects.create(name="local.example.com", provider=make_provider())
    publish_good(zone)
    assert due_domain() == ses_domain
    assert check_one()
    assert due_domain() is None and not check_one()
    assert ses_domain.dns_checks.get().outcome == "ok"
    clock.set_now(clock.now() + timedelta(minutes=61))
    assert due_domain() == ses_domain
    settings.OUTREACH_DNS_CHECK_INTERVAL_MINUTES = 0  # type: ignore[attr-defined]
    assert due_domain() is None


@pytest.mark.django_db(transaction=True)
def test_it_runs_as_an_engine_loop_one_domain_per_pass(
    zone: Zone, dns_server: DnsServer, ses_domain: Domain, settings: object
) -> None:
    settings.OUTREACH_DNS_NAMESERVERS = [f"127.0.0.1:{dns_server.port}"]  # type: ignore[attr-defined]
    settings.OUTREACH_DNS_CHECK_INTERVAL_MINUTES = 60  # type: ignore[attr-defined]
    publish_good(zone)
    stop = threading.Event()
    loop = make_loop(stop)
    runner = threading.Thread(target=run_loop, args=(loop,))
    runner.start()
    try:
        for _ in range(100):
            if ses_domain.dns_checks.exists():
                break
            time.sleep(0.05)
    finally:
        stop.set()
        runner.join(10)
    assert not runner.is_alive()
    assert ses_domain.dns_checks.get().outcome == "ok"
