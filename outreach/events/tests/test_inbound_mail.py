"""Every inbound mail that belongs to us is kept whole (a real dovecot holds them): headers,
text, safe HTML, attachment names and sizes, and the visible reply split from the quoted
history and the signature. Bad input is kept without harm; strangers are counted, not kept."""

from __future__ import annotations

import base64

import pytest
from imap_tools import MailBoxUnencrypted

from outreach.campaigns.models import Lead
from outreach.events.models import InboundMail, InboxCursor, InboxSkip
from outreach.events.tests.conftest import Sent
from outreach.events.tests.test_inbox import (  # the same dovecot fixtures as the reader's
    ADDRESS,
    LEAD,
    dsn,
    mail,
    mailbox_with_imap,
    make_due,
    read_all,
)

pytestmark = pytest.mark.django_db

__all__ = ["mailbox_with_imap"]

REPLY_TEXT = """Yes, this is interesting. Can you send me the pricing?

Best regards,
Jana Novak
Head of Ops, Prospect Inc.

On Mon, Nov 30, 2026 at 10:00 AM Rep 1 <rep1@send1.example.com> wrote:
> Hi Jana,
> quick question about your outbound.
"""


def multipart(sent: Sent, *, html: str, attachment: bytes, charset: str = "utf-8") -> bytes:
    ref = sent.message.message_id_header
    encoded = base64.encodebytes(attachment).decode()
    return f"""From: Jana Novak <{LEAD}>
To: {ADDRESS}
Subject: Re: Quick question, Lead0
Message-ID: <multi-1@prospect.example.org>
In-Reply-To: {ref}
References: {ref}
Date: Tue, 01 Dec 2026 09:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="MIX"

--MIX
Content-Type: multipart/alternative; boundary="ALT"

--ALT
Content-Type: text/plain; charset={charset}

{REPLY_TEXT}
--ALT
Content-Type: text/html; charset={charset}

{html}
--ALT--
--MIX
Content-Type: application/pdf; name="deck.pdf"
Content-Disposition: attachment; filename="deck.pdf"
Content-Transfer-Encoding: base64

{encoded}
--MIX--
""".replace("\n", "\r\n").encode()


HOSTILE_HTML = (
    '<p onclick="steal()">Yes, <b>interesting</b>.</p><script>alert(1)</script>'
    '<img src="https://tracker.example/pixel.gif"><a href="javascript:alert(2)">x</a>'
)


def test_it_keeps_a_threaded_reply_whole(
    mailbox_with_imap: tuple[Sent, MailBoxUnencrypted],
) -> None:
    sent, client = mailbox_with_imap
    client.append(multipart(sent, html=HOSTILE_HTML, attachment=b"%PDF-1.4 fake deck" * 10))

    read_all()

    kept = InboundMail.objects.get()
    assert (kept.kind, kept.message_id, kept.enrollment_id) == (
        "reply",
        sent.message.pk,
        sent.enrollment.pk,
    )
    assert kept.lead is not None and kept.lead.email == LEAD
    assert ["Subject", "Re: Quick question, Lead0"] in kept.headers
    assert kept.visible_text == "Yes, this is interesting. Can you send me the pricing?"
    assert "Jana Novak" in kept.signature
    assert "quick question about your outbound" in kept.quoted_text
    assert "<script" not in kept.html_body and "onclick" not in kept.html_body
    assert "tracker.example" not in kept.html_body and "javascript:" not in kept.html_body
    assert "<b>interesting</b>" in kept.html_body
    assert kept.attachments == [
        {"name": "deck.pdf", "size": 180, "content_type": "application/pdf"}
    ]
    assert kept.label == "interested" and kept.label_reason.startswith("shows interest")


def test_it_keeps_a_30_mb_attachment_as_metadata_only(
    mailbox_with_imap: tuple[Sent, MailBoxUnencrypted],
) -> None:
    sent, client = mailbox_with_imap
    big = bytes(30 * 1024 * 1024)
    client.append(multipart(sent, html="<p>See attached.</p>", attachment=big))

    read_all()

    kept = InboundMail.objects.get()
    assert kept.attachments[0]["size"] == len(big)
    assert len(kept.text_body) < 10_000 and len(kept.html_body) < 10_000
    assert kept.size > len(big)


