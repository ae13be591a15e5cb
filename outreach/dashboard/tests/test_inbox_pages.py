"""The unified inbox page: threads newest first, the unread count, filters, the thread in
order, relabel, done and snooze, and answers sent at once through the receiving mailbox to a
real SMTP server (aiosmtpd), in the thread."""

from __future__ import annotations

import html
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from django.test import Client

from outreach.campaigns.models import Lead, Message
from outreach.events import inbox as reader
from outreach.events.answer import MailboxStanding, refusal
from outreach.events.models import Answer, InboundMail, LabelChange
from outreach.events.tests.conftest import Sent, make_sent_message
from outreach.lib import clock
from outreach.pool.models import Mailbox, ProviderAccount
from outreach.pool.states import transition_mailbox
from outreach.providers.smtp.testserver import SmtpTestServer, tls_files
from outreach.scheduler.models import DailyCounter
from outreach.testing import enroll, make_pool

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
MAILBOX = "rep1@send1.example.com"  # the first mailbox of make_pool, which sends the thread
MAILBOX_PASSWORD = "mailbox-pass"
MAILBOX_PASSWORD_ENV = "OUTREACH_SECRET_TEST_INBOX_SMTP_PASSWORD"


@dataclass
class Conversation:
    sent: Sent
    mailbox: Mailbox
    smtp: SmtpTestServer


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    return tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def smtp(tls: tuple[ssl.SSLContext, Path]) -> Iterator[SmtpTestServer]:
    """The mailbox provider's SMTP server (STARTTLS, AUTH as the mailbox itself)."""
    server = SmtpTestServer(tls_context=tls[0], users={MAILBOX: MAILBOX_PASSWORD}).start()
    yield server
    server.stop()


@pytest.fixture
def conversation(
    tls: tuple[ssl.SSLContext, Path], smtp: SmtpTestServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Conversation]:
    """A sent campaign message whose mailbox logs in to a real SMTP server as itself."""
    clock.set_now(NOW)
    sent = make_sent_message("lead0@prospect.example.org")
    mailbox = sent.message.mailbox
    assert mailbox is not None and mailbox.address == MAILBOX
    server = smtp
    server.handler.received.clear()
    monkeypatch.setenv(MAILBOX_PASSWORD_ENV, MAILBOX_PASSWORD)
    account = ProviderAccount.objects.create(
        name="workspace",
        kind=ProviderAccount.Kind.SMTP,
        settings={
            "host": "127.0.0.1",
            "port": server.port,
            "security": "starttls",
            "ca_file": str(tls[1]),
            "timeout": 5,
        },
    )
    Mailbox.objects.filter(pk=mailbox.pk).update(
        provider=account,
        settings={"smtp_username": mailbox.address},
        secrets={"smtp_password": f"env:{MAILBOX_PASSWORD_ENV}"},
    )
    mailbox.refresh_from_db()
    yield Conversation(sent, mailbox, server)
    clock.set_now(None)


def receive(
    conversation: Conversation,
    body: str,
    *,
    minutes: int = 0,
    msgid: str = "reply-1",
    sender: str = "lead0@prospect.example.org",
) -> InboundMail:
    head = {
        "From": f"Lead Zero <{sender}>",
        "To": conversation.mailbox.address,
        "Subject": "Re: Quick question, Lead0",
        "Date": format_datetime(NOW + timedelta(minutes=minutes)),
        "Message-ID": f"<{msgid}@prospect.example.org>",
        "In-Reply-To": conversation.sent.message.message_id_header or "",
        "References": conversation.sent.message.message_id_header or "",
    }
    raw = "".join(f"{k}: {v}\r\n" for k, v in head.items()) + "\r\n" + body + "\r\n"
    reader.record_mail(raw.encode(), conversation.mailbox, fallback_id=msgid)
    return InboundMail.objects.get(message_id_header=f"<{msgid}@prospect.example.org>")


def test_it_lists_threads_newest_first_with_the_unread_count(
    conversation: Conversation, staff_client: Client
) -> None:
    receive(conversation, "Who is this?", msgid="a")
    # A second lead writes to the other mailbox of the pool, outside any thread.
    campaign = conversation.sent.message.campaign
    assert campaign is not None
    buyer = Lead.objects.create(email="buyer@second.example.net", email_domain="second.example.net")
    enroll(campaign, [buyer])
    other_box = Mailbox.objects.exclude(pk=conversation.mailbox.pk).first()
    assert other_box is not None
    head = (
        f"From: buyer@second.example.net\r\nSubject: Pricing\r\nMessage-ID: <b@second>\r\n"
        f"Date: {format_datetime(NOW + timedelta(hours=1))}\r\n\r\nSounds good, call me Friday.\r\n"
    )
    reader.record_mail(head.encode(), other_box, fallback_id="b")

    page = staff_client.get("/inbox/").content.decode()

    assert page.index("buyer@second.example.net") < page.index("Lead Zero")
    assert 'id="inbox-unread">2<' in page
    interested = staff_client.get("/inbox/", {"label": "interested"}).content.decode()
    assert "buyer@second.example.net" in interested and "Lead Zero" not in interested
    by_box = staff_client.get("/inbox/", {"mailbox": conversation.mailbox.pk}).content.decode()
    assert "Lead Zero" in by_box and "buyer@second" not in by_box


