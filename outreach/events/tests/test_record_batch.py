"""A batch of notifications stored at once leaves what storing them one at a time leaves:
the same events, suppressions, stopped enrollments, cancelled messages, rollups and pauses."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from outreach.campaigns.models import Enrollment, Message, Suppression
from outreach.events import normalize as n
from outreach.events import record as record_module
from outreach.events.models import Event
from outreach.events.record import record, record_batch
from outreach.lib import clock
from outreach.metrics.models import DailyRollup
from outreach.pool.models import Mailbox, StateChange
from outreach.testing import enroll, make_campaign, make_leads, make_pool

pytestmark = pytest.mark.django_db


def _sent_messages(count: int) -> list[Message]:
    """``count`` leads of one campaign (two steps), each sent its first message, with their
    second step already scheduled (what a stop must cancel)."""
    boxes = make_pool(domains=1, mailboxes_per_domain=2)
    campaign = make_campaign("launch", steps=2)
    leads = make_leads(count, domain="prospect.example.org")
    enrollments = enroll(campaign, leads)
    first, second = campaign.steps.get(position=1), campaign.steps.get(position=2)
    messages = []
    for k, (lead, enrollment) in enumerate(zip(leads, enrollments, strict=True)):
        box = boxes[k % 2]
        token = uuid.uuid4().hex
        message = Message.objects.create(
            enrollment=enrollment,
            campaign=campaign,
            step=first,
            variant=first.variants.first(),
            to_email=lead.email,
            to_domain="prospect.example.org",
            mailbox=box,
            provider_account=box.provider_account,
            state=Message.State.SENT,
            message_id_header=f"<{token}@{box.domain.name}>",
            provider_message_id=f"pm-{token}",
            sent_at=clock.now(),
        )
        Message.objects.create(
            enrollment=enrollment,
            campaign=campaign,
            step=second,
            variant=second.variants.first(),
            to_email=lead.email,
            to_domain="prospect.example.org",
            mailbox=box,
            provider_account=box.provider_account,
            state=Message.State.SCHEDULED,
            not_before=clock.now() + timedelta(days=3),
        )
        messages.append(message)
    return messages


def _incoming(message: Message | None, type: str, event_id: str, **fields: Any) -> n.Incoming:
    return n.Incoming(
        source=fields.pop("source", "ses"),
        type=type,
        recipient=fields.pop("recipient", message.to_email if message else "nobody@x.example"),
        occurred_at=clock.now(),
        provider_event_id=event_id,
        outreach_message_id=message.pk if message else None,
        raw={"id": event_id},
        **fields,
    )


def _mixed_batch(m: list[Message]) -> list[n.Incoming]:
    """Deliveries, a hard bounce, a complaint, three soft bounces to one address (the third
    suppresses it), a reply then a complaint from one lead (the reply names the stop), an
    unsubscribe, a repeat of an event of the batch and of one stored before it, an event
    for a message that does not exist, and one matched by the provider's id alone."""
    return [
        _incoming(m[0], "delivered", "e-deliver-0"),
        _incoming(m[1], "bounced", "e-bounce-1", bounce_type="hard", diagnostic="5.1.1"),
        _incoming(m[2], "complained", "e-complaint-2"),
        _incoming(m[0], "delivered", "e-deliver-0"),  # repeated inside the batch
        _incoming(m[3], "bounced", "e-soft-3a", bounce_type="soft"),
        _incoming(m[3], "bounced", "e-soft-3b", bounce_type="soft"),
        _incoming(None, "delivered", "e-unknown", provider_message_id="pm-nowhere"),
        _incoming(
            None,
            "replied",
            "e-reply-4",
            source="imap",
            referenced_message_ids=[m[4].message_id_header or ""],
        )
        | _with(recipient=m[4].to_email),
        _incoming(m[4], "complained", "e-complaint-4"),
        _incoming(m[3], "bounced", "e-soft-3c", bounce_type="soft"),
        _incoming(m[5], "unsubscribed", "e-unsub-5"),
        _incoming(m[6], "delivered", "e-stored-before"),  # stored before the batch
        _incoming(
            None, "delivered", "e-by-provider-id", provider_message_id=m[7].provider_message_id
        )
        | _with(recipient=m[7].to_email),
        _incoming(m[8], "delivered", "e-wrong-address", recipient="someone.else@x.example"),
    ]