def test_it_keeps_broken_mime_and_unknown_charsets_with_a_note(
    mailbox_with_imap: tuple[Sent, MailBoxUnencrypted],
) -> None:
    sent, client = mailbox_with_imap
    ref = sent.message.message_id_header
    client.append(
        f"""From: {LEAD}\r\nTo: {ADDRESS}\r\nSubject: Re: Quick question\r\n"""
        f"""Message-ID: <broken@p>\r\nIn-Reply-To: {ref}\r\nMIME-Version: 1.0\r\n"""
        """Content-Type: multipart/alternative; boundary="NEVER-CLOSED"\r\n\r\n"""
        """--NEVER-CLOSED\r\nContent-Type: text/plain; charset=x-klingon-9\r\n\r\n"""
        """Let's talk on Thursday.\r\n""".encode()
    )

    read_all()

    kept = InboundMail.objects.get()
    assert "Let's talk on Thursday." in kept.text_body
    assert any("x-klingon-9" in p for p in kept.problems)
    assert any("MIME defect" in p for p in kept.problems)


def test_it_keeps_a_reply_without_thread_headers_and_mail_from_a_known_lead(
    mailbox_with_imap: tuple[Sent, MailBoxUnencrypted],
) -> None:
    sent, client = mailbox_with_imap
    client.append(
        mail({"From": LEAD, "Subject": "AW: Quick question, Lead0", "Message-ID": "<nohdr@p>"})
    )
    client.append(
        mail(
            {"From": LEAD, "Subject": "Another topic", "Message-ID": "<fresh@p>"},
            "Separate question: do you also do events?",
        )
    )

    read_all()

    kinds = dict(InboundMail.objects.values_list("message_id_header", "kind"))
    assert kinds == {"<nohdr@p>": "reply", "<fresh@p>": "lead_mail"}
    assert InboundMail.objects.get(kind="lead_mail").enrollment_id == sent.enrollment.pk


def test_it_counts_strangers_mail_without_keeping_it(
    mailbox_with_imap: tuple[Sent, MailBoxUnencrypted],
) -> None:
    _, client = mailbox_with_imap
    client.append(mail({"From": "news@vendor.example", "Subject": "News", "Message-ID": "<n@v>"}))
    client.append(mail({"From": "x@y.example", "Subject": "Hello", "Message-ID": "<h@y>"}))

    read_all()

    assert InboundMail.objects.count() == 0
    assert InboxSkip.objects.get().count == 2


def test_it_keeps_delivery_reports(mailbox_with_imap: tuple[Sent, MailBoxUnencrypted]) -> None:
    sent, client = mailbox_with_imap
    client.append(dsn(sent.message.message_id_header or "", LEAD, "5.1.1", "550 5.1.1 unknown"))

    read_all()

    kept = InboundMail.objects.get()
    assert (kept.kind, kept.label, kept.message_id) == ("dsn", "bounce", sent.message.pk)


def test_it_stores_each_mail_once_and_leaves_the_server_untouched(
    mailbox_with_imap: tuple[Sent, MailBoxUnencrypted],
) -> None:
    sent, client = mailbox_with_imap
    ref = sent.message.message_id_header or ""
    client.append(
        mail({"From": LEAD, "Subject": "Re: hi", "Message-ID": "<o1@p>", "References": ref})
    )
    client.append(mail({"From": LEAD, "Subject": "Re: hi", "In-Reply-To": ref}))  # no id
    before = [
        (m.uid, set(m.flags) - {"\\Recent"})
        for m in client.fetch(mark_seen=False, headers_only=True)
    ]

    read_all()
    # A restarted reader that lost its place (or a renumbered folder) reads it all again.
    InboxCursor.objects.update(uid_validity=None, last_uid=0)
    make_due()
    read_all()

    assert InboundMail.objects.count() == 2
    client.folder.set("INBOX")
    after = [
        (m.uid, set(m.flags) - {"\\Recent"})
        for m in client.fetch(mark_seen=False, headers_only=True)
    ]
    assert after == before and len(after) == 2


def test_it_keeps_an_existing_lead_reply_linked_to_its_lead(
    mailbox_with_imap: tuple[Sent, MailBoxUnencrypted],
) -> None:
    sent, client = mailbox_with_imap
    client.append(
        mail(
            {
                "From": LEAD,
                "Subject": "Re: Q",
                "Message-ID": "<l@p>",
                "In-Reply-To": sent.message.message_id_header or "",
            },
            "Not interested, thanks.",
        )
    )

    read_all()

    kept = InboundMail.objects.get()
    assert kept.lead == Lead.objects.get(email=LEAD) and kept.label == "not_interested"
