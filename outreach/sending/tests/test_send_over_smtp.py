"""The engine end to end against a real SMTP server (aiosmtpd, STARTTLS + AUTH)."""

from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dkim
import pytest

from outreach.campaigns.models import Enrollment, Lead, Message
from outreach.campaigns.suppression import is_suppressed, suppress
from outreach.events.models import Event
from outreach.lib import clock
from outreach.pool.models import Mailbox, StateChange
from outreach.pool.states import transition_mailbox
from outreach.providers.smtp.testserver import DROP, HANG, SmtpTestServer
from outreach.sending.engine import Worker, send_due
from outreach.sending.models import SendAttempt
from outreach.sending.tests.helpers import claimed_campaign_messages, smtp_account, states
from outreach.testing import dkim_key_pair, make_pool

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _pinned_clock(settings: object) -> None:
    settings.OUTREACH_BASE_URL = "https://outreach.example.com"  # type: ignore[attr-defined]
    clock.set_now(T0)


def _later(hours: float = 2) -> None:
    clock.advance(timedelta(hours=hours))


def test_it_sends_a_claimed_message_with_every_header(
    smtp_server: SmtpTestServer, ca_file: Path
) -> None:
    account = smtp_account("relay", smtp_server.port, ca_file)
    (message,) = claimed_campaign_messages(1, provider=account)

    assert send_due() == 1

    message.refresh_from_db()
    assert message.state == Message.State.SENT
    assert message.sent_at == T0
    assert message.provider_message_id == "Q000001"
    (got,) = smtp_server.received
    assert got.login == "relay"
    assert got.mail_from == "rep1@send1.example.com"
    assert got.rcpt_tos == [message.to_email]
    mail = got.message
    assert mail["From"] == "Rep 1 <rep1@send1.example.com>"
    assert mail["To"] == message.to_email
    assert mail["Subject"] == "Quick question, Lead0"
    assert mail["Date"]
    assert mail["Message-ID"] == message.message_id_header
    assert mail["Message-ID"].endswith("@send1.example.com>")
    assert mail["X-Outreach-Message"] == str(message.pk)
    unsubscribe = mail["List-Unsubscribe"]
    assert unsubscribe.startswith("<https://outreach.example.com/u/")
    assert "<mailto:rep1@send1.example.com?subject=unsubscribe>" in unsubscribe
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail.get_content_type() == "multipart/alternative"
    text, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert text is not None and html is not None
    assert "Lead0" in text.get_content()
    assert "<p>Hi Lead0,</p>" in html.get_content()


def test_it_advances_the_enrollment_after_the_first_step(
    smtp_server: SmtpTestServer, ca_file: Path
) -> None:
    account = smtp_account("relay", smtp_server.port, ca_file)
    (message,) = claimed_campaign_messages(1, provider=account, steps=2)

    send_due()

    message.refresh_from_db()
    enrollment = Enrollment.objects.get(pk=message.enrollment_id or 0)
    assert enrollment.thread_mailbox_id == message.mailbox_id
    assert enrollment.thread_message_id == message.message_id_header
    assert enrollment.last_step == 1
    assert enrollment.next_due_at == T0 + timedelta(days=3)
    assert enrollment.state == Enrollment.State.ACTIVE
    attempt = SendAttempt.objects.get(message=message)
    assert (attempt.outcome, attempt.code) == ("sent", "250")


def test_it_finishes_the_enrollment_after_the_last_step(
    smtp_server: SmtpTestServer, ca_file: Path
) -> None:
    account = smtp_account("relay", smtp_server.port, ca_file)
    (message,) = claimed_campaign_messages(1, provider=account, steps=1)

    send_due()

    enrollment = Enrollment.objects.get(pk=message.enrollment_id or 0)
    assert (enrollment.state, enrollment.last_step, enrollment.next_due_at) == (
        Enrollment.State.FINISHED,
        1,
        None,
    )


