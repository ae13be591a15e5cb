"""The IMAP reader against a real IMAP server (dovecot) holding real replies, auto-replies,
delivery status notifications and unsubscribe requests."""

from __future__ import annotations

from collections.abc import Iterator
from email.utils import format_datetime

import pytest
from django.core.management import call_command
from imap_tools import MailBoxUnencrypted

from outreach.campaigns.models import Enrollment, Lead
from outreach.campaigns.suppression import is_suppressed
from outreach.events import inbox
from outreach.events.models import Event, InboxCursor
from outreach.events.tests import dovecot
from outreach.events.tests.conftest import IMAP_MAILBOX, Sent, make_sent_message
from outreach.lib import clock
from outreach.pool.models import Mailbox
from outreach.testing import enroll

pytestmark = pytest.mark.django_db

ADDRESS = IMAP_MAILBOX
LEAD = "lead0@prospect.example.org"


@pytest.fixture
def mailbox_with_imap(
    imap_server: dovecot.ImapServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Sent, MailBoxUnencrypted]]:
    sent = make_sent_message(LEAD)
    monkeypatch.setenv("OUTREACH_SECRET_REP1_IMAP", imap_server.password)
    Mailbox.objects.filter(address=ADDRESS).update(
        settings={
            "imap_host": imap_server.host,
            "imap_port": imap_server.port,
            "imap_security": "plain",
        },
        secrets={"imap_password": "env:OUTREACH_SECRET_REP1_IMAP"},
    )
    client = MailBoxUnencrypted(imap_server.host, imap_server.port)
    client.login(ADDRESS, imap_server.password)
    # Each test starts from an empty INBOX; expunged UIDs are never reused.
    client.folder.set("INBOX")
    client.delete(client.uids())
    yield sent, client
    client.logout()


def mail(headers: dict[str, str], body: str = "Thanks, let's talk next week.") -> bytes:
    headers = {
        "Date": format_datetime(clock.now()),
        "To": ADDRESS,
        "MIME-Version": "1.0",
        "Content-Type": "text/plain; charset=utf-8",
        **headers,
    }
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (head + "\r\n" + body + "\r\n").encode()


def dsn(original_id: str, recipient: str, status: str, diagnostic: str) -> bytes:
    return f"""Return-Path: <>
From: MAILER-DAEMON@mx.prospect.example.org (Mail Delivery System)
To: {ADDRESS}
Subject: Undelivered Mail Returned to Sender
Date: {format_datetime(clock.now())}
Message-ID: <20261128030010.ABC123@mx.prospect.example.org>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
 boundary="B0UND"

--B0UND
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.prospect.example.org.
I'm sorry to have to inform you that your message could not be delivered.

--B0UND
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.prospect.example.org
X-Postfix-Queue-ID: ABC123
Arrival-Date: {format_datetime(clock.now())}

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: failed
Status: {status}
Remote-MTA: dns; mx.prospect.example.org
Diagnostic-Code: smtp; {diagnostic}

--B0UND
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: Rep 1 <{ADDRESS}>
To: {recipient}
Subject: Quick question, Lead0
Message-ID: {original_id}

--B0UND--
""".replace("\n", "\r\n").encode()


def read_all() -> int:
    folders = 0
    while inbox.read_one_due():
        folders += 1
        assert folders < 10
    return folders


def make_due() -> None:
    InboxCursor.objects.update(next_check_at=None)


def test_it_finds_a_reply_by_its_references_and_stops_the_enrollment(
    mailbox_with_imap: tuple[Sent, MailBoxUnencrypted],
) -> None:
    sent, client = mailbox_with_imap
    client.append(
        mail(
            {
                "From": f"Lead Zero <{LEAD}>",
                "Subject": "Re: Quick question, Lead0",
                "Message-ID": "<reply-1@prospect.example.org>",
                "In-Reply-To": sent.message.message_id_header or "",
                "References": sent.message.message_id_header or "",
            }
        )
    )

    assert read_all() == 1

    event = Event.objects.get()
    assert (event.type, event.source, event.message_id) == ("replied", "imap", sent.message.pk)
    sent.enrollment.refresh_from_db()
    assert sent.enrollment.state == Enrollment.State.STOPPED
    assert sent.enrollment.stop_reason == Enrollment.StopReason.REPLY


