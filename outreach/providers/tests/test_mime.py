"""The built message: standards-correct headers, and no header injection from lead data."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.utils import format_datetime
from zoneinfo import ZoneInfo

import dkim
import dkim.crypto
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outreach.providers import mime
from outreach.testing import dkim_key_pair


def _outgoing(**overrides: str) -> mime.Outgoing:
    fields = {
        "from_address": "anna@send1.example.com",
        "from_name": "Anna Müller",
        "to_address": "lead@prospect.example.org",
        "reply_to": "anna@reply.example.com",
        "subject": "Quick question, Léa",
        "text": "Hi Léa,\nshort one.",
        "html": "<p>Hi Léa,</p><p>short one.</p>",
        "message_id": mime.new_message_id("send1.example.com"),
        "date": datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
        "unsubscribe_url": "https://outreach.example.com/u/" + "T" * 90,
        "unsubscribe_mailto": "mailto:anna@send1.example.com?subject=unsubscribe",
        "tag": "42",
    }
    fields.update(overrides)
    return mime.Outgoing(**fields)  # type: ignore[arg-type]


def _parse(raw: bytes):
    return message_from_bytes(raw, policy=policy.default)


def test_it_builds_a_multipart_alternative_with_every_header() -> None:
    out = _outgoing(in_reply_to="<a@send1.example.com>", references="<a@send1.example.com>")
    raw = mime.build(out)
    mail = _parse(raw)

    assert b"\r\n" in raw and b"\n\n" not in raw.replace(b"\r\n", b"")
    assert mail["From"] == "Anna Müller <anna@send1.example.com>"
    assert mail["Reply-To"] == "anna@reply.example.com"
    assert mail["Subject"] == "Quick question, Léa"
    assert mail["Date"] == "Mon, 02 Mar 2026 10:00:00 +0000"
    assert mail["Message-ID"] == out.message_id
    assert mail["In-Reply-To"] == "<a@send1.example.com>"
    assert mail["References"] == "<a@send1.example.com>"
    assert mail["List-Unsubscribe"] == (
        f"<{out.unsubscribe_url}>, <mailto:anna@send1.example.com?subject=unsubscribe>"
    )
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["X-Outreach-Message"] == "42"
    assert [p.get_content_type() for p in mail.iter_parts()] == ["text/plain", "text/html"]
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


def test_it_makes_unique_message_ids_on_the_sending_domain() -> None:
    ids = {mime.new_message_id("Send1.Example.com") for _ in range(100)}
    assert len(ids) == 100
    assert all(i.startswith("<") and i.endswith("@send1.example.com>") for i in ids)


def test_the_date_header_says_each_message_s_own_zone_and_second() -> None:
    instant = datetime(2026, 3, 2, 10, 0, 0, 250_000, tzinfo=UTC)
    zones = [UTC, timezone(timedelta(hours=2)), ZoneInfo("America/New_York"), UTC]
    dates = []
    for zone in zones:  # the same instant: equal datetimes, each with its own header
        mail = _parse(mime.build(_outgoing(date=instant.astimezone(zone))))  # type: ignore[arg-type]
        dates.append(mail["Date"])
    assert dates == [
        "Mon, 02 Mar 2026 10:00:00 +0000",
        "Mon, 02 Mar 2026 12:00:00 +0200",
        "Mon, 02 Mar 2026 05:00:00 -0500",
        "Mon, 02 Mar 2026 10:00:00 +0000",
    ]
    later = instant + timedelta(seconds=1)
    assert _parse(mime.build(_outgoing(date=later)))["Date"] == format_datetime(later)  # type: ignore[arg-type]


@given(st.text(max_size=200))
def test_one_line_replaces_exactly_the_control_characters(value: str) -> None:
    controls = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
    assert mime.one_line(value) == controls.sub(" ", value).strip()


def test_it_flattens_lead_data_that_tries_to_add_headers() -> None:
    raw = mime.build(
        _outgoing(
            subject="Hi\r\nBcc: victim@example.net\nX-Evil: 1",
            from_name="Anna\r\nCc: other@example.net",
        )
    )
    mail = _parse(raw)
    assert mail["Bcc"] is None and mail["Cc"] is None and mail["X-Evil"] is None
    assert mail["Subject"] == "Hi Bcc: victim@example.net X-Evil: 1"


@pytest.mark.parametrize(
    "address",
    ["lead@prospect.example.org\r\nBcc: x@example.net", "a@b.example, c@d.example", "nobody"],
)
def test_it_refuses_anything_but_one_address(address: str) -> None:
    with pytest.raises(mime.MessageBuildError):
        mime.build(_outgoing(to_address=address))


def _lines(text: str) -> str:
    """``text`` as a reader gets it back: LF line ends, ending with one."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") else text + "\n"


