"""Property tests of the mail parser of the IMAP reader: any mail yields events or a
ValueError, never a crash, and every event is in our vocabulary."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from outreach.events import inbox
from outreach.events import normalize as n
from outreach.events.tests.test_inbox import ADDRESS, LEAD, dsn, mail

VOCABULARY = {
    n.REPLIED,
    n.AUTO_REPLIED,
    n.UNSUBSCRIBED,
    n.BOUNCED,
    n.DEFERRED,
    n.BLOCKED,
    n.COMPLAINED,
}
header_text = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), max_size=60
)


def _check(raw: bytes) -> None:
    try:
        parsed = inbox.parse(raw, mailbox_address=ADDRESS)
    except ValueError:
        return
    for event in parsed.events:
        assert event.type in VOCABULARY
        assert event.occurred_at.tzinfo is not None
        assert len(event.recipient) <= 254


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2000))
def test_it_survives_arbitrary_bytes(raw: bytes) -> None:
    _check(raw)


@settings(max_examples=100, deadline=None)
@given(
    status=header_text,
    diagnostic=header_text,
    recipient=header_text,
    original=header_text,
    cut=st.integers(min_value=0, max_value=3000),
)
def test_it_survives_odd_delivery_status_notifications(
    status: str, diagnostic: str, recipient: str, original: str, cut: int
) -> None:
    raw = dsn(original, recipient, status, diagnostic)
    _check(raw)
    _check(raw[:cut])


@settings(max_examples=100, deadline=None)
@given(
    headers=st.dictionaries(
        st.sampled_from(
            [
                "Subject",
                "From",
                "In-Reply-To",
                "References",
                "Auto-Submitted",
                "Precedence",
                "X-Autoreply",
                "Date",
                "Message-ID",
                "Content-Type",
            ]
        ),
        header_text,
    ),
    body=st.text(max_size=200),
)
def test_it_survives_odd_replies(headers: dict[str, str], body: str) -> None:
    _check(mail({"From": LEAD, **headers}, body))


def test_it_reads_a_postfix_bounce() -> None:
    raw = dsn("<m1@send1.example.com>", LEAD, "5.1.1", "550 5.1.1 User unknown")
    (event,) = inbox.parse(raw, mailbox_address=ADDRESS).events
    assert (event.type, event.bounce_type, event.recipient) == ("bounced", "hard", LEAD)
    assert event.referenced_message_ids == ["<m1@send1.example.com>"]


def test_it_reads_a_temporary_failure_as_a_soft_bounce() -> None:
    raw = dsn("<m1@send1.example.com>", LEAD, "4.2.2", "452 4.2.2 Mailbox full")
    (event,) = inbox.parse(raw, mailbox_address=ADDRESS).events
    assert (event.type, event.bounce_type) == ("bounced", "soft")


def test_it_reads_an_abuse_report_as_a_complaint() -> None:
    raw = (
        "From: feedback@fbl.mailbox.example\r\n"
        f"To: {ADDRESS}\r\n"
        "Subject: Abuse report\r\n"
        "Message-ID: <arf-1@fbl.mailbox.example>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="part"\r\n'
        "\r\n"
        "--part\r\n"
        "Content-Type: text/plain\r\n\r\n"
        "This is an email abuse report.\r\n"
        "--part\r\n"
        "Content-Type: message/feedback-report\r\n\r\n"
        "Feedback-Type: abuse\r\n"
        "User-Agent: ExampleFBL/1.0\r\n"
        "Version: 1\r\n"
        f"Original-Rcpt-To: {LEAD}\r\n"
        "\r\n"
        "--part\r\n"
        "Content-Type: message/rfc822\r\n\r\n"
        f"From: {ADDRESS}\r\n"
        f"To: {LEAD}\r\n"
        "Subject: Quick question\r\n"
        "Message-ID: <m7@send1.example.com>\r\n"
        "X-Outreach-Message: 7\r\n"
        "\r\n"
        "Hi\r\n"
        "--part--\r\n"
    ).encode()

    (event,) = inbox.parse(raw, mailbox_address=ADDRESS).events

    assert (event.type, event.recipient, event.outreach_message_id) == ("complained", LEAD, 7)
    assert event.referenced_message_ids == ["<m7@send1.example.com>"]
