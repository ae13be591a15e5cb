"""Authentication checks against a real DNS server on 127.0.0.1 serving good and broken zones."""

from __future__ import annotations

from outreach.pool.dns.checks import DomainSpec, check_domain
from outreach.pool.dns.findings import Finding, outcome
from outreach.pool.dns.resolver import Resolver
from outreach.pool.dns.tests.conftest import DOMAIN, TOKENS, publish_good
from outreach.pool.dns.tests.dnsserver import Zone

SPEC = DomainSpec(
    name=DOMAIN,
    spf_includes=["amazonses.com"],
    ses_dkim_tokens=TOKENS,
    mail_from=f"bounce.{DOMAIN}",
    mail_from_include="amazonses.com",
    mail_from_mx="feedback-smtp.eu-west-1.amazonses.com",
    tracking_host="go.outreach.example.net",
)


def failing(findings: list[Finding], check: str) -> list[Finding]:
    return [f for f in findings if f.check == check and f.status == "fail"]


def test_it_passes_a_correctly_set_up_domain(zone: Zone, resolver: Resolver) -> None:
    publish_good(zone)
    findings = check_domain(SPEC, resolver)
    assert outcome(findings) == "ok", [f.message for f in findings if f.status != "ok"]
    assert {f.check for f in findings} == {
        "mx",
        "spf",
        "dkim",
        "dmarc",
        "mail_from",
        "tracking_host",
    }


def test_it_reports_every_missing_record_as_critical_with_a_fix(
    zone: Zone, resolver: Resolver
) -> None:
    zone.add("unrelated.example.com", "A", "203.0.113.1")
    findings = check_domain(SPEC, resolver)
    assert outcome(findings) == "critical"
    for check in ("mx", "spf", "dkim", "dmarc", "tracking_host"):
        assert failing(findings, check), check
        assert all(f.severity == "critical" for f in failing(findings, check))
    spf = failing(findings, "spf")[0]
    assert spf.fix == f'add TXT "v=spf1 include:amazonses.com ~all" at {DOMAIN}'
    dmarc = failing(findings, "dmarc")[0]
    assert dmarc.fix.startswith("add TXT") and f"_dmarc.{DOMAIN}" in dmarc.fix
    assert len(failing(findings, "dkim")) == 3


def test_it_flags_dmarc_missing_alone(zone: Zone, resolver: Resolver) -> None:
    publish_good(zone)
    zone.remove(f"_dmarc.{DOMAIN}", "TXT")
    findings = check_domain(SPEC, resolver)
    assert outcome(findings) == "critical"
    assert [f.check for f in findings if f.status != "ok"] == ["dmarc"]
    assert "no DMARC record" in failing(findings, "dmarc")[0].message


def test_it_reads_the_dmarc_policy_and_wants_a_reporting_address(
    zone: Zone, resolver: Resolver
) -> None:
    publish_good(zone)
    zone.remove(f"_dmarc.{DOMAIN}", "TXT")
    zone.add(f"_dmarc.{DOMAIN}", "TXT", "v=DMARC1; p=quarantine; adkim=s")
    findings = check_domain(SPEC, resolver)
    assert outcome(findings) == "warning"
    assert any("p=quarantine, adkim=s, aspf=r" in f.message for f in findings)
    assert failing(findings, "dmarc")[0].subject == "rua"


def test_it_rejects_a_dmarc_record_without_a_valid_policy(zone: Zone, resolver: Resolver) -> None:
    publish_good(zone)
    zone.remove(f"_dmarc.{DOMAIN}", "TXT")
    zone.add(f"_dmarc.{DOMAIN}", "TXT", "v=DMARC1; rua=mailto:d@example.com")
    assert failing(check_domain(SPEC, resolver), "dmarc")[0].critical


def test_it_flags_two_spf_records(zone: Zone, resolver: Resolver) -> None:
    publish_good(zone)
    zone.add(DOMAIN, "TXT", "v=spf1 include:_spf.google.com ~all")
    findings = failing(check_domain(SPEC, resolver), "spf")
    assert len(findings) == 1 and findings[0].critical
    assert "2 SPF records" in findings[0].message