def test_it_threads_a_follow_up(smtp_server: SmtpTestServer, ca_file: Path) -> None:
    account = smtp_account("relay", smtp_server.port, ca_file)
    (first,) = claimed_campaign_messages(1, provider=account, steps=2)
    send_due()
    first.refresh_from_db()
    enrollment = Enrollment.objects.get(pk=first.enrollment_id or 0)
    step2 = enrollment.campaign.steps.get(position=2)
    follow_up = Message.objects.create(
        enrollment=enrollment,
        step=step2,
        variant=step2.variants.get(),
        campaign=enrollment.campaign,
        to_email=first.to_email,
        to_domain=first.to_domain,
        pinned_mailbox=first.mailbox,
        mailbox=first.mailbox,
        provider_account=first.provider_account,
        state=Message.State.CLAIMED,
        lease_expires_at=T0 + timedelta(minutes=10),
        in_reply_to=first.message_id_header or "",
        references=first.message_id_header or "",
    )

    assert send_due() == 1

    mail = smtp_server.received[1].message
    assert mail["In-Reply-To"] == first.message_id_header
    assert mail["References"] == first.message_id_header
    assert mail["Subject"] == "Re: Quick question, Lead0"
    follow_up.refresh_from_db()
    assert follow_up.state == Message.State.SENT
    enrollment.refresh_from_db()
    assert enrollment.state == Enrollment.State.FINISHED