def test_it_falls_back_on_subject_and_sender_when_the_client_drops_references(
    mailbox_with_imap: tuple[Sent, MailBoxUnencrypted],
) -> None:
    sent, client = mailbox_with_imap
    client.append(
        mail(
            {
                "From": LEAD,
                "Subject": "AW: Re: Quick question, Lead0",
                "Message-ID": "<reply-2@prospect.example.org>",
            }
        )
    )

    read_all()

    assert Event.objects.get().message_id == sent.message.pk


def test_it_records_auto_replies_without_stopping_the_sequence(
    mailbox_with_imap: tuple[Sent, MailBoxUnencrypted],
) -> None:
    sent, client = mailbox_with_imap
    ref = sent.message.message_id_header or ""
    client.append(
        mail(
            {
                "From": LEAD,
                "Subject": "Automatic reply: Quick question, Lead0",
                "Message-ID": "<ooo-1@prospect.example.org>",
                "In-Reply-To": ref,
                "Auto-Submitted": "auto-replied",
            },
            "I am out of the office until Monday.",
        )
    )
    client.append(
        mail(
            {
                "From": LEAD,
                "Subject": "Out of Office: Quick question, Lead0",
                "Message-ID": "<ooo-2@prospect.example.org>",
                "In-Reply-To": ref,
            }
        )
    )
    client.append(
        mail(
            {
                "From": LEAD,
                "Subject": "Re: Quick question, Lead0",
                "Message-ID": "<ooo-3@prospect.example.org>",
                "In-Reply-To": ref,
                "X-Autoreply": "yes",
            }
        )
    )

    read_all()

    assert list(Event.objects.values_list("type", flat=True)) == ["auto_replied"] * 3
    sent.enrollment.refresh_from_db()
    assert sent.enrollment.state == Enrollment.State.ACTIVE


def test_it_parses_delivery_status_notifications_into_bounces(
    mailbox_with_imap: tuple[Sent, MailBoxUnencrypted],
) -> None:
    sent, client = mailbox_with_imap
    client.append(
        dsn(
            sent.message.message_id_header or "",
            LEAD,
            "5.1.1",
            "550 5.1.1 <lead0@prospect.example.org>: Recipient address rejected: User unknown",
        )
    )

    read_all()

    event = Event.objects.get()
    assert (event.type, event.bounce_type) == ("bounced", "hard")
    assert event.message_id == sent.message.pk and event.recipient == LEAD
    assert event.diagnostic.startswith("5.1.1") and "User unknown" in event.diagnostic
    assert is_suppressed(LEAD)
    sent.enrollment.refresh_from_db()
    assert sent.enrollment.stop_reason == Enrollment.StopReason.BOUNCE


def test_it_tells_a_policy_block_from_a_bad_address(
    mailbox_with_imap: tuple[Sent, MailBoxUnencrypted],
) -> None:
    sent, client = mailbox_with_imap
    client.append(
        dsn(
            sent.message.message_id_header or "",
            LEAD,
            "5.7.1",
            "550 5.7.1 Service unavailable; client host blocked using Spamhaus",
        )
    )

    read_all()

    event = Event.objects.get()
    assert event.type == "blocked" and event.mailbox_id == sent.message.mailbox_id
    assert not is_suppressed(LEAD)


def test_it_unsubscribes_through_the_mailto_address(
    mailbox_with_imap: tuple[Sent, MailBoxUnencrypted],
) -> None:
    sent, client = mailbox_with_imap
    client.append(
        mail(
            {
                "From": LEAD,
                "Subject": "unsubscribe",
                "Message-ID": "<unsub-1@prospect.example.org>",
            },
            "",
        )
    )

    read_all()

    assert Event.objects.get().type == "unsubscribed"
    assert is_suppressed(LEAD)
    sent.enrollment.refresh_from_db()
    assert sent.enrollment.stop_reason == Enrollment.StopReason.UNSUBSCRIBE