@given(
    subject=st.text(min_size=1, max_size=300).filter(lambda s: mime.one_line(s)),
    name=st.text(max_size=80),
    text=st.text(max_size=2000),
    html=st.text(min_size=1, max_size=2000),
)
@settings(max_examples=150, deadline=None)
def test_what_it_builds_reads_back_as_what_went_in(
    subject: str, name: str, text: str, html: str
) -> None:
    raw = mime.build(_outgoing(subject=subject, from_name=name, text=text, html=html))
    # CRLF only, every line within RFC 5322's limit (quoted-printable keeps bodies to 76).
    assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    mail = _parse(raw)
    assert mail["Subject"] == mime.one_line(subject)
    # Whitespace runs in a name become one space (parsers collapse them anyway).
    assert mail["From"].addresses[0].display_name == " ".join(mime.one_line(name).split())
    plain, rich = mail.iter_parts()
    assert _lines(plain.get_content()) == _lines(text or " ")
    assert _lines(rich.get_content()) == _lines(html)


def test_a_text_only_message_is_a_single_part() -> None:
    raw = mime.build(_outgoing(html="", text="Hi,\n" + "long line " * 30))
    mail = _parse(raw)
    assert mail.get_content_type() == "text/plain" and not mail.is_multipart()
    assert _lines(mail.get_content()) == _lines("Hi,\n" + "long line " * 30)
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


def _dkim_key(selector: str = "s1") -> tuple[mime.DkimKey, bytes]:
    """A fresh DKIM key of send1.example.com, and its DNS record."""
    pem, record = dkim_key_pair(pkcs8=False)
    return mime.DkimKey(selector, "send1.example.com", pem), record


def test_the_dkim_signature_is_the_one_dkimpy_makes_by_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key, _ = _dkim_key()
    out = _outgoing(in_reply_to="<a@send1.example.com>", references="<a@send1.example.com>")
    raw = mime.build(out)
    monkeypatch.setattr(dkim.time, "time", lambda: 1_772_445_600.0)  # the t= tag
    signed = mime.sign(raw, key)
    # dkimpy alone: its own key parsing and its own (pure Python) RSA.
    monkeypatch.setattr(dkim, "RSASSA_PKCS1_v1_5_sign", dkim.crypto.RSASSA_PKCS1_v1_5_sign)
    monkeypatch.setattr(dkim, "parse_pem_private_key", dkim.crypto.parse_pem_private_key)
    assert mime.sign(raw, key) == signed
    assert signed.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/simple;")


def test_openssl_signs_the_bytes_dkimpy_signs() -> None:
    key, _ = _dkim_key()
    parsed = dkim.crypto.parse_pem_private_key(key.private_key_pem.encode())
    for algorithm in (hashlib.sha256, hashlib.sha1):
        for data in (b"", b"one header: value\r\n", bytes(range(256)) * 8):
            ours = mime._openssl_rsa_sign(algorithm(data), parsed)
            assert ours == dkim.crypto.RSASSA_PKCS1_v1_5_sign(algorithm(data), parsed)


def test_each_mailbox_signs_with_its_own_dkim_key() -> None:
    """Keys are parsed and kept once each: a second key is never signed with the first."""
    keys = [_dkim_key("s1"), _dkim_key("s2"), _dkim_key("s1")]
    for key, record in keys:
        signed = mime.build(_outgoing(), key)
        dns = _dns({key.selector.encode() + b"._domainkey.send1.example.com.": record})
        assert dkim.verify(signed, dnsfunc=dns)
        assert not dkim.verify(signed.replace(b"short one", b"short 0ne"), dnsfunc=dns)


def _dns(records: dict[bytes, bytes]) -> Callable[..., bytes]:
    def lookup(name: bytes, timeout: int = 5) -> bytes:
        return records.get(name, b"")

    return lookup