def test_it_shows_the_thread_in_order_and_marks_it_read(
    conversation: Conversation, staff_client: Client
) -> None:
    first = receive(conversation, "Who is this?", msgid="a")
    receive(conversation, "Ah, got it. Let's talk Thursday.", minutes=30, msgid="b")

    page = staff_client.get(f"/inbox/{first.pk}/").content.decode()

    ours = page.index("(campaign message, step 1)")
    assert ours < page.index("Who is this?") < page.index("Ah, got it.")
    assert InboundMail.objects.filter(read_at__isnull=True).count() == 0
    assert "inbox-unread" not in staff_client.get("/inbox/").content.decode()


def test_the_needs_answer_filter_leaves_out_done_snoozed_and_machines(
    conversation: Conversation, staff_client: Client
) -> None:
    done = receive(conversation, "Who is this?", msgid="a")
    snoozed = receive(conversation, "What is this about?", msgid="b", minutes=1)
    receive(conversation, "I am out of the office until December 9.", msgid="c", minutes=2)
    open_one = receive(conversation, "Hmm, tell me more.", msgid="d", minutes=3)

    staff_client.post(f"/inbox/{done.pk}/done")
    staff_client.post(f"/inbox/{snoozed.pk}/snooze", {"for": "3d"})

    page = staff_client.get("/inbox/", {"needs_answer": "on"}).content.decode()
    assert f'data-mail="{open_one.pk}"' in page
    snoozed.refresh_from_db()
    assert snoozed.snoozed_until == NOW + timedelta(days=3)
    assert InboundMail.objects.get(pk=done.pk).done_at == NOW


def test_staff_relabel_with_an_audit_and_viewers_cannot(
    conversation: Conversation, staff_client: Client, viewer_client: Client
) -> None:
    mail = receive(conversation, "Who is this?")

    assert viewer_client.post(f"/inbox/{mail.pk}/label", {"label": "interested"}).status_code == 403
    staff_client.post(f"/inbox/{mail.pk}/label", {"label": "interested"})

    mail.refresh_from_db()
    assert (mail.label, mail.labeled_by) == ("interested", "user:ann")
    assert LabelChange.objects.get().to_label == "interested"
    assert "user:ann: other → interested" in staff_client.get(f"/inbox/{mail.pk}/").content.decode()


def test_an_answer_goes_out_at_once_in_the_thread_from_the_receiving_mailbox(
    conversation: Conversation, staff_client: Client
) -> None:
    mail = receive(conversation, "Can you send pricing?")
    # Cold caps and windows do not hold an answer: the mailbox's cap is used up already.
    Mailbox.objects.filter(pk=conversation.mailbox.pk).update(daily_cap=0)

    staff_client.post(f"/inbox/{mail.pk}/answer", {"text": "Sure - 40 EUR a seat."})

    [delivered] = conversation.smtp.handler.received
    assert delivered.login == conversation.mailbox.address
    message = delivered.message
    assert message["From"].addresses[0].addr_spec == conversation.mailbox.address
    assert message["Subject"] == "Re: Quick question, Lead0"
    assert message["In-Reply-To"] == "<reply-1@prospect.example.org>"
    assert message["References"].split() == [
        conversation.sent.message.message_id_header,
        "<reply-1@prospect.example.org>",
    ]
    body = message.get_content()
    assert body.index("Sure - 40 EUR a seat.") < body.index("> Can you send pricing?")
    answer = Answer.objects.get()
    assert answer.message.state == Message.State.SENT and answer.message.kind == "reply"
    counted = DailyCounter.objects.get(scope="mailbox", key=str(conversation.mailbox.pk))
    assert counted.used == 1
    mail.refresh_from_db()
    assert mail.answered_at is not None
    assert "Sure - 40 EUR a seat." in staff_client.get(f"/inbox/{mail.pk}/").content.decode()


def test_an_answer_is_refused_with_the_reason_for_a_mailbox_that_cannot_send(
    conversation: Conversation, staff_client: Client
) -> None:
    mail = receive(conversation, "Can you send pricing?")
    transition_mailbox(
        conversation.mailbox,
        Mailbox.State.PAUSED,
        reason="authentication failed: 535 5.7.8 bad credentials",
        actor="system:sending",
    )

    page = staff_client.get(f"/inbox/{mail.pk}/").content.decode()
    assert "cannot send: the mailbox&#x27;s credentials were refused" in page
    response = staff_client.post(f"/inbox/{mail.pk}/answer", {"text": "Hi"}, follow=True)

    assert "Not sent: the mailbox&#x27;s credentials were refused" in response.content.decode()
    assert conversation.smtp.handler.received == []
    assert not Message.objects.filter(kind="reply").exists()


