"""What one inbound mail says, read without trusting it (pure, no database).

:func:`read_content` never raises: broken MIME, unknown charsets, a missing body or a huge
attachment each become a note in ``problems`` and the rest of the mail is still read.

- Text: the ``text/plain`` parts, decoded with their charset (an unknown one is read as UTF-8
  with replacement characters); an HTML-only mail gets its text from the HTML.
- HTML: made safe with nh3 (Ammonia): no scripts, no event handlers, no styles, no images,
  so a page showing it loads nothing the sender chose.
- Attachments: name, size and type only; their bytes are never kept.
- The visible reply: the newest part of the text, with quoted history and signature split off
  by mail-parser-reply (it knows the "On … wrote:" lines of English, German, French, Spanish
  and more mail clients).
"""

from __future__ import annotations

import codecs
import email.utils
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message as EmailMessage
from email.parser import BytesParser
from email.policy import compat32
from typing import Any

import nh3
from mailparser_reply import EmailReplyParser

from outreach.campaigns.plaintext import html_to_text
from outreach.events.headers import header_text, mail_date, message_ids

# Caps on what is stored of one mail: enough for any human reply, bounded for a hostile one.
MAX_TEXT = 100_000
MAX_HTML = 200_000
MAX_HEADERS = 100
MAX_HEADER_VALUE = 2_000
REPLY_LANGUAGES = ["en", "de", "fr", "es"]
# The longest first line of a signature ("Mit freundlichen Grüßen", "Thanks for your time,").
SIGN_OFF_WORDS = 4

# The line that opens a quoted or forwarded mail in Outlook and its kin, in the four languages.
_ORIGINAL_MESSAGE = re.compile(
    r"\s*-{3,}\s*(original message|forwarded message|mensaje original|mensaje reenviado|"
    r"ursprüngliche nachricht|originalnachricht|weitergeleitete nachricht|message d'origine|"
    r"message original|message transféré)\s*-{3,}\s*$",
    re.IGNORECASE,
)

# Allowed HTML: nh3's safe defaults without images (a remote image is a tracking pixel and a
# request the sender controls; an inline one is an attachment, listed as such).
SAFE_TAGS = set(nh3.ALLOWED_TAGS) - {"img"}


@dataclass
class Content:
    key: str  # the Message-ID, else a digest of the bytes: how a mail is stored once
    message_id: str = ""
    in_reply_to: str = ""
    references: list[str] = field(default_factory=list)
    from_address: str = ""
    from_name: str = ""
    to: str = ""
    subject: str = ""
    date: datetime | None = None
    headers: list[list[str]] = field(default_factory=list)
    text: str = ""
    html: str = ""
    visible: str = ""
    signature: str = ""
    quoted: str = ""
    attachments: list[dict[str, Any]] = field(default_factory=list)
    size: int = 0
    problems: list[str] = field(default_factory=list)
    auto_submitted: bool = False  # a header says a machine wrote it
    is_report: bool = False  # a DSN or feedback report

    def header(self, name: str) -> str:
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), "")


def read_content(raw: bytes, mail: EmailMessage | None = None) -> Content:
    """What ``raw`` says (``mail``: the same bytes already parsed with compat32)."""
    content = Content(key="sha256:" + hashlib.sha256(raw).hexdigest(), size=len(raw))
    try:
        mail = mail or BytesParser(policy=compat32).parsebytes(raw)
    except Exception as exc:  # the stdlib parser is lenient; this is the last guard
        content.problems.append(f"unparseable mail: {type(exc).__name__}")
        content.text = raw[:MAX_TEXT].decode("utf-8", errors="replace")
        content.visible = content.text
        return content
    _read_headers(mail, content)
    texts: list[str] = []
    htmls: list[str] = []
    for part in mail.walk():
        for defect in getattr(part, "defects", []):
            note = f"MIME defect: {type(defect).__name__}"
            if note not in content.problems:
                content.problems.append(note)
        if part.is_multipart():
            continue
        kind = part.get_content_type()
        disposition = str(part.get("Content-Disposition", "")).split(";")[0].strip().lower()
        filename = _filename(part)
        if disposition == "attachment" or filename or not kind.startswith("text/"):
            if kind.startswith("message/") or kind == "text/rfc822-headers":
                continue  # a report's parts: read by the DSN parser
            content.attachments.append(_attachment(part, kind, filename))
            continue
        if kind == "text/plain":
            texts.append(_decode(part, content))
        elif kind == "text/html":
            htmls.append(_decode(part, content))
    html = "\n".join(htmls)
    content.html = nh3.clean(html, tags=SAFE_TAGS)[:MAX_HTML] if html else ""
    text = "\n".join(texts).strip()
    if not text and html:
        text = html_to_text(html)
    content.text = text[:MAX_TEXT]
    _split_reply(content)
    return content


