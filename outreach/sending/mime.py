"""The standards-correct message (BRIEF §3 Content and compliance), as bytes ready for a provider.

``multipart/alternative`` (text first, then HTML; text alone when there is no HTML), a
unique ``Message-ID`` on the sending domain, ``Date``, ``From`` with its display name, optional
``Reply-To``, ``List-Unsubscribe`` with an https one-click URL and a mailto,
``List-Unsubscribe-Post`` (RFC 8058), ``In-Reply-To`` and ``References`` on follow-ups, and
``X-Outreach-Message`` so events find the message again.

Lead data reaches the subject, the body and the recipient address. None of it can add a header:
every header value is flattened to one line (CR, LF and other control characters become spaces)
before it is set, and addresses are parsed as single addresses.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from email import charset, policy
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr

import dkim

TAG_HEADER = "X-Outreach-Message"

# Signed so that neither the visible content nor the unsubscribe and threading headers can be
# changed in transit without breaking the signature.
DKIM_HEADERS = [
    b"From",
    b"To",
    b"Subject",
    b"Date",
    b"Message-ID",
    b"Reply-To",
    b"In-Reply-To",
    b"References",
    b"List-Unsubscribe",
    b"List-Unsubscribe-Post",
    b"MIME-Version",
    b"Content-Type",
]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class MessageBuildError(ValueError):
    """The message cannot be built (invalid address): a permanent failure of this message."""


@dataclass(frozen=True)
class DkimKey:
    selector: str
    domain: str
    private_key_pem: str


@dataclass(frozen=True)
class Outgoing:
    """Everything the message is made of, already rendered."""

    from_address: str
    to_address: str
    subject: str
    text: str
    html: str
    message_id: str  # "<...@sending.domain>"
    date: datetime
    unsubscribe_url: str
    tag: str
    from_name: str = ""
    reply_to: str = ""
    unsubscribe_mailto: str = ""
    in_reply_to: str = ""
    references: str = ""
    extra_headers: dict[str, str] = field(default_factory=dict)


def new_message_id(sending_domain: str) -> str:
    """A unique Message-ID on the sending domain (random, reveals nothing about the sender)."""
    return f"<{uuid.uuid4().hex}@{sending_domain.strip().lower()}>"


def one_line(value: str) -> str:
    """``value`` with every control character (CR, LF, NUL...) replaced by a space."""
    return _CONTROL.sub(" ", value or "").strip()


# compat32 with CRLF and no folding below the RFC 5322 line limit: several times faster than
# the ``email.policy.SMTP`` generator, and long List-Unsubscribe URLs stay on one line.
_POLICY = policy.compat32.clone(linesep="\r\n", max_line_length=998)
_UTF8_QP = charset.Charset("utf-8")
_UTF8_QP.header_encoding = charset.QP
_UTF8_QP.body_encoding = charset.QP


def build(out: Outgoing, dkim_key: DkimKey | None = None) -> bytes:
    """The message as CRLF bytes, DKIM-signed when ``dkim_key`` is given."""
    # MIMEText takes a Charset too (typeshed says str): it picks quoted-printable from it.
    text = MIMEText(out.text or " ", "plain", _UTF8_QP, policy=_POLICY)  # type: ignore[arg-type]
    msg: Message
    if out.html:
        msg = MIMEMultipart("alternative", policy=_POLICY)
        msg.attach(text)
        msg.attach(MIMEText(out.html, "html", _UTF8_QP, policy=_POLICY))  # type: ignore[arg-type]
    else:
        msg = text  # plain text only (warm-up mail): no single-part multipart
    msg["From"] = _address(out.from_address, out.from_name)
    msg["To"] = _address(out.to_address, "")
    if out.reply_to:
        msg["Reply-To"] = _address(out.reply_to, "")
    msg["Subject"] = _text_header(out.subject)  # type: ignore[assignment]
    msg["Date"] = format_datetime(out.date)
    msg["Message-ID"] = one_line(out.message_id)
    if out.in_reply_to:
        msg["In-Reply-To"] = one_line(out.in_reply_to)
    if out.references:
        msg["References"] = one_line(out.references)
    links = [f"<{one_line(out.unsubscribe_url)}>"]
    if out.unsubscribe_mailto:
        links.append(f"<{one_line(out.unsubscribe_mailto)}>")
    msg["List-Unsubscribe"] = ", ".join(links)
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg[TAG_HEADER] = one_line(out.tag)
    for name, value in out.extra_headers.items():
        msg[one_line(name)] = _text_header(value)  # type: ignore[assignment]
    raw = msg.as_bytes(policy=_POLICY)
    if dkim_key is not None:
        raw = sign(raw, dkim_key)
    return raw


def sign(raw: bytes, key: DkimKey) -> bytes:
    signature = dkim.sign(
        raw,
        key.selector.encode(),
        key.domain.encode(),
        key.private_key_pem.encode(),
        include_headers=[h for h in DKIM_HEADERS if _has_header(raw, h)],
        linesep=b"\r\n",
    )
    return signature + raw


def _has_header(raw: bytes, name: bytes) -> bool:
    head = raw.split(b"\r\n\r\n", 1)[0].lower()
    return head.startswith(name.lower() + b":") or b"\r\n" + name.lower() + b":" in head


def _address(addr_spec: str, display_name: str) -> str:
    addr = one_line(addr_spec)
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain or any(c in addr for c in ' <>,;"()[]\\'):
        raise MessageBuildError(f"not a single email address: {addr!r}")
    if not local.isascii():
        raise MessageBuildError(f"non-ASCII local part needs SMTPUTF8: {addr!r}")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise MessageBuildError(f"invalid domain in {addr!r}: {exc}") from exc
    return formataddr((one_line(display_name), f"{local}@{domain}"), charset=_UTF8_QP)


def _text_header(value: str) -> str | Header:
    text = one_line(value)
    return text if text.isascii() else Header(text, _UTF8_QP)
