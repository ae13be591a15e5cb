"""The simulated provider: accepts everything, feeds back outcomes at the configured rates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from outreach.campaigns.models import Message
from outreach.campaigns.suppression import is_suppressed
from outreach.events.models import Event
from outreach.lib import clock
from outreach.pool.models import Mailbox
from outreach.providers import base
from outreach.providers.base import Envelope
from outreach.providers.simulated import sender as simulated
from outreach.testing import make_pool, make_provider

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def envelope(recipient: str, message_id: int = 1) -> Envelope:
    return Envelope(sender="rep1@send1.example.com", recipient=recipient, message_id=message_id)


def test_it_accepts_a_message_and_reports_its_delivery_once_it_is_due() -> None:
    feed = simulated.Feed(simulated.Rates())
    feed.accept(envelope("ada@acme.example", 42), "sim-42", NOW)
    assert feed.pop_due(NOW) == []
    assert feed.next_at() == NOW + feed.rates.delivery_delay
    (event,) = feed.pop_due(NOW + timedelta(minutes=1))
    assert (event.type, event.recipient, event.outreach_message_id) == (
        "delivered",
        "ada@acme.example",
        42,
    )
    assert len(feed) == 0


def test_it_bounces_and_complains_at_the_given_rates_and_always_for_the_same_addresses() -> None:
    rates = simulated.Rates(bounce_rate=0.1, complaint_rate=0.05, seed=9)
    feed = simulated.Feed(rates)
    addresses = [f"lead{i}@company{i % 50}.example" for i in range(4000)]
    for i, address in enumerate(addresses):
        feed.accept(envelope(address, i), f"sim-{i}", NOW)
    events = feed.pop_due(NOW + timedelta(days=1))
    bounced = {e.recipient for e in events if e.type == "bounced"}
    complained = {e.recipient for e in events if e.type == "complained"}
    assert 0.08 < len(bounced) / len(addresses) < 0.12
    assert 0.035 < len(complained) / (len(addresses) - len(bounced)) < 0.065
    assert all(e.bounce_type == "hard" for e in events if e.type == "bounced")
    again = simulated.Feed(rates)
    for i, address in enumerate(addresses[:200]):
        again.accept(envelope(address, i), f"sim-{i}", NOW)
    repeat = {e.recipient for e in again.pop_due(NOW + timedelta(days=1)) if e.type == "bounced"}
    assert repeat == bounced & set(addresses[:200])


def test_it_never_bounces_nor_complains_for_the_seed_inboxes() -> None:
    seeds = frozenset({"seed@inbox-seeds.example.net"})
    feed = simulated.Feed(
        simulated.Rates(bounce_rate=1.0, complaint_rate=1.0, safe_addresses=seeds)
    )
    feed.accept(envelope("seed@inbox-seeds.example.net"), "sim-1", NOW)
    assert [e.type for e in feed.pop_due(NOW + timedelta(days=1))] == ["delivered"]


def test_it_refuses_rates_outside_zero_to_one() -> None:
    with pytest.raises(ValueError):
        simulated.Rates(bounce_rate=1.5)


def test_it_is_found_by_kind_without_hiding_the_built_in_providers() -> None:
    simulated.register()
    assert base.provider_class("simulated") is simulated.SimulatedProvider
    assert base.provider_class("sandbox").kind == "sandbox"
    result = simulated.SimulatedProvider({}, {}).send(b"raw", envelope("x@y.example", 5))
    assert result.provider_message_id == "sim-5"


@pytest.mark.django_db
def test_it_records_due_outcomes_through_the_events_code_with_their_effects() -> None:
    clock.set_now(NOW)
    (mailbox,) = make_pool(1, 1, provider=make_provider("sim", kind="simulated"))
    messages = [
        Message.objects.create(
            to_email=f"{who}@acme.example",
            to_domain="acme.example",
            state=Message.State.SENT,
            mailbox=mailbox,
            sent_at=NOW,
            provider_message_id=f"sim-{who}",
        )
        for who in ("bounces", "complains")
    ]
    feed = simulated.Feed(simulated.Rates())
    feed.rates = simulated.Rates(bounce_rate=1.0)
    feed.accept(envelope("bounces@acme.example", messages[0].pk), "sim-bounces", NOW)
    feed.rates = simulated.Rates(complaint_rate=1.0)
    feed.accept(envelope("complains@acme.example", messages[1].pk), "sim-complains", NOW)
    later = NOW + timedelta(days=1)
    clock.set_now(later)
    assert simulated.record_due(later, feed) == 3
    assert is_suppressed("bounces@acme.example")
    assert is_suppressed("complains@acme.example")
    bounce = Event.objects.get(type="bounced")
    assert (bounce.bounce_type, bounce.message_id, bounce.mailbox_id) == (
        "hard",
        messages[0].pk,
        mailbox.pk,
    )
    mailbox.refresh_from_db()
    assert mailbox.state == Mailbox.State.PAUSED
    assert simulated.record_due(later, feed) == 0