def test_it_counts_spf_lookups_through_nested_includes(zone: Zone, resolver: Resolver) -> None:
    publish_good(zone)
    zone.remove(DOMAIN, "TXT")
    # 1 (amazonses) + 1 (mx) + 1 (a) + nested: one include that itself has 8 lookups = 12.
    zone.add(DOMAIN, "TXT", "v=spf1 include:amazonses.com mx a include:big.example.org ~all")
    nested = " ".join(f"include:n{i}.example.org" for i in range(8))
    zone.add("big.example.org", "TXT", f"v=spf1 {nested} -all")
    for i in range(8):
        zone.add(f"n{i}.example.org", "TXT", "v=spf1 ip4:198.51.100.0/24 -all")
    findings = failing(check_domain(SPEC, resolver), "spf")
    assert [f.subject for f in findings] == ["lookups"]
    assert findings[0].critical and findings[0].figures == {"lookups": 12}


def test_it_accepts_exactly_ten_spf_lookups(zone: Zone, resolver: Resolver) -> None:
    publish_good(zone)
    zone.remove(DOMAIN, "TXT")
    extra = " ".join(f"include:n{i}.example.org" for i in range(9))
    zone.add(DOMAIN, "TXT", f"v=spf1 include:amazonses.com {extra} ~all")
    for i in range(9):
        zone.add(f"n{i}.example.org", "TXT", "v=spf1 ip4:198.51.100.0/24 -all")
    assert not failing(check_domain(SPEC, resolver), "spf")


def test_it_wants_the_providers_include_in_spf(zone: Zone, resolver: Resolver) -> None:
    publish_good(zone)
    zone.remove(DOMAIN, "TXT")
    zone.add(DOMAIN, "TXT", "v=spf1 include:_spf.google.com ~all")
    zone.add("_spf.google.com", "TXT", "v=spf1 ip4:35.190.247.0/24 ~all")
    findings = failing(check_domain(SPEC, resolver), "spf")
    assert [f.subject for f in findings] == ["includes"]
    assert "amazonses.com" in findings[0].fix and "_spf.google.com" in findings[0].fix


def test_it_flags_an_spf_record_that_lets_anyone_send(zone: Zone, resolver: Resolver) -> None:
    publish_good(zone)
    zone.remove(DOMAIN, "TXT")
    zone.add(DOMAIN, "TXT", "v=spf1 include:amazonses.com +all")
    assert failing(check_domain(SPEC, resolver), "spf")[0].subject == "all"


def test_it_flags_a_dkim_cname_pointing_nowhere(zone: Zone, resolver: Resolver) -> None:
    publish_good(zone)
    zone.remove(f"{TOKENS[1]}.dkim.amazonses.com", "TXT")
    findings = failing(check_domain(SPEC, resolver), "dkim")
    assert len(findings) == 1 and findings[0].critical
    assert findings[0].subject == TOKENS[1]
    assert "resolves to no key" in findings[0].message


def test_it_flags_a_dkim_cname_pointing_elsewhere(zone: Zone, resolver: Resolver) -> None:
    publish_good(zone)
    zone.remove(f"{TOKENS[0]}._domainkey.{DOMAIN}", "CNAME")
    zone.add(f"{TOKENS[0]}._domainkey.{DOMAIN}", "CNAME", "old.dkim.amazonses.com")
    zone.add("old.dkim.amazonses.com", "TXT", "v=DKIM1; p=MIIBold")
    findings = failing(check_domain(SPEC, resolver), "dkim")
    assert len(findings) == 1 and "old.dkim.amazonses.com" in findings[0].message


def test_it_checks_a_mailbox_providers_dkim_selector(zone: Zone, resolver: Resolver) -> None:
    publish_good(zone)
    spec = DomainSpec(name=DOMAIN, dkim_selectors=["google", "s2"])
    zone.add(f"google._domainkey.{DOMAIN}", "TXT", "v=DKIM1; k=rsa; p=MIIBIjANBg")
    zone.add(f"s2._domainkey.{DOMAIN}", "TXT", "v=DKIM1; k=rsa; p=")
    findings = [f for f in check_domain(spec, resolver) if f.check == "dkim"]
    assert [(f.subject, f.status) for f in findings] == [("google", "ok"), ("s2", "fail")]
    assert "revoked" in findings[1].message