def test_a_health_pause_does_not_stop_an_answer(
    conversation: Conversation, staff_client: Client
) -> None:
    mail = receive(conversation, "Can you send pricing?")
    transition_mailbox(
        conversation.mailbox, Mailbox.State.PAUSED, reason="bounce rate 6%", actor="rule:bounce"
    )

    staff_client.post(f"/inbox/{mail.pk}/answer", {"text": "Here it is."})

    assert len(conversation.smtp.handler.received) == 1


def test_the_html_body_is_shown_sandboxed_and_never_loads_anything(
    conversation: Conversation, staff_client: Client
) -> None:
    raw = (
        f"From: lead0@prospect.example.org\r\nSubject: Re: hi\r\nMessage-ID: <h@p>\r\n"
        f"In-Reply-To: {conversation.sent.message.message_id_header}\r\n"
        "Content-Type: text/html\r\n\r\n"
        '<p>Yes!</p><img src="https://tracker.example/p.gif"><script>steal()</script>\r\n'
    )
    reader.record_mail(raw.encode(), conversation.mailbox, fallback_id="h")
    mail = InboundMail.objects.get()

    page = staff_client.get(f"/inbox/{mail.pk}/").content.decode()

    assert '<iframe sandbox=""' in page
    assert "tracker.example" not in page and "steal()" not in page


@pytest.mark.parametrize(
    ("standing", "refused"),
    [
        (MailboxStanding("active", "active", "", True), None),
        (MailboxStanding("warming", "active", "", True), None),
        (MailboxStanding("paused", "active", "bounce rate 6%", True), None),
        (MailboxStanding("retired", "active", "", True), "retired"),
        (MailboxStanding("cooldown", "active", "", True), "cooldown"),
        (MailboxStanding("active", "cooldown", "", True), "cooldown"),
        (MailboxStanding("paused", "active", "authentication failed: 535", True), "credentials"),
        (MailboxStanding("active", "active", "", False), "disabled"),
    ],
)
def test_only_a_mailbox_that_cannot_send_at_all_refuses_an_answer(
    standing: MailboxStanding, refused: str | None
) -> None:
    why = refusal(standing)
    assert (why is None) if refused is None else (why is not None and refused in why)


def _older_link(page: str) -> str | None:
    found = re.search(r'<a href="([^"]*)" rel="next">older</a>', page)
    # The link is a query string, relative to the inbox page.
    return "/inbox/" + html.unescape(found.group(1)) if found else None


def _senders(page: str) -> list[int]:
    return [int(n) for n in re.findall(r"sender(\d{3})@far\.example", page)]


def test_the_list_pages_back_to_older_threads_and_keeps_its_filters(
    staff_client: Client,
) -> None:
    box = make_pool(domains=1, mailboxes_per_domain=1)[0]
    clock.set_now(NOW)
    mails = [
        InboundMail(
            mailbox=box,
            key=f"m{i}",
            kind=InboundMail.Kind.LEAD_MAIL,
            from_address=f"sender{i:03d}@far.example",
            subject=f"Mail {i}",
            label=InboundMail.Label.INTERESTED if i % 2 == 0 else InboundMail.Label.OTHER,
            occurred_at=NOW - timedelta(hours=i),
        )
        for i in range(120)
    ]
    # The newest thread also has the oldest mail: it stays on the first page only.
    mails.append(
        InboundMail(
            mailbox=box,
            key="old",
            kind=InboundMail.Kind.LEAD_MAIL,
            from_address="sender000@far.example",
            occurred_at=NOW - timedelta(days=30),
        )
    )
    InboundMail.objects.bulk_create(mails)

    first = staff_client.get("/inbox/").content.decode()
    assert _senders(first) == list(range(50))
    assert 'id="inbox-unread">121<' in first
    second = staff_client.get(_older_link(first) or "").content.decode()
    assert _senders(second) == list(range(50, 100))
    third = staff_client.get(_older_link(second) or "").content.decode()
    assert _senders(third) == list(range(100, 120)) and _older_link(third) is None

    interested = staff_client.get("/inbox/", {"label": "interested"}).content.decode()
    assert _senders(interested) == list(range(0, 100, 2))
    link = _older_link(interested)
    assert link is not None and "label=interested" in link
    rest = staff_client.get(link).content.decode()
    assert _senders(rest) == list(range(100, 120, 2)) and _older_link(rest) is None
