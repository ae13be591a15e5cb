"""Unsubscribe tokens: HMAC-signed message ids, not guessable, carried in every message.

Signed by outreach.lib.tokens with the link key, which outlives a rotation of ``SECRET_KEY``:
a link must keep working 30 days at least after its message was sent (US law).
"""

from __future__ import annotations

from django.conf import settings

from outreach.lib import tokens

_SALT = "outreach.unsubscribe"


def make_token(message_id: int) -> str:
    return tokens.sign(message_id, _SALT)


def read_token(token: str) -> int | None:
    """The message id a token stands for, or None when it is forged or malformed."""
    value = tokens.unsign(token, _SALT)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def unsubscribe_url(message_id: int) -> str:
    return f"{settings.OUTREACH_BASE_URL}/u/{make_token(message_id)}"