class _with:
    """``incoming | _with(field=value)``: the same incoming with ``field`` replaced."""

    def __init__(self, **fields: Any) -> None:
        self.fields = fields

    def __ror__(self, incoming: n.Incoming) -> n.Incoming:
        for name, value in self.fields.items():
            setattr(incoming, name, value)
        return incoming


def _state() -> dict[str, Any]:
    """Everything recording events may change, without primary keys of new rows."""
    return {
        "events": sorted(
            Event.objects.values_list(
                "source",
                "provider_event_id",
                "type",
                "bounce_type",
                "recipient",
                "message_id",
                "mailbox_id",
                "campaign_id",
                "unmatched",
                "raw",
            ),
            key=repr,
        ),
        "suppressions": sorted(
            Suppression.objects.values_list("kind", "value", "source", "reason", "created_by")
        ),
        "enrollments": sorted(
            Enrollment.objects.values_list("pk", "state", "stop_reason", "next_due_at")
        ),
        "messages": sorted(Message.objects.values_list("pk", "state", "last_error")),
        "rollups": sorted(
            DailyRollup.objects.values_list(
                "day",
                "mailbox_id",
                "domain_id",
                "campaign_id",
                "step_id",
                "variant_id",
                "provider_id",
                "delivered",
                "bounced_hard",
                "bounced_soft",
                "complained",
                "unsubscribed",
                "replied",
            )
        ),
        "mailboxes": sorted(Mailbox.objects.values_list("pk", "state")),
        "changes": sorted(StateChange.objects.values_list("mailbox_id", "to_state", "actor")),
    }


@pytest.mark.parametrize("round_size", [1000, 3])
def test_a_batch_stores_and_acts_as_one_event_at_a_time(
    round_size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rounds of 3: repeats and soft bounces that span rounds of one batch; then message
    # lookups of one value per statement too.
    monkeypatch.setattr(record_module, "BATCH", round_size)
    if round_size < 10:
        monkeypatch.setattr(record_module, "_LOOKUP_CHUNK", 1)
    messages = _sent_messages(9)
    record(_incoming(messages[6], "delivered", "e-stored-before"))
    batch = _mixed_batch(messages)

    one_by_one = transaction.savepoint()
    singles = [record(incoming) for incoming in _mixed_batch(messages)]
    expected = _state()
    transaction.savepoint_rollback(one_by_one)
    assert _state() != expected  # the rollback undid them: the comparison below means something

    stored = record_batch(batch)

    assert _state() == expected
    assert [e is not None for e in stored] == [e is not None for e in singles]
    assert [e is None for e in stored] == [
        False, False, False, True, False, False, False, False, False, False, False, True,
        False, False,
    ]  # fmt: skip
    # What the rules decided, spelled out.
    state = expected
    assert {(v, s) for _, v, s, _, _ in state["suppressions"]} == {
        (messages[1].to_email, "hard_bounce"),
        (messages[2].to_email, "complaint"),
        (messages[3].to_email, "hard_bounce"),  # its third soft bounce
        (messages[4].to_email, "complaint"),
        (messages[5].to_email, "unsubscribe"),
    }
    reasons = {pk: reason for pk, _, reason, _ in state["enrollments"]}
    assert [reasons[m.enrollment_id] for m in messages] == [
        "", "bounce", "complaint", "bounce", "reply", "unsubscribe", "", "", "",
    ]  # fmt: skip
    unknown = Event.objects.get(provider_event_id="e-unknown")
    assert unknown.unmatched and unknown.message_id is None
    assert Event.objects.get(provider_event_id="e-by-provider-id").message_id == messages[7].pk
    assert Event.objects.get(provider_event_id="e-wrong-address").unmatched


def test_a_batch_costs_the_same_statements_whatever_its_size() -> None:
    messages = _sent_messages(40)

    def statements(batch: list[n.Incoming]) -> int:
        with CaptureQueriesContext(connection) as queries:
            record_batch(batch)
        return len(queries)

    small = statements([_incoming(m, "delivered", f"d-{m.pk}") for m in messages[:4]])
    large = statements([_incoming(m, "delivered", f"d-{m.pk}") for m in messages[4:]])
    assert large == small
    bounces = statements(
        [_incoming(m, "bounced", f"b-{m.pk}", bounce_type="hard") for m in messages[:4]]
    )
    more_bounces = statements(
        [_incoming(m, "bounced", f"b-{m.pk}", bounce_type="hard") for m in messages[4:]]
    )
    # Beyond the fixed statements, the health rules judge each mailbox touched (two here).
    assert more_bounces == bounces
