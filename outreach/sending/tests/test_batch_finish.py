"""A batch of provider calls is recorded together: same outcomes as one by one, less work."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from outreach.campaigns.models import Enrollment, Message
from outreach.events.models import Event
from outreach.lib import clock
from outreach.metrics import rollups
from outreach.pool.models import Mailbox
from outreach.providers.smtp.testserver import SmtpTestServer
from outreach.sending.deliver import ProviderCache, call_provider, load_taken
from outreach.sending.engine import send_due
from outreach.sending.finish import finish_batch
from outreach.sending.models import SendAttempt
from outreach.sending.take import take_batch
from outreach.sending.tests.helpers import claimed_campaign_messages, smtp_account

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _pinned_clock(settings: object) -> None:
    settings.OUTREACH_BASE_URL = "https://outreach.example.com"  # type: ignore[attr-defined]
    clock.set_now(T0)


def _statements_to_finish(count: int, smtp_server: SmtpTestServer, ca_file: Path) -> int:
    """Statements spent recording ``count`` accepted provider calls (the calls made first)."""
    Message.objects.all().delete()
    account = smtp_account(f"relay{count}", smtp_server.port, ca_file)
    messages = claimed_campaign_messages(count, provider=account, lead_domain=f"p{count}.example")
    taken = take_batch("batch-test", clock.now(), limit=count)
    assert len(taken) == len(messages)
    providers = ProviderCache()
    try:
        called = [call_provider(m, t, providers=providers) for m, t in load_taken(taken)]
    finally:
        providers.close()
    with CaptureQueriesContext(connection) as queries:
        assert set(finish_batch(called)) == {Message.State.SENT}
    return len(queries.captured_queries)


def test_it_records_a_batch_with_as_many_statements_as_a_single_send(
    smtp_server: SmtpTestServer, ca_file: Path
) -> None:
    one = _statements_to_finish(1, smtp_server, ca_file)
    many = _statements_to_finish(12, smtp_server, ca_file)

    assert many == one
    assert SendAttempt.objects.filter(outcome=SendAttempt.Outcome.SENT).count() == 12


def test_it_gives_each_message_of_a_mixed_batch_its_own_outcome(
    smtp_server: SmtpTestServer, ca_file: Path
) -> None:
    account = smtp_account("relay", smtp_server.port, ca_file)
    messages = claimed_campaign_messages(4, provider=account, mailboxes_per_domain=2)
    smtp_server.handler.rcpt_faults[messages[1].to_email] = "550 5.1.1 user unknown"
    smtp_server.handler.rcpt_faults[messages[2].to_email] = "451 4.3.0 try later"

    assert send_due() == 4

    by_pk = {m.pk: m for m in Message.objects.filter(pk__in=[m.pk for m in messages])}
    assert [by_pk[m.pk].state for m in messages] == ["sent", "failed", "retry", "sent"]
    assert by_pk[messages[0].pk].sent_at == T0
    assert by_pk[messages[0].pk].provider_message_id != by_pk[messages[3].pk].provider_message_id
    assert [by_pk[m.pk].attempts for m in messages] == [1, 1, 1, 1]
    # Only the sent ones moved their enrollment on and threaded it on their own mailbox.
    for message in messages:
        enrollment = Enrollment.objects.get(pk=message.enrollment_id or 0)
        sent = by_pk[message.pk].state == Message.State.SENT
        assert enrollment.last_step == (1 if sent else 0)
        assert enrollment.thread_mailbox_id == (by_pk[message.pk].mailbox_id if sent else None)
        assert enrollment.thread_message_id == (by_pk[message.pk].message_id_header if sent else "")
    # The hard bounce became an event pointing at its own attempt.
    attempt = SendAttempt.objects.get(message=messages[1])
    event = Event.objects.get(message=messages[1])
    assert (event.type, event.provider_event_id) == ("bounced", f"attempt-{attempt.pk}")
    # One rollup row per mailbox: counts land on the mailbox that made each call.
    for mailbox in Mailbox.objects.all():
        mine = [m for m in messages if by_pk[m.pk].mailbox_id == mailbox.pk]
        figures = rollups.window_figures(days=1, mailbox_id=mailbox.pk)
        assert figures.sent == sum(by_pk[m.pk].state == "sent" for m in mine)
        assert figures.transient == sum(by_pk[m.pk].state == "retry" for m in mine)
        assert figures.failed == sum(by_pk[m.pk].state == "failed" for m in mine)


def test_it_leaves_a_message_alone_when_its_lease_was_taken_over(
    smtp_server: SmtpTestServer, ca_file: Path
) -> None:
    account = smtp_account("relay", smtp_server.port, ca_file)
    first, second = claimed_campaign_messages(2, provider=account)
    taken = take_batch("batch-test", clock.now(), limit=2)
    providers = ProviderCache()
    try:
        called = [call_provider(m, t, providers=providers) for m, t in load_taken(taken)]
    finally:
        providers.close()
    # Meanwhile the scheduler's recovery gave the first one back (an expired lease).
    Message.objects.filter(pk=first.pk).update(state=Message.State.SCHEDULED, claimed_by="")

    finish_batch(called)

    assert Message.objects.get(pk=first.pk).state == Message.State.SCHEDULED
    assert Message.objects.get(pk=second.pk).state == Message.State.SENT


def test_it_gives_a_new_message_a_message_id_and_keeps_a_retried_ones(
    smtp_server: SmtpTestServer, ca_file: Path
) -> None:
    account = smtp_account("relay", smtp_server.port, ca_file)
    retried, fresh = claimed_campaign_messages(2, provider=account)
    Message.objects.filter(pk=retried.pk).update(
        state=Message.State.RETRY,
        not_before=clock.now(),
        message_id_header="<kept@send1.example.com>",
    )

    taken = take_batch("batch-test", clock.now(), limit=2)

    assert len(taken) == 2
    headers = dict(Message.objects.values_list("pk", "message_id_header"))
    assert headers[retried.pk] == "<kept@send1.example.com>"
    assert (headers[fresh.pk] or "").endswith("@send1.example.com>")
    assert headers[fresh.pk] != headers[retried.pk]
