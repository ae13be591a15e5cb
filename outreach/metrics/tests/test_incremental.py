"""The rollups' incremental paths: webhook events found by the collector, batches of attempts."""

from __future__ import annotations

from datetime import timedelta

from django.core.management import call_command
from django.db import transaction

from outreach.alerts.tests.conftest import Pool, send
from outreach.events import normalize
from outreach.events.record import record
from outreach.lib import clock
from outreach.metrics import rollups
from outreach.metrics.models import DailyRollup
from outreach.metrics.tests.test_rollups import _snapshot
from outreach.sending.models import SendAttempt
from outreach.sending.signals import send_attempted


def _webhook(message_id: str, type: str, event_id: str, **extra: object) -> normalize.Incoming:
    # No recipient: an event naming another address than its message's is kept unmatched.
    return normalize.Incoming(
        source="ses",
        type=type,
        recipient="",
        occurred_at=clock.now(),
        provider_event_id=event_id,
        provider_message_id=message_id,
        raw={"eventType": type},
        **extra,  # type: ignore[arg-type]
    )


def test_it_counts_a_webhook_event_on_the_row_of_its_message(pool: Pool) -> None:
    (message,) = send(pool.mailboxes[3], campaign=pool.campaign)
    DailyRollup.objects.all().delete()

    with transaction.atomic():
        stored = record(_webhook(message.provider_message_id, "delivered", "ev-1"))
        repeat = record(_webhook(message.provider_message_id, "delivered", "ev-1"))

    assert stored is not None and stored.message_id == message.pk
    assert repeat is None  # acknowledged, stored once, counted once
    row = DailyRollup.objects.get()
    assert (row.mailbox_id, row.domain_id, row.campaign_id) == (
        message.mailbox_id,
        pool.mailboxes[3].domain_id,
        pool.campaign.pk,
    )
    assert (row.step_id, row.variant_id, row.provider_id) == (
        message.step_id,
        message.variant_id,
        message.provider_account_id,
    )
    assert (row.delivered, row.sent) == (1, 0)


def test_it_finds_messages_by_every_id_a_provider_echoes(pool: Pool) -> None:
    a, b, c = send(pool.mailboxes[0], 3, campaign=pool.campaign)

    with transaction.atomic():
        by_ours = record(_webhook("", "opened", "ev-ours", outreach_message_id=a.pk))
        by_header = record(_webhook((b.message_id_header or "").strip("<>"), "opened", "ev-header"))
        by_thread = record(
            _webhook("", "replied", "ev-thread", referenced_message_ids=[c.message_id_header])
        )
        unknown = record(_webhook("not-ours", "opened", "ev-unknown"))

    assert by_ours is not None and by_ours.message_id == a.pk
    assert by_header is not None and by_header.message_id == b.pk
    assert by_thread is not None and by_thread.message_id == c.pk
    assert unknown is not None and unknown.unmatched and unknown.message_id is None
    figures = rollups.window_figures(days=1, mailbox_id=pool.mailboxes[0].pk)
    assert (figures.opened, figures.replied) == (2, 1)


def test_it_counts_a_batch_of_attempts_like_the_same_attempts_one_by_one(pool: Pool) -> None:
    a, b = pool.mailboxes[0], pool.mailboxes[2]
    send(a, 2, campaign=pool.campaign)
    send(b, 1)
    clock.advance(timedelta(days=1))
    sent = send(a, 3, campaign=pool.campaign)
    attempts = list(SendAttempt.objects.filter(message__in=sent).order_by("pk"))
    failed = SendAttempt.objects.create(
        message=sent[0],
        mailbox=a,
        provider_account=a.provider_account,
        outcome=SendAttempt.Outcome.TRANSIENT,
        at=clock.now(),
    )
    one_by_one = _snapshot(clock.today())

    # The same calls again, as the engine now reports them: one signal for the batch.
    DailyRollup.objects.filter(day=clock.today()).delete()
    with transaction.atomic():
        send_attempted.send(sender=SendAttempt, attempts=[*attempts, failed])
    batch = _snapshot(clock.today())

    assert batch[0][6:9] == (3, 0, 1)  # sent, failed, transient
    call_command("rollups", "--rebuild", clock.today().isoformat())
    assert _snapshot(clock.today()) == batch
    yesterday = clock.today() - timedelta(days=1)
    assert rollups.window_figures(days=1, today=yesterday).sent == 3
    assert len(one_by_one) == 1 and one_by_one[0][6:8] == batch[0][6:8]
