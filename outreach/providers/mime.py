"""The standards-correct message (docs/rules.md, Content and compliance), as bytes ready for a
provider.

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

import binascii
import functools
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from email import charset
from email.header import Header
from email.utils import format_datetime, formataddr
from typing import Any

import dkim
import dkim.crypto
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

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

# C0 and C1 controls and the Unicode line and paragraph separators: none belongs in a
# one-line header value, and some readers take NEL or U+2028 for a line break.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# What a single bare address never contains (a list, a display name, a comment, a quote).
_NOT_IN_ADDRESS = re.compile(r'[ <>,;"()\[\]\\]')


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
    return f"<{os.urandom(16).hex()}@{sending_domain.strip().lower()}>"


def one_line(value: str) -> str:
    """``value`` with every control character (CR, LF, NUL, NEL...) and line separator
    replaced by a space."""
    value = value or ""
    if value.isprintable():
        # Every character _CONTROL matches is unprintable: nothing to replace (the usual
        # case, told by one C loop instead of a regex substitution).
        return value.strip()
    return _CONTROL.sub(" ", value).strip()


_UTF8_QP = charset.Charset("utf-8")
_UTF8_QP.header_encoding = charset.QP
_UTF8_QP.body_encoding = charset.QP
# RFC 5322's limit for a line; header values longer than this are folded.
_MAX_LINE = 998


def build(out: Outgoing, dkim_key: DkimKey | None = None) -> bytes:
    """The message as CRLF bytes, DKIM-signed when ``dkim_key`` is given.

    Written out directly rather than through ``email.message`` and its generator, which
    costs several times the SMTP exchange itself for a message this simple: every header is
    ASCII (non-ASCII text becomes RFC 2047 encoded words through :class:`email.header.Header`),
    every body part is UTF-8 in quoted-printable (``binascii.b2a_qp``: lines of at most 76
    characters whatever the content), and the multipart boundary starts with ``=_``, which
    quoted-printable can never produce, so no body can contain it.
    """
    headers = [
        ("From", _sender(out.from_address, out.from_name)),
        ("To", _address(out.to_address, "")),
    ]
    if out.reply_to:
        headers.append(("Reply-To", _sender(out.reply_to, "")))
    headers += [
        ("Subject", _text_header("Subject", out.subject)),
        ("Date", _date(out.date)),
        ("Message-ID", one_line(out.message_id)),
    ]
    if out.in_reply_to:
        headers.append(("In-Reply-To", one_line(out.in_reply_to)))
    if out.references:
        headers.append(("References", _text_header("References", out.references)))
    links = [f"<{one_line(out.unsubscribe_url)}>"]
    if out.unsubscribe_mailto:
        links.append(f"<{one_line(out.unsubscribe_mailto)}>")
    headers += [
        ("List-Unsubscribe", _text_header("List-Unsubscribe", ", ".join(links))),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        (TAG_HEADER, one_line(out.tag)),
    ]
    for name, value in out.extra_headers.items():
        name = _header_name(name)
        headers.append((name, _text_header(name, value)))
    headers.append(("MIME-Version", "1.0"))
    text_headers, text_body = _text_part("plain", out.text or " ")
    if out.html:
        boundary = f"=_{os.urandom(16).hex()}"
        headers.append(("Content-Type", f'multipart/alternative; boundary="{boundary}"'))
        html_headers, html_body = _text_part("html", out.html)
        body = (
            f"--{boundary}\r\n{_head(text_headers)}\r\n{text_body}\r\n"
            f"--{boundary}\r\n{_head(html_headers)}\r\n{html_body}\r\n"
            f"--{boundary}--\r\n"
        )
    else:
        headers += text_headers  # plain text only (warm-up mail): no single-part multipart
        body = text_body
    raw = f"{_head(headers)}\r\n{body}".encode("ascii")
    if dkim_key is not None:
        raw = sign(raw, dkim_key)
    return raw


def _date(when: datetime) -> str:
    """``format_datetime(when)``, formatted once per second: the messages built in one
    second share it. The key is all the value shows (the wall clock to the second and the
    offset), so two equal instants in different zones never share a value."""
    return _formatted_date(when.replace(microsecond=0, tzinfo=None), when.utcoffset(), when.tzinfo)


@functools.lru_cache(maxsize=8)
def _formatted_date(wall: datetime, offset: timedelta | None, zone: tzinfo | None) -> str:
    return format_datetime(wall.replace(tzinfo=zone))


def _head(headers: list[tuple[str, str]]) -> str:
    return "".join(f"{name}: {value}\r\n" for name, value in headers)


def _text_part(subtype: str, content: str) -> tuple[list[tuple[str, str]], str]:
    """A text part's headers and its UTF-8 content in quoted-printable, CRLF line ends."""
    lines = content.replace("\r\n", "\n").replace("\r", "\n")
    if not lines.endswith("\n"):
        lines += "\n"
    # b2a_qp keeps the line ends it finds first; CRLF from the first line on.
    encoded = binascii.b2a_qp(lines.replace("\n", "\r\n").encode("utf-8"), istext=True)
    headers = [
        ("Content-Type", f'text/{subtype}; charset="utf-8"'),
        ("Content-Transfer-Encoding", "quoted-printable"),
    ]
    return headers, encoded.decode("ascii")