def _read_headers(mail: EmailMessage, content: Content) -> None:
    for name, _ in mail.items()[:MAX_HEADERS]:
        content.headers.append([name, header_text(mail, name)[:MAX_HEADER_VALUE]])
    content.message_id = header_text(mail, "Message-ID").strip()[:500]
    if content.message_id:
        content.key = content.message_id[:255]
    content.in_reply_to = header_text(mail, "In-Reply-To").strip()[:500]
    content.references = message_ids(mail)
    name, address = email.utils.parseaddr(header_text(mail, "From"))
    content.from_name = name[:200]
    content.from_address = address.strip().lower()[:254] if "@" in address else ""
    content.to = header_text(mail, "To")[:2000]
    content.subject = header_text(mail, "Subject")[:2000]
    content.date = mail_date(mail)
    auto = header_text(mail, "Auto-Submitted").strip().lower()
    precedence = header_text(mail, "Precedence").strip().lower()
    content.auto_submitted = bool(
        (auto and auto != "no")
        or mail.get("X-Autoreply")
        or mail.get("X-Autorespond")
        or precedence in ("auto_reply", "auto-reply", "bulk", "junk")
    )
    content.is_report = mail.get_content_type() == "multipart/report"


def _filename(part: EmailMessage) -> str:
    try:
        name = part.get_filename() or ""
    except (ValueError, LookupError, UnicodeError):
        return "(unreadable name)"
    return str(email.utils.collapse_rfc2231_value(name))[:255] if name else ""


def _attachment(part: EmailMessage, kind: str, filename: str) -> dict[str, Any]:
    return {"name": filename or "(no name)", "size": _size(part), "content_type": kind}


def _size(part: EmailMessage) -> int:
    """The decoded size of a part. Base64 is counted, not decoded: a 30 MB attachment is
    never copied into memory again just to be measured."""
    payload = part.get_payload()
    if not isinstance(payload, str):
        return 0
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    if encoding == "base64":
        data = payload.encode("ascii", errors="ignore").translate(None, b" \t\r\n")
        return max(0, len(data) * 3 // 4 - data[-2:].count(b"="))
    decoded = part.get_payload(decode=True)
    return len(decoded) if isinstance(decoded, bytes) else len(payload)


def _decode(part: EmailMessage, content: Content) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        codecs.lookup(charset)
    except LookupError:
        content.problems.append(f"unknown charset {charset[:40]!r}, read as UTF-8")
        charset = "utf-8"
    return payload[: MAX_TEXT * 4].decode(charset, errors="replace")


def _split_reply(content: Content) -> None:
    """The newest reply, its signature and the quoted history (mail-parser-reply)."""
    if not content.text:
        return
    try:
        replies = EmailReplyParser(languages=list(REPLY_LANGUAGES)).read(content.text).replies
    except Exception as exc:  # a parser bug must not lose the mail: keep the whole text
        content.problems.append(f"reply split failed: {type(exc).__name__}")
        content.visible = content.text
        return
    if not replies:
        content.visible = content.text
        return
    first = replies[0]
    body, signature = first.body, (first.signatures or "").strip()
    if signature and len(signature.splitlines()[0].split()) > SIGN_OFF_WORDS:
        # The parser opens a signature at any line starting "Thanks"/"Gracias"…; a sign-off
        # is a few words, "Thanks, but we are not interested." is the reply itself.
        body, signature = first.full_body, ""
    # Quoted lines (">") left in the newest part are history whose header line the parser
    # did not know.
    lines = body.splitlines()
    # The parser leaves the separator and the header lines of the quoted mail ("-----Mensaje
    # original-----", "De: …", "Enviado el: …") in the newest part when it does not know
    # them: they are history, not the reply.
    for number, line in enumerate(lines):
        if _ORIGINAL_MESSAGE.match(line):
            lines, history = lines[:number], "\n".join(lines[number:]).strip()
            content.quoted = history
            break
    content.visible = "\n".join(line for line in lines if not line.lstrip().startswith(">"))
    content.visible = content.visible.strip()
    content.signature = signature
    older = "\n\n".join(r.full_body for r in replies[1:]).strip()
    content.quoted = "\n\n".join(part for part in (content.quoted, older) if part)
    quoted_inline = [line for line in lines if line.lstrip().startswith(">")]
    if quoted_inline and not content.quoted:
        content.quoted = "\n".join(quoted_inline)
