"""Recipient providers: MX records classed once per domain, and the router's preference for
a sender of the recipient's own provider and its hourly cap per provider, as properties."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outreach.pool.dns.resolver import Resolver
from outreach.pool.dns.tests.dnsserver import DnsServer, Zone
from outreach.pool.policy import Thresholds
from outreach.scheduler.models import RecipientDomain
from outreach.scheduler.recipients import TTL, classify_mx, providers_of
from outreach.scheduler.routing import MailboxView, PoolRouter

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
PROVIDERS = ["google", "microsoft", ""]
RECIPIENTS = ["google", "microsoft", "yahoo", "gateway", "other", ""]


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        (["1 aspmx.l.google.com.", "5 alt1.aspmx.l.google.com."], "google"),
        (["1 smtp.google.com."], "google"),
        (["0 acme-com.mail.protection.outlook.com."], "microsoft"),
        (["1 mta5.am0.yahoodns.net."], "yahoo"),
        (["10 mxa-00123.gslb.pphosted.com.", "20 acme.mail.protection.outlook.com."], "gateway"),
        (["10 eu-smtp-inbound-1.mimecast.com."], "gateway"),
        (["10 mx.acme-mail.com."], "other"),
        (["20 aspmx.l.google.com.", "10 mx1.acme.iphmx.com."], "gateway"),  # lowest wins
        ([], ""),
    ],
)
def test_it_classes_a_domain_by_its_preferred_mx(records: list[str], expected: str) -> None:
    assert classify_mx(records)[0] == expected


@pytest.fixture
def dns(settings: object) -> Iterator[tuple[Zone, Resolver]]:
    zone = Zone()
    with DnsServer(zone) as server:
        # What the claim pass's lookups ask, too.
        settings.OUTREACH_DNS_NAMESERVERS = [f"127.0.0.1:{server.port}"]  # type: ignore[attr-defined]
        yield zone, Resolver([("127.0.0.1", server.port)], timeout=0.5)


@pytest.mark.django_db
def test_it_looks_each_domain_up_once_and_again_after_its_ttl(
    dns: tuple[Zone, Resolver],
) -> None:
    zone, resolver = dns
    zone.add("acme.example", "MX", "1 aspmx.l.google.com.")
    zone.add("globex.example", "MX", "0 globex-example.mail.protection.outlook.com.")

    first = providers_of(["acme.example", "globex.example"], now=NOW, resolver=resolver)
    zone.remove("acme.example", "MX")
    zone.add("acme.example", "MX", "0 acme-example.mail.protection.outlook.com.")
    cached = providers_of(["acme.example"], now=NOW + TTL / 2, resolver=resolver)
    later = providers_of(["acme.example"], now=NOW + TTL * 2, resolver=resolver)

    assert first == {"acme.example": "google", "globex.example": "microsoft"}
    assert cached == {"acme.example": "google"}  # no new lookup inside the TTL
    assert later == {"acme.example": "microsoft"}
    assert RecipientDomain.objects.count() == 2


@pytest.mark.django_db
def test_it_retries_a_failed_lookup_later_and_knows_nothing_meanwhile(
    dns: tuple[Zone, Resolver],
) -> None:
    zone, resolver = dns
    zone.servfail.add("initech.example")

    assert providers_of(["initech.example"], now=NOW, resolver=resolver) == {"initech.example": ""}
    zone.servfail.clear()
    zone.add("initech.example", "MX", "1 aspmx.l.google.com.")
    soon = providers_of(["initech.example"], now=NOW + timedelta(minutes=5), resolver=resolver)
    later = providers_of(["initech.example"], now=NOW + timedelta(hours=2), resolver=resolver)

    assert soon == {"initech.example": ""}
    assert later == {"initech.example": "google"}


# --- the router, as properties ----------------------------------------------------------------

mailbox_views = st.lists(
    st.builds(
        lambda provider, remaining, paced, domain: (provider, remaining, paced, domain),
        st.sampled_from(PROVIDERS),
        st.integers(0, 5),
        st.booleans(),
        st.integers(1, 4),
    ),
    min_size=1,
    max_size=12,
)


def _router(specs: list[tuple[str, int, bool, int]]) -> PoolRouter:
    views = [
        MailboxView(
            id=i + 1,
            domain_id=domain,
            state="active",
            remaining=remaining,
            domain_remaining=100,
            next_send_at=NOW + timedelta(minutes=1) if paced else None,
            provider=provider,
        )
        for i, (provider, remaining, paced, domain) in enumerate(specs)
    ]
    return PoolRouter(views, NOW, Thresholds())


@settings(max_examples=150, deadline=None)
@given(mailbox_views, st.sampled_from(RECIPIENTS), st.booleans(), st.data())
def test_it_prefers_a_sender_of_the_recipients_provider_whenever_one_can_send(
    specs: list[tuple[str, int, bool, int]], recipient: str, prefer: bool, data: st.DataObject
) -> None:
    router = _router(specs)
    ids = sorted(router.mailboxes)
    allowed = data.draw(st.none() | st.frozensets(st.sampled_from(ids), min_size=1))
    plain = _router(specs).choose(allowed)

    choice = router.choose_for(allowed, recipient, prefer_same_provider=prefer)

    # Never a mailbox the campaign does not allow, never one that cannot send; nothing is
    # left unsent for the preference's sake.
    assert (choice is None) == (plain is None)
    if choice is None:
        return
    assert allowed is None or choice.id in allowed
    assert choice.remaining > 0 and choice.next_send_at is None
    same = [
        m
        for m in router.mailboxes.values()
        if m.provider == recipient and m.provider and (allowed is None or m.id in allowed)
        if m.remaining > 0 and m.next_send_at is None
    ]
    if prefer and same:
        assert choice.provider == recipient
    if not prefer:
        assert choice.id == plain.id  # type: ignore[union-attr]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from(RECIPIENTS), min_size=1, max_size=60),
    st.integers(0, 10),
    st.booleans(),
)
def test_it_never_routes_more_into_one_provider_than_its_hourly_cap(
    recipients: list[str], cap: int, prefer: bool
) -> None:
    router = _router([("google", 100, False, 1), ("microsoft", 100, False, 2)])
    router.recipient_provider_left = dict.fromkeys(RECIPIENTS, cap)
    routed: dict[str, int] = {}

    for recipient in recipients:
        choice = router.choose_for(None, recipient, prefer_same_provider=prefer)
        if choice is None:
            continue
        router.used(choice.id, None)
        router.recipient_provider_used(recipient)
        routed[recipient] = routed.get(recipient, 0) + 1

    assert all(count <= cap for count in routed.values())
    for recipient in set(recipients):
        assert routed.get(recipient, 0) == min(cap, recipients.count(recipient))


# --- the claim pass ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_claim_pass_sends_gmail_from_workspace_and_outlook_from_microsoft_365(
    dns: tuple[Zone, Resolver],
) -> None:
    import random

    from outreach.campaigns.models import Message
    from outreach.pool.models import Mailbox, PoolSettings, ProviderAccount
    from outreach.scheduler.routing_pass import claim_due
    from outreach.scheduler.tests.conftest import NOON, schedule
    from outreach.testing import make_campaign, make_pool

    zone, _ = dns
    for i in range(4):
        hosted = "1 aspmx.l.google.com." if i % 2 == 0 else "0 x.mail.protection.outlook.com."
        zone.add(f"company{i}.example.net", "MX", hosted)
    workspace = ProviderAccount.objects.create(name="workspace", kind="google")
    m365 = ProviderAccount.objects.create(name="m365", kind="microsoft")
    boxes = make_pool(2, 2, provider=workspace)
    Mailbox.objects.filter(domain__name="send2.example.com").update(provider=m365)
    pool = PoolSettings.load()
    pool.limits_json = {
        "pacing_gap_seconds": 0,
        "pacing_jitter_seconds": 0,
        "prefer_same_provider": True,
        "recipient_provider_hourly_cap": 30,
    }
    pool.save()
    campaign = make_campaign()
    schedule(campaign, 80, domains=4)

    report = claim_due(NOON, rng=random.Random(1))

    kind_of = {
        b.pk: ("microsoft" if b.domain.name == "send2.example.com" else "google") for b in boxes
    }
    claimed = Message.objects.filter(state=Message.State.CLAIMED)
    assert report.claimed == claimed.count() == 60  # 30 an hour into each provider
    for message in claimed:
        index = int(message.to_domain.removeprefix("company").split(".")[0])
        assert kind_of[message.mailbox_id or 0] == ("google" if index % 2 == 0 else "microsoft")