# dkimpy makes the RSA signature in pure Python: two 1,024-bit modular powers, about 6 ms for a
# 2,048-bit key, more than everything else a send costs together. RSASSA-PKCS1-v1_5 is
# deterministic (the same digest and key always give the same bytes), so OpenSSL, through
# cryptography, makes the very signature dkimpy would, in a fraction of that time: dkimpy's
# signing step is this function for the whole process. The header around it (tags, folding,
# canonicalization) is still all dkimpy's.
def _openssl_rsa_sign(digest: Any, private_key: dict[str, int]) -> bytes:
    """``dkim.crypto.RSASSA_PKCS1_v1_5_sign``: ``digest`` (a hash object) signed with the key
    dkimpy parsed (its ASN.1 fields as numbers)."""
    algorithm = {"sha256": hashes.SHA256(), "sha1": hashes.SHA1()}[digest.name]  # noqa: S303
    key = _rsa_key(
        *(private_key[name] for name in ("modulus", "publicExponent", "privateExponent")),
        *(private_key[name] for name in ("prime1", "prime2", "exponent1", "exponent2")),
        private_key["coefficient"],
    )
    return key.sign(digest.digest(), padding.PKCS1v15(), Prehashed(algorithm))


@functools.lru_cache(maxsize=256)
def _rsa_key(
    n: int, e: int, d: int, p: int, q: int, dmp1: int, dmq1: int, iqmp: int
) -> rsa.RSAPrivateKey:
    """The OpenSSL key of a pool's few DKIM keys, built once each (building one checks it,
    which costs about as much as a signature). Keyed by every number of the key, so a key
    replaced in a mailbox's secrets is a new entry."""
    public = rsa.RSAPublicNumbers(e, n)
    return rsa.RSAPrivateNumbers(p, q, d, dmp1, dmq1, iqmp, public).private_key()


dkim.RSASSA_PKCS1_v1_5_sign = _openssl_rsa_sign
# dkimpy reads the PEM key (base64 and ASN.1, in Python) for every signature: a third of what
# signing cost once OpenSSL signs. Read once per key; dkimpy never changes what it returns.
dkim.parse_pem_private_key = functools.lru_cache(maxsize=256)(dkim.crypto.parse_pem_private_key)


def sign(raw: bytes, key: DkimKey) -> bytes:
    """``raw`` with its DKIM-Signature header (dkimpy's, relaxed/simple) in front."""
    head = raw.split(b"\r\n\r\n", 1)[0].lower()
    signature = dkim.sign(
        raw,
        key.selector.encode(),
        key.domain.encode(),
        key.private_key_pem.encode(),
        include_headers=[h for h in DKIM_HEADERS if _has_header(head, h)],
        linesep=b"\r\n",
    )
    return signature + raw


def _has_header(head: bytes, name: bytes) -> bool:
    """Whether ``head`` (a message's header block, lowercased) has the header ``name``."""
    return head.startswith(name.lower() + b":") or b"\r\n" + name.lower() + b":" in head


@functools.lru_cache(maxsize=4096)
def _sender(addr_spec: str, display_name: str) -> str:
    """:func:`_address` of a mailbox: a pool's few senders are parsed and encoded once."""
    return _address(addr_spec, display_name)


def _address(addr_spec: str, display_name: str) -> str:
    addr = one_line(addr_spec)
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain or _NOT_IN_ADDRESS.search(addr):
        raise MessageBuildError(f"not a single email address: {addr!r}")
    if not local.isascii():
        raise MessageBuildError(f"non-ASCII local part needs SMTPUTF8: {addr!r}")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise MessageBuildError(f"invalid domain in {addr!r}: {exc}") from exc
    # Any run of whitespace in a name becomes one space: readers' parsers collapse it (and
    # read some Unicode spaces inside encoded words as plain ones) anyway.
    name = " ".join(one_line(display_name).split())
    return formataddr((name, f"{local}@{domain}"), charset=_UTF8_QP)


def _text_header(name: str, value: str) -> str:
    """A header value on one logical line: as it is when short and ASCII, else RFC 2047
    encoded words and/or folded lines (each physical line within the RFC 5322 limit)."""
    text = one_line(value)
    if text.isascii() and len(name) + 2 + len(text) <= _MAX_LINE:
        return text
    header = Header(text, _UTF8_QP if not text.isascii() else "us-ascii", header_name=name)
    return header.encode(linesep="\r\n")


def _header_name(name: str) -> str:
    name = one_line(name)
    if not name or any(not (33 <= ord(c) <= 126) or c == ":" for c in name):
        raise MessageBuildError(f"not a header name: {name!r}")
    return name
