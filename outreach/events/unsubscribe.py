"""Unsubscribe tokens: HMAC-signed message ids, not guessable, carried in every message.

Signed with ``OUTREACH_UNSUBSCRIBE_KEY``, not ``SECRET_KEY``: a link must keep working long
after its message was sent (30 days at least, by US law), so rotating the site's key must not
kill it. Tokens are checked against the current key, then its fallbacks, then the keys that
signed them before the unsubscribe key existed (``SECRET_KEY`` and its fallbacks).
"""

from __future__ import annotations

from django.conf import settings
from django.core import signing

_SALT = "outreach.unsubscribe"


def make_token(message_id: int) -> str:
    return signing.dumps(
        message_id, key=settings.OUTREACH_UNSUBSCRIBE_KEY, salt=_SALT, compress=False
    )


def read_token(token: str) -> int | None:
    """The message id a token stands for, or None when it is forged or malformed."""
    fallbacks: list[str | bytes] = [
        *settings.OUTREACH_UNSUBSCRIBE_KEY_FALLBACKS,
        settings.SECRET_KEY,
        *settings.SECRET_KEY_FALLBACKS,
    ]
    try:
        value = signing.loads(
            token, key=settings.OUTREACH_UNSUBSCRIBE_KEY, fallback_keys=fallbacks, salt=_SALT
        )
    except signing.BadSignature:
        return None
    return value if isinstance(value, int) else None


def unsubscribe_url(message_id: int) -> str:
    return f"{settings.OUTREACH_BASE_URL}/u/{make_token(message_id)}"
