"""Evidence arriving as a batch (a webhook delivery, the simulated provider's feed): each
mailbox it touches is judged once, on the whole batch, before the batch commits."""

from __future__ import annotations

import pytest

from outreach.alerts.tests.conftest import Pool, send
from outreach.events import normalize as n
from outreach.events.record import record_batch
from outreach.lib import clock
from outreach.pool.models import Mailbox, StateChange

pytestmark = pytest.mark.django_db


def _incoming(message: object, type: str, key: str, bounce_type: str = "") -> n.Incoming:
    return n.Incoming(
        source="ses",
        type=type,
        bounce_type=bounce_type,
        recipient=message.to_email,  # type: ignore[attr-defined]
        occurred_at=clock.now(),
        provider_event_id=f"{key}-{message.pk}",  # type: ignore[attr-defined]
        outreach_message_id=message.pk,  # type: ignore[attr-defined]
    )


def _state(mailbox: Mailbox) -> str:
    mailbox.refresh_from_db()
    return mailbox.state


def test_a_threshold_crossed_inside_a_batch_pauses_the_mailbox(pool: Pool) -> None:
    bouncing, complained, quiet = pool.mailboxes[:3]
    sent = send(bouncing, 200, campaign=pool.campaign)
    others = send(complained, 30, campaign=pool.campaign)
    calm = send(quiet, 30, campaign=pool.campaign)
    batch = [_incoming(m, "delivered", "d") for m in sent[8:100]]
    # Eight hard bounces of 200 (above 5% on the evidence), spread among the deliveries.
    for k, message in enumerate(sent[:8]):
        batch.insert(k * 11, _incoming(message, "bounced", "b", bounce_type="hard"))
    batch += [_incoming(m, "delivered", "d") for m in others[1:] + calm]
    # The complaint comes first: its mailbox is judged first, as one event at a time would.
    batch.insert(0, _incoming(others[0], "complained", "c"))

    record_batch(batch)

    assert _state(bouncing) == Mailbox.State.PAUSED
    assert _state(complained) == Mailbox.State.PAUSED
    assert _state(quiet) == Mailbox.State.ACTIVE
    bounce_change = StateChange.objects.get(mailbox=bouncing)
    assert bounce_change.actor == "rule:bounce_rate"
    assert bounce_change.figures["bounced_hard"] == 8
    assert bounce_change.figures["attempts"] == 200
    assert StateChange.objects.get(mailbox=complained).actor == "rule:complaint"
    pauses = StateChange.objects.filter(mailbox__isnull=False).order_by("id")
    assert [c.mailbox_id for c in pauses] == [complained.pk, bouncing.pk]