def test_it_signs_with_dkim_when_the_mailbox_has_a_key(
    smtp_server: SmtpTestServer, ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pem, record = dkim_key_pair()
    monkeypatch.setenv("OUTREACH_SECRET_TEST_DKIM_KEY", pem)
    account = smtp_account("relay", smtp_server.port, ca_file)
    (message,) = claimed_campaign_messages(1, provider=account)
    Mailbox.objects.filter(pk=message.mailbox_id or 0).update(
        settings={"dkim_selector": "s1"},
        secrets={"dkim_private_key": "env:OUTREACH_SECRET_TEST_DKIM_KEY"},
    )

    send_due()

    data = smtp_server.received[0].data

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return record if name == b"s1._domainkey.send1.example.com." else b""

    assert data.startswith(b"DKIM-Signature:")
    assert dkim.verify(data, dnsfunc=dns)
    assert not dkim.verify(data.replace(b"Quick question", b"Quick qu3stion"), dnsfunc=dns)


def test_it_keeps_lead_data_out_of_the_headers(smtp_server: SmtpTestServer, ca_file: Path) -> None:
    account = smtp_account("relay", smtp_server.port, ca_file)
    (message,) = claimed_campaign_messages(1, provider=account)
    Lead.objects.filter(email=message.to_email).update(
        first_name="Eve\r\nBcc: victim@example.net\r\nX-Injected: yes"
    )

    send_due()

    (got,) = smtp_server.received
    assert got.rcpt_tos == [message.to_email]
    mail = got.message
    assert mail["Bcc"] is None
    assert mail["X-Injected"] is None
    assert "\n" not in mail["Subject"]


def test_it_retries_421_and_451_then_sends(smtp_server: SmtpTestServer, ca_file: Path) -> None:
    account = smtp_account("relay", smtp_server.port, ca_file)
    (message,) = claimed_campaign_messages(1, provider=account)
    smtp_server.handler.data_faults.extend(
        ["421 4.7.0 Try again later, closing connection", "451 4.3.0 Local error in processing"]
    )

    send_due()
    message.refresh_from_db()
    assert message.state == Message.State.RETRY
    assert message.not_before > T0
    assert send_due() == 0  # not before its backoff

    _later()
    send_due()
    assert states([message]) == [Message.State.RETRY]

    _later()
    send_due()
    message.refresh_from_db()
    assert message.state == Message.State.SENT
    assert message.attempts == 3
    assert len(smtp_server.received) == 1
    outcomes = SendAttempt.objects.filter(message=message).order_by("id")
    assert [(a.outcome, a.code) for a in outcomes] == [
        ("transient", "421"),
        ("transient", "451"),
        ("sent", "250"),
    ]
    assert "Local error" in outcomes[1].response


def test_it_fails_after_a_bounded_number_of_attempts(
    smtp_server: SmtpTestServer, ca_file: Path
) -> None:
    account = smtp_account("relay", smtp_server.port, ca_file)
    (message,) = claimed_campaign_messages(1, provider=account)
    smtp_server.handler.data_faults.extend(["451 4.3.0 Try later"] * 20)

    for _ in range(10):
        send_due()
        _later(3)

    message.refresh_from_db()
    assert message.state == Message.State.FAILED
    assert message.attempts == 6
    assert smtp_server.received == []


def test_it_suppresses_a_hard_bounce_and_stops_the_enrollment(
    smtp_server: SmtpTestServer, ca_file: Path
) -> None:
    account = smtp_account("relay", smtp_server.port, ca_file)
    (message,) = claimed_campaign_messages(1, provider=account)
    smtp_server.handler.rcpt_faults[message.to_email] = (
        "550 5.1.1 <lead0@prospect.example.org>: Recipient address rejected: User unknown"
    )

    send_due()

    message.refresh_from_db()
    assert message.state == Message.State.FAILED
    assert is_suppressed(message.to_email)
    enrollment = Enrollment.objects.get(pk=message.enrollment_id or 0)
    assert (enrollment.state, enrollment.stop_reason) == ("stopped", "bounce")
    event = Event.objects.get(message=message)
    assert (event.type, event.bounce_type, event.source) == ("bounced", "hard", "smtp")
    assert SendAttempt.objects.get(message=message).outcome == "hard_bounce"


def test_it_records_a_policy_block_as_a_signal(smtp_server: SmtpTestServer, ca_file: Path) -> None:
    account = smtp_account("relay", smtp_server.port, ca_file)
    (message,) = claimed_campaign_messages(1, provider=account)
    smtp_server.handler.data_faults.append(
        "554 5.7.1 Service unavailable; Client host blocked using zen.spamhaus.org"
    )

    blocked_on = message.mailbox_id

    send_due()

    message.refresh_from_db()
    # Not sent: back to the router (test_no_lead_stuck follows it to another mailbox).
    assert message.state == Message.State.SCHEDULED
    event = Event.objects.get(message=message)
    assert (event.type, event.source, event.mailbox_id) == ("blocked", "smtp", blocked_on)
    assert "blocked" in event.diagnostic
    assert not is_suppressed(message.to_email)


def test_it_pauses_the_mailbox_when_authentication_fails(
    smtp_server: SmtpTestServer, ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = smtp_account("relay", smtp_server.port, ca_file)
    (message,) = claimed_campaign_messages(1, provider=account)
    monkeypatch.setenv("OUTREACH_SECRET_TEST_SMTP_PASSWORD", "wrong")

    send_due()

    mailbox = Mailbox.objects.get(pk=message.mailbox_id or 0)
    assert mailbox.state == Mailbox.State.PAUSED
    change = StateChange.objects.get(mailbox=mailbox)
    assert (change.from_state, change.to_state) == ("active", "paused")
    message.refresh_from_db()
    assert message.state == Message.State.SCHEDULED
    assert message.mailbox is None
    # Its next mailbox may be on another domain: it gets a Message-ID there.
    assert message.message_id_header is None
    assert SendAttempt.objects.get(message=message).outcome == "auth_failed"
    assert smtp_server.received == []


def test_it_retries_after_a_connection_dropped_mid_data(
    smtp_server: SmtpTestServer, ca_file: Path
) -> None:
    account = smtp_account("relay", smtp_server.port, ca_file)
    (message,) = claimed_campaign_messages(1, provider=account)
    smtp_server.handler.data_faults.append(DROP)

    send_due()
    assert states([message]) == [Message.State.RETRY]
    _later()
    send_due()

    assert states([message]) == [Message.State.SENT]
    assert len(smtp_server.received) == 1


def test_it_gives_up_on_a_server_that_stops_answering(
    smtp_server: SmtpTestServer, ca_file: Path
) -> None:
    account = smtp_account("relay", smtp_server.port, ca_file, timeout=0.5)
    (message,) = claimed_campaign_messages(1, provider=account)
    smtp_server.handler.hang_seconds = 3
    smtp_server.handler.data_faults.append(HANG)

    send_due()

    message.refresh_from_db()
    assert message.state == Message.State.RETRY
    assert "timed out" in message.last_error


def test_it_gives_up_on_a_server_that_never_greets(ca_file: Path, smtp_password: str) -> None:
    silent = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(silent.accept()[0]), daemon=True)
    thread.start()
    try:
        account = smtp_account("relay", silent.getsockname()[1], ca_file, timeout=0.5)
        (message,) = claimed_campaign_messages(1, provider=account)

        send_due()

        message.refresh_from_db()
        assert message.state == Message.State.RETRY
    finally:
        for conn in accepted:
            conn.close()
        silent.close()


def test_it_never_sends_to_an_address_suppressed_after_the_claim(
    smtp_server: SmtpTestServer, ca_file: Path
) -> None:
    account = smtp_account("relay", smtp_server.port, ca_file)
    messages = claimed_campaign_messages(2, provider=account)
    suppress(messages[0].to_email, "unsubscribe")
    suppress("prospect.example.org", "manual", kind="domain")

    assert send_due() == 0

    assert states(messages) == [Message.State.CANCELLED, Message.State.CANCELLED]
    assert smtp_server.received == []


def test_it_leaves_a_claim_alone_when_its_mailbox_was_paused(
    smtp_server: SmtpTestServer, ca_file: Path
) -> None:
    account = smtp_account("relay", smtp_server.port, ca_file)
    (message,) = claimed_campaign_messages(1, provider=account)
    mailbox = Mailbox.objects.select_related("domain").get(pk=message.mailbox_id or 0)
    transition_mailbox(mailbox, "paused", reason="complaint", actor="rule:complaint")

    assert send_due() == 0

    assert states([message]) == [Message.State.CLAIMED]
    assert smtp_server.received == []


def test_it_does_not_send_a_claim_whose_enrollment_stopped_or_campaign_paused(
    smtp_server: SmtpTestServer, ca_file: Path
) -> None:
    from outreach.campaigns.models import Campaign, Enrollment

    account = smtp_account("relay", smtp_server.port, ca_file)
    replied, first, second = claimed_campaign_messages(3, provider=account)
    # A reply stopped one enrollment after its message was claimed, and the operator paused
    # the campaign: nothing leaves.
    Enrollment.objects.filter(pk=replied.enrollment_id or 0).update(state=Enrollment.State.STOPPED)
    Campaign.objects.filter(pk=first.campaign_id or 0).update(state=Campaign.State.PAUSED)
    assert send_due() == 0
    assert smtp_server.received == []
    # Resumed: the live enrollments' messages go; the stopped one's never does.
    Campaign.objects.filter(pk=first.campaign_id or 0).update(state=Campaign.State.ACTIVE)
    assert send_due() == 2
    assert states([replied, first, second]) == [
        Message.State.CLAIMED,
        Message.State.SENT,
        Message.State.SENT,
    ]
    assert sorted(m.rcpt_tos[0] for m in smtp_server.received) == sorted(
        [first.to_email, second.to_email]
    )


@pytest.mark.django_db(transaction=True)
def test_it_sends_on_several_threads_each_message_once(
    smtp_server: SmtpTestServer, ca_file: Path
) -> None:
    clock.set_now(None)
    account = smtp_account("relay", smtp_server.port, ca_file)
    messages = claimed_campaign_messages(24, provider=account, domains=2, mailboxes_per_domain=3)
    worker = Worker(concurrency=4)
    try:
        while worker.handle_one():
            pass
    finally:
        worker.close()

    assert set(states(messages)) == {Message.State.SENT}
    tags = sorted(int(r.message["X-Outreach-Message"]) for r in smtp_server.received)
    assert tags == [m.pk for m in messages]


@pytest.mark.django_db(transaction=True)
def test_it_overlaps_batches_and_finishes_every_one_before_returning(
    smtp_server: SmtpTestServer, ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock.set_now(None)
    account = smtp_account("relay", smtp_server.port, ca_file)
    messages = claimed_campaign_messages(30, provider=account, domains=2, mailboxes_per_domain=3)
    # Batches of 4 (2 threads x 2): one handle_one() takes eight while the others send.
    monkeypatch.setattr(Worker, "BATCH_PER_THREAD", 2)
    finished: list[int] = []
    original = Worker._finish

    def counting(self: Worker, futures: list[Any]) -> None:
        # While a batch is recorded, the next one was taken already (it is `sending`).
        finished.append(Message.objects.filter(state=Message.State.SENDING).count())
        original(self, futures)

    monkeypatch.setattr(Worker, "_finish", counting)
    worker = Worker(concurrency=2)
    try:
        assert worker.handle_one()
        # Nothing is left half done when it returns.
        assert not Message.objects.filter(state=Message.State.SENDING).exists()
        while worker.handle_one():
            pass
    finally:
        worker.close()

    assert set(states(messages)) == {Message.State.SENT}
    assert len(finished) == 8
    assert max(finished[:-1]) == 8 and finished[-1] == 2
    tags = sorted(int(r.message["X-Outreach-Message"]) for r in smtp_server.received)
    assert tags == [m.pk for m in messages]
    assert SendAttempt.objects.count() == 30


@pytest.mark.django_db(transaction=True)
def test_a_stop_ends_the_overlapping_batches_after_the_ones_taken(
    smtp_server: SmtpTestServer, ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock.set_now(None)
    account = smtp_account("relay", smtp_server.port, ca_file)
    messages = claimed_campaign_messages(20, provider=account, domains=2, mailboxes_per_domain=3)
    monkeypatch.setattr(Worker, "BATCH_PER_THREAD", 2)
    stop = threading.Event()
    original = Worker._take

    def take_then_stop(self: Worker) -> list[Any]:
        taken = original(self)
        stop.set()  # asked to stop while the first batch is out
        return taken

    monkeypatch.setattr(Worker, "_take", take_then_stop)
    worker = Worker(concurrency=2, stop=stop)
    try:
        assert worker.handle_one()
    finally:
        worker.close()

    # The batch taken went out and was recorded; nothing else was taken.
    assert sorted(states(messages)) == [Message.State.CLAIMED] * 16 + [Message.State.SENT] * 4
    assert len(smtp_server.received) == 4


def test_it_sends_a_warm_up_message_as_plain_text(
    smtp_server: SmtpTestServer, ca_file: Path
) -> None:
    account = smtp_account("relay", smtp_server.port, ca_file)
    (mailbox,) = make_pool(1, 1, provider=account, state=Mailbox.State.WARMING)
    message = Message.objects.create(
        kind=Message.Kind.WARMUP,
        to_email="seed@inbox.example.net",
        to_domain="inbox.example.net",
        subject="Coffee next week?",
        pinned_mailbox=mailbox,
        mailbox=mailbox,
        provider_account=account,
        state=Message.State.CLAIMED,
        lease_expires_at=T0 + timedelta(minutes=10),
    )

    assert send_due() == 1

    mail = smtp_server.received[0].message
    assert mail["Subject"] == "Coffee next week?"
    body = mail.get_body(("plain",))
    assert body is not None and "Tuesday or Thursday" in body.get_content()
    assert mail.get_content_type() == "text/plain"
    assert mail["X-Outreach-Message"] == str(message.pk)