def test_it_ignores_mail_that_answers_nothing_of_ours(
    mailbox_with_imap: tuple[Sent, MailBoxUnencrypted],
) -> None:
    _, client = mailbox_with_imap
    client.append(
        mail(
            {
                "From": "news@vendor.example",
                "Subject": "Our November newsletter",
                "Message-ID": "<news-1@vendor.example>",
            }
        )
    )

    read_all()

    assert Event.objects.count() == 0
    assert InboxCursor.objects.get().last_uid > 0


def test_it_remembers_what_it_has_read(
    mailbox_with_imap: tuple[Sent, MailBoxUnencrypted],
) -> None:
    sent, client = mailbox_with_imap
    ref = sent.message.message_id_header or ""
    client.append(
        mail({"From": LEAD, "Subject": "Re: hi", "Message-ID": "<r1@p>", "In-Reply-To": ref})
    )
    read_all()
    assert read_all() == 0  # not due again before the poll interval

    make_due()
    read_all()
    assert Event.objects.count() == 1

    client.append(
        mail({"From": LEAD, "Subject": "Re: hi", "Message-ID": "<r2@p>", "In-Reply-To": ref})
    )
    make_due()
    read_all()
    assert Event.objects.count() == 2

    # A renumbered folder (new UIDVALIDITY) is read again, and still nothing counts twice.
    InboxCursor.objects.update(uid_validity=1, next_check_at=None)
    read_all()
    assert Event.objects.count() == 2
    cursor = InboxCursor.objects.get()
    assert cursor.uid_validity != 1 and cursor.last_uid >= 2


def test_it_stops_the_whole_company_when_the_campaign_asks(
    mailbox_with_imap: tuple[Sent, MailBoxUnencrypted],
) -> None:
    sent, client = mailbox_with_imap
    campaign = sent.message.campaign
    assert campaign is not None
    campaign.stop_on_company_reply = True
    campaign.save()
    colleagues = [
        Lead.objects.create(
            email=f"colleague{i}@prospect.example.org", email_domain="prospect.example.org"
        )
        for i in range(2)
    ]
    others = enroll(campaign, colleagues)
    client.append(
        mail(
            {
                "From": "boss@prospect.example.org",
                "Subject": "Re: Quick question, Lead0",
                "Message-ID": "<boss@prospect.example.org>",
                "References": sent.message.message_id_header or "",
            },
            "Please stop contacting my team.",
        )
    )

    read_all()

    stopped = Enrollment.objects.filter(pk__in=[e.pk for e in others])
    assert set(stopped.values_list("stop_reason", flat=True)) == {"company_reply"}


def test_it_records_a_server_error_and_goes_on(
    mailbox_with_imap: tuple[Sent, MailBoxUnencrypted], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OUTREACH_SECRET_REP1_IMAP", "wrong")

    read_all()

    cursor = InboxCursor.objects.get()
    assert cursor.last_error and cursor.next_check_at is not None
    assert cursor.next_check_at > clock.now() + inbox.POLL_INTERVAL


def test_it_runs_as_a_command(mailbox_with_imap: tuple[Sent, MailBoxUnencrypted]) -> None:
    sent, client = mailbox_with_imap
    client.append(
        mail(
            {
                "From": LEAD,
                "Subject": "Re: Quick question",
                "Message-ID": "<cmd@p>",
                "In-Reply-To": sent.message.message_id_header or "",
            }
        )
    )

    call_command("inbox", "--once")

    assert Event.objects.get().type == "replied"


def test_it_reads_a_long_backlog_in_bounded_passes(
    mailbox_with_imap: tuple[Sent, MailBoxUnencrypted], monkeypatch: pytest.MonkeyPatch
) -> None:
    sent, client = mailbox_with_imap
    monkeypatch.setattr(inbox, "BATCH", 2)
    for i in range(5):
        client.append(
            mail(
                {
                    "From": LEAD,
                    "Subject": "Re: Quick question",
                    "Message-ID": f"<backlog-{i}@p>",
                    "In-Reply-To": sent.message.message_id_header or "",
                    "Auto-Submitted": "auto-replied",
                }
            )
        )

    assert inbox.read_one_due()
    assert Event.objects.count() == 2

    assert read_all() == 2  # two more passes, at once, not after the poll interval
    assert Event.objects.count() == 5
