"""Signed tokens for links in sent mail: HMAC under ``SECRET_KEY``, one salt per purpose.

Every link a message carries that must not be forged (unsubscribe, open pixel, tracked link)
is signed here, so there is one place that decides how.
"""

from __future__ import annotations

from typing import Any

from django.core import signing

# Longer than any token this module makes for a message link (a tracked URL is capped at
# outreach.events.tracking.MAX_URL): anything longer is refused before it is verified.
MAX_TOKEN = 4096


def sign(value: Any, purpose: str) -> str:
    """``value`` (JSON-serializable) as a URL-safe token that only this server can make."""
    return signing.dumps(value, salt=purpose, compress=False)


def unsign(token: str, purpose: str) -> Any | None:
    """The value a token stands for, or None when it is forged, tampered with or malformed."""
    if not token or len(token) > MAX_TOKEN:
        return None
    try:
        return signing.loads(token, salt=purpose)
    except (signing.BadSignature, ValueError, UnicodeError):
        return None
