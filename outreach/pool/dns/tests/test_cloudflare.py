"""`outreach dns plan|apply` through the official Cloudflare SDK against a fake of its API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from outreach.pool.dns.cloudflare import COMMENT, merge_spf, unquote_txt
from outreach.pool.dns.tests.cloudflare_fake import TOKEN, CloudflareFake
from outreach.pool.dns.tests.conftest import DOMAIN, TOKENS
from outreach.pool.models import Domain
from outreach.testing import make_campaign

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[CloudflareFake]:
    with CloudflareFake() as fake:
        monkeypatch.setenv("CLOUDFLARE_BASE_URL", fake.base_url)
        monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
        yield fake


def run(*args: str) -> dict:
    out = StringIO()
    call_command("dns", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def test_it_plans_the_missing_records_without_touching_anything(
    fake: CloudflareFake, ses_domain: Domain
) -> None:
    zone_id = fake.state.add_zone(DOMAIN)
    fake.state.add_record(zone_id, "MX", DOMAIN, "inbound.example.com", priority=10)
    fake.state.add_record(zone_id, "A", f"www.{DOMAIN}", "203.0.113.5")
    report = run("plan", DOMAIN)
    changes = report["domains"][0]["changes"]
    created = sorted((c["type"], c["name"]) for c in changes if c["action"] == "create")
    assert created == sorted(
        [
            ("TXT", DOMAIN),
            ("TXT", f"_dmarc.{DOMAIN}"),
            ("MX", f"bounce.{DOMAIN}"),
            ("TXT", f"bounce.{DOMAIN}"),
        ]
        + [("CNAME", f"{t}._domainkey.{DOMAIN}") for t in TOKENS]
    )
    assert fake.state.writes() == []


def test_it_applies_only_with_yes_and_is_idempotent(
    fake: CloudflareFake, ses_domain: Domain
) -> None:
    zone_id = fake.state.add_zone(DOMAIN)
    fake.state.add_record(zone_id, "MX", DOMAIN, "inbound.example.com", priority=10)
    dry = run("apply", DOMAIN)
    assert dry["applied"] is False and fake.state.writes() == []

    applied = run("apply", DOMAIN, "--yes")
    assert applied["domains"][0]["applied"] == 7
    records = fake.state.records[zone_id]
    ours = [r for r in records if r["comment"] == COMMENT]
    assert len(ours) == 7
    dkim = [r for r in ours if r["type"] == "CNAME"]
    assert {r["content"] for r in dkim} == {f"{t}.dkim.amazonses.com" for t in TOKENS}
    assert all(r["proxied"] is False for r in dkim)
    mx = next(r for r in ours if r["type"] == "MX")
    assert (mx["content"], mx["priority"]) == ("feedback-smtp.eu-west-1.amazonses.com", 10)
    spf = next(r for r in ours if r["type"] == "TXT" and r["name"] == DOMAIN)
    assert spf["content"] == "v=spf1 include:amazonses.com ~all"

    writes = len(fake.state.writes())
    again = run("apply", DOMAIN, "--yes")
    assert again["domains"][0]["changes"] == [] and len(fake.state.writes()) == writes


def test_it_fixes_named_records_and_leaves_every_other_record_alone(
    fake: CloudflareFake, ses_domain: Domain
) -> None:
    zone_id = fake.state.add_zone(DOMAIN)
    add = fake.state.add_record
    add(zone_id, "MX", DOMAIN, "inbound.example.com", priority=10)
    # Cloudflare shows TXT content quoted; the operator's SPF lacks SES.
    spf = add(zone_id, "TXT", DOMAIN, '"v=spf1 include:_spf.google.com -all"', comment="ops")
    verification = add(zone_id, "TXT", DOMAIN, '"google-site-verification=abc"')
    stale = add(zone_id, "CNAME", f"{TOKENS[0]}._domainkey.{DOMAIN}", "old.dkim.amazonses.com")
    dmarc = add(zone_id, "TXT", f"_dmarc.{DOMAIN}", "v=DMARC1; p=reject; rua=mailto:x@y.z")
    untouched = [dict(r) for r in (verification, dmarc)]

    report = run("apply", DOMAIN, "--yes")
    updates = [c for c in report["domains"][0]["changes"] if c["action"] == "update"]
    assert {c["record_id"] for c in updates} == {spf["id"], stale["id"]}

    assert spf["content"] == "v=spf1 include:_spf.google.com include:amazonses.com -all"
    assert spf["comment"] == "ops"  # PATCH: the operator's record keeps its comment
    assert stale["content"] == f"{TOKENS[0]}.dkim.amazonses.com"
    assert [verification, dmarc] == untouched
    methods = {m for m, _, _ in fake.state.writes()}
    assert methods == {"POST", "PATCH"}  # nothing deleted, nothing replaced wholesale
    patched = {p.rsplit("/", 1)[1] for m, p, _ in fake.state.writes() if m == "PATCH"}
    assert patched == {spf["id"], stale["id"]}


def test_it_leaves_two_spf_records_to_the_operator(
    fake: CloudflareFake, ses_domain: Domain
) -> None:
    zone_id = fake.state.add_zone(DOMAIN)
    fake.state.add_record(zone_id, "TXT", DOMAIN, "v=spf1 include:a.example ~all")
    fake.state.add_record(zone_id, "TXT", DOMAIN, "v=spf1 include:b.example ~all")
    out = StringIO()
    call_command("dns", "apply", DOMAIN, "--yes", stdout=out)
    assert "manual: send1.example.com has 2 SPF records" in out.getvalue()
    assert not [w for w in fake.state.writes() if w[2] and w[2].get("name") == DOMAIN]


def test_it_reports_a_missing_zone_and_a_refused_token(
    fake: CloudflareFake, ses_domain: Domain, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(CommandError, match="no such zone"):
        call_command("dns", "plan", DOMAIN, stdout=StringIO())
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "wrong")
    with pytest.raises(CommandError, match="Authentication error"):
        call_command("dns", "plan", DOMAIN, stdout=StringIO())
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN")
    with pytest.raises(CommandError, match="CLOUDFLARE_API_TOKEN"):
        call_command("dns", "plan", DOMAIN, stdout=StringIO())


def test_it_merges_spf_and_reads_quoted_txt() -> None:
    assert merge_spf("v=spf1 mx -all", ["amazonses.com"]) == "v=spf1 mx include:amazonses.com -all"
    assert merge_spf("v=spf1 mx", ["a.b"]) == "v=spf1 mx include:a.b ~all"
    assert unquote_txt('"v=spf1 " "include:x ~all"') == "v=spf1 include:x ~all"
    assert unquote_txt("plain") == "plain"


def test_it_plans_the_tracking_cname_while_a_campaign_tracks(
    fake: CloudflareFake, ses_domain: Domain, settings: object
) -> None:
    settings.OUTREACH_BASE_URL = "https://go.outreach.example.net"  # type: ignore[attr-defined]
    zone_id = fake.state.add_zone(DOMAIN)

    def tracking_changes() -> list[dict]:
        changes = run("plan", DOMAIN)["domains"][0]["changes"]
        return [c for c in changes if c["name"] == f"t.{DOMAIN}"]

    assert tracking_changes() == []
    make_campaign(track_clicks=True)
    (change,) = tracking_changes()
    assert (change["action"], change["type"], change["content"]) == (
        "create",
        "CNAME",
        "go.outreach.example.net",
    )
    run("apply", DOMAIN, "--yes")
    (record,) = [r for r in fake.state.records[zone_id] if r["name"] == f"t.{DOMAIN}"]
    assert (record["content"], record["proxied"]) == ("go.outreach.example.net", False)
    assert tracking_changes() == []
