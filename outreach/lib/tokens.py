"""Signed tokens for links in sent mail: HMAC under the link key, one salt per purpose.

Every link a message carries that must not be forged (unsubscribe, open pixel, tracked link)
is signed here, so there is one place that decides how.

Signed with ``OUTREACH_UNSUBSCRIBE_KEY``, not ``SECRET_KEY``: a link must keep working long
after its message was sent (an unsubscribe link 30 days at least, by US law), so rotating the
site's key must not kill it. Tokens are checked against the current key, then its fallbacks,
then the keys that signed links before the link key existed (``SECRET_KEY`` and its
fallbacks).
"""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings
from django.core import signing

# Longer than any token this module makes for a message link (a tracked URL is capped at
# outreach.events.tracking.MAX_URL): anything longer is refused before it is verified.
MAX_TOKEN = 4096


def sign(value: Any, purpose: str) -> str:
    """``value`` (JSON-serializable) as a URL-safe token that only this server can make.

    The token :func:`django.core.signing.dumps` makes (uncompressed), from a signer kept per
    key and purpose: every message signs at least its unsubscribe link, and building the
    signer each time cost as much as signing."""
    return _signer(settings.OUTREACH_UNSUBSCRIBE_KEY, purpose).sign_object(value)


@functools.lru_cache(maxsize=32)
def _signer(key: str, purpose: str) -> signing.TimestampSigner:
    # Keyed by the key itself: a rotated key (settings changed at run time) gets its own.
    # A signer holds no state between calls, so threads share it.
    return signing.TimestampSigner(key=key, salt=purpose)


def unsign(token: str, purpose: str) -> Any | None:
    """The value a token stands for, or None when it is forged, tampered with or malformed."""
    if not token or len(token) > MAX_TOKEN:
        return None
    fallbacks: list[str | bytes] = [
        *settings.OUTREACH_UNSUBSCRIBE_KEY_FALLBACKS,
        settings.SECRET_KEY,
        *settings.SECRET_KEY_FALLBACKS,
    ]
    try:
        return signing.loads(
            token, key=settings.OUTREACH_UNSUBSCRIBE_KEY, fallback_keys=fallbacks, salt=purpose
        )
    except (signing.BadSignature, ValueError, UnicodeError):
        return None