def test_it_checks_the_custom_mail_from_host(zone: Zone, resolver: Resolver) -> None:
    publish_good(zone)
    zone.remove(f"bounce.{DOMAIN}", "MX")
    findings = failing(check_domain(SPEC, resolver), "mail_from")
    assert [f.subject for f in findings] == ["mx"]
    assert findings[0].fix == (
        f"add MX 10 feedback-smtp.eu-west-1.amazonses.com at bounce.{DOMAIN}"
    )


def test_it_gives_could_not_check_on_timeouts_never_all_good(
    zone: Zone, resolver: Resolver
) -> None:
    publish_good(zone)
    zone.silent.add(f"_dmarc.{DOMAIN}")
    findings = check_domain(SPEC, resolver)
    assert outcome(findings) == "unknown"
    dmarc = [f for f in findings if f.check == "dmarc"]
    assert [f.status for f in dmarc] == ["unknown"]
    assert "timed out" in dmarc[0].message


def test_it_gives_could_not_check_on_servfail(zone: Zone, resolver: Resolver) -> None:
    publish_good(zone)
    zone.servfail.update({DOMAIN, f"{TOKENS[0]}.dkim.amazonses.com"})
    findings = check_domain(SPEC, resolver)
    assert outcome(findings) == "unknown"
    statuses = {f.check: f.status for f in findings if f.status != "ok"}
    assert statuses == {"mx": "unknown", "spf": "unknown", "dkim": "unknown"}
    assert all("SERVFAIL" in f.message for f in findings if f.status == "unknown")


def test_it_gives_could_not_check_when_a_nested_spf_include_times_out(
    zone: Zone, resolver: Resolver
) -> None:
    publish_good(zone)
    zone.silent.add("amazonses.com")
    spf = [f for f in check_domain(SPEC, resolver) if f.check == "spf"]
    assert [f.status for f in spf] == ["unknown"]


def test_it_gives_could_not_check_when_no_server_answers() -> None:
    # Nothing listens on this port: every lookup times out.
    resolver = Resolver([("127.0.0.1", 9)], timeout=0.3)
    findings = check_domain(DomainSpec(name=DOMAIN, dkim_selectors=["s1"]), resolver)
    assert outcome(findings) == "unknown"
    assert {f.status for f in findings} == {"unknown"}


def test_it_warns_about_a_tracking_host_on_an_ip_or_localhost(resolver: Resolver) -> None:
    for host in ("127.0.0.1", "localhost"):
        spec = DomainSpec(name=DOMAIN, tracking_host=host)
        findings = [f for f in check_domain(spec, resolver) if f.check == "tracking_host"]
        assert findings[0].status == "fail" and findings[0].severity == "warning"


def test_it_wants_the_domains_tracking_host_as_a_cname_to_the_server(
    zone: Zone, resolver: Resolver
) -> None:
    spec = DomainSpec(name=DOMAIN, link_host=f"t.{DOMAIN}", link_target="go.outreach.example.net")
    publish_good(zone)

    def link(findings: list[Finding]) -> Finding:
        (finding,) = [f for f in findings if f.check == "link_host"]
        return finding

    missing = link(check_domain(spec, resolver))
    assert (missing.status, missing.severity) == ("fail", "critical")
    assert missing.fix == f"add CNAME t.{DOMAIN} → go.outreach.example.net"
    zone.add(f"t.{DOMAIN}", "CNAME", "tracking.elsewhere.example.org.")
    assert "not to go.outreach.example.net" in link(check_domain(spec, resolver)).message
    zone.remove(f"t.{DOMAIN}", "CNAME")
    zone.add(f"t.{DOMAIN}", "CNAME", "go.outreach.example.net.")
    assert link(check_domain(spec, resolver)).status == "ok"
    # No tracking campaign, no tracking host: nothing to find.
    assert not [f for f in check_domain(SPEC, resolver) if f.check == "link_host"]
