"""`outreach dns check` against a real DNS server on 127.0.0.1, as an operator runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from outreach.pool.dns.tests.conftest import DOMAIN, publish_good
from outreach.pool.dns.tests.dnsserver import DnsServer, Zone
from outreach.pool.models import DnsCheck, Domain


def check(*args: str) -> tuple[dict, int]:
    out = StringIO()
    try:
        call_command("dns", "check", *args, "--json", stdout=out)
        code = 0
    except CommandError as exc:
        code = exc.returncode
    return json.loads(out.getvalue()), code


@pytest.mark.django_db
def test_it_checks_through_the_given_nameserver_and_stores_the_result(
    zone: Zone, dns_server: DnsServer, ses_domain: Domain
) -> None:
    publish_good(zone)
    report, code = check(DOMAIN, "--nameserver", "127.0.0.1", "--port", str(dns_server.port))
    assert code == 0
    (result,) = report["domains"]
    assert result["outcome"] == "ok" and not result["blocks_sending"]
    assert DnsCheck.objects.get(domain=ses_domain).outcome == "ok"


@pytest.mark.django_db
def test_it_exits_nonzero_on_critical_failures_and_on_could_not_check(
    zone: Zone, dns_server: DnsServer, ses_domain: Domain
) -> None:
    publish_good(zone)
    server = ["--nameserver", f"127.0.0.1:{dns_server.port}", "--timeout", "0.5"]
    zone.remove(f"_dmarc.{DOMAIN}", "TXT")
    report, code = check(DOMAIN, *server)
    assert code == 1 and report["domains"][0]["blocks_sending"]
    zone.servfail.add(f"_dmarc.{DOMAIN}")
    report, code = check(DOMAIN, *server)
    assert code == 2 and report["domains"][0]["outcome"] == "unknown"


@pytest.mark.django_db
def test_it_refuses_an_unknown_domain(ses_domain: Domain) -> None:
    with pytest.raises(CommandError, match="unknown domain"):
        call_command("dns", "check", "nope.example.com", stdout=StringIO())


@pytest.mark.django_db(transaction=True)
def test_it_runs_as_a_command_with_readable_fixes(
    zone: Zone, dns_server: DnsServer, ses_domain: Domain, settings: object
) -> None:
    publish_good(zone)
    zone.remove(DOMAIN, "TXT")
    db = settings.DATABASES["default"]  # type: ignore[attr-defined]
    env = {
        **os.environ,
        "OUTREACH_DNS_NAMESERVERS": f"127.0.0.1:{dns_server.port}",
        "OUTREACH_DNS_DOMAIN_BLOCKLISTS": "dbl.test",
        "OUTREACH_BASE_URL": "https://go.outreach.example.net",
    }
    if db["ENGINE"] == settings.SQLITE_ENGINE:  # type: ignore[attr-defined]
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    else:
        env["DATABASE_URL"] = f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env.pop("OUTREACH_TEST_DATABASE_NAME", None)
    proc = subprocess.run(
        [sys.executable, "-m", "outreach", "dns", "check", DOMAIN],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert f"{DOMAIN}: CRITICAL (blocks sending)" in proc.stdout
    assert f'fix: add TXT "v=spf1 include:amazonses.com ~all" at {DOMAIN}' in proc.stdout
    assert DnsCheck.objects.get(domain=ses_domain).outcome == "critical"
