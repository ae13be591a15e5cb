"""Unsubscribe tokens: HMAC-signed message ids, not guessable, carried in every message."""

from __future__ import annotations

from django.conf import settings
from django.core import signing

_SALT = "outreach.unsubscribe"


def make_token(message_id: int) -> str:
    return signing.dumps(message_id, salt=_SALT, compress=False)


def read_token(token: str) -> int | None:
    """The message id a token stands for, or None when it is forged or malformed."""
    try:
        value = signing.loads(token, salt=_SALT)
    except signing.BadSignature:
        return None
    return value if isinstance(value, int) else None


def unsubscribe_url(message_id: int) -> str:
    return f"{settings.OUTREACH_BASE_URL}/u/{make_token(message_id)}"
