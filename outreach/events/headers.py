"""Reading headers of inbound mail without trusting them (pure helpers of the IMAP reader)."""

from __future__ import annotations

import email.header
import email.utils
import re
from datetime import datetime
from email.message import Message as EmailMessage
from typing import Any

from outreach.lib import clock


def message_ids(mail: EmailMessage) -> list[str]:
    ids = []
    for name in ("In-Reply-To", "References"):
        ids.extend(re.findall(r"<[^<>\s]+>", header_text(mail, name)))
    return list(dict.fromkeys(ids))[:50]


def header_text(mail: EmailMessage | None, name: str) -> str:
    if mail is None:
        return ""
    value = mail.get(name)
    if value is None:
        return ""
    try:
        decoded = email.header.make_header(email.header.decode_header(str(value)))
        return str(decoded)
    except (ValueError, LookupError, UnicodeError):
        return str(value)


def address_of(value: Any) -> str:
    _, address = email.utils.parseaddr(str(value or ""))
    return address.strip().lower()[:254] if "@" in address else ""


def mail_date(mail: EmailMessage) -> datetime:
    try:
        when = email.utils.parsedate_to_datetime(header_text(mail, "Date"))
    except (TypeError, ValueError, IndexError):
        return clock.now()
    if when is None or when.tzinfo is None:
        return clock.now()
    return when
