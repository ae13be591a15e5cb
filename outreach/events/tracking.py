"""Open and click tracking: off unless a campaign turns it on (see docs/tracking.md).

Building a message (the sending engine calls :func:`instrument`):

- the tracking links live on the sending domain's own tracking host (``t.<domain>`` unless
  pool.toml names another host of that domain), never on one host shared by every domain,
  which would tie the domains together and carry a shared reputation;
- an open is a 1x1 GIF at ``/o/<token>``, a click goes through ``/c/<token>``; both tokens are
  signed by :mod:`outreach.lib.tokens` (as unsubscribe links are), so they cannot be guessed
  or altered, and a click token carries the exact original URL: a tampered token redirects
  nowhere;
- only the HTML part changes: the text part keeps the readable original links, and the
  unsubscribe link is never rewritten.

Recording (the views in :mod:`outreach.events.tracking_views` call :func:`record_visit`):
each fetch is classified (:mod:`outreach.events.visitors`) and stored as an ``opened`` or
``clicked`` event once per message and visitor class; a repeat is answered from memory
without touching the database.
"""

from __future__ import annotations

import html
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from outreach.campaigns.models import Message
from outreach.events import normalize as n
from outreach.events import visitors
from outreach.events.models import Event
from outreach.events.record import record
from outreach.lib import clock, tokens
from outreach.pool.models import Domain

OPEN_PURPOSE = "outreach.tracking.open"
CLICK_PURPOSE = "outreach.tracking.click"
SOURCE = "tracking"
# A link longer than this is left as it is (and untracked): its token would make the tracked
# URL longer than some clients and proxies accept.
MAX_URL = 2000
# A tracking URL never needs a query string; some clients append a short one. Anything longer
# is refused with 400 before any work.
MAX_QUERY = 1024

# The 1x1 transparent GIF.
PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00"
    b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)

_LINK = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


# --- building -------------------------------------------------------------------------------


def base_url(host: str) -> str:
    """``scheme://host`` of a tracking host: the scheme of ``OUTREACH_BASE_URL`` (https in
    production)."""
    scheme = urlsplit(settings.OUTREACH_BASE_URL).scheme or "https"
    return f"{scheme}://{host}"


def open_url(host: str, message_pk: int) -> str:
    return f"{base_url(host)}/o/{tokens.sign(message_pk, OPEN_PURPOSE)}"


def click_url(host: str, message_pk: int, index: int, url: str, *, opens: bool) -> str:
    """The tracked form of link number ``index`` of a message. ``opens``: the message carries
    the pixel too (a click with no open before it then looks like a scanner)."""
    token = tokens.sign([message_pk, index, url, int(opens)], CLICK_PURPOSE)
    return f"{base_url(host)}/c/{token}"


def instrument(
    body_html: str,
    *,
    message_pk: int,
    host: str,
    opens: bool,
    clicks: bool,
    unsubscribe_url: str,
) -> str:
    """The HTML part with its http(s) links rewritten (``clicks``) and the pixel added
    (``opens``); the unsubscribe link, mail and phone links stay as they are."""
    if not body_html or not (opens or clicks):
        return body_html
    out = body_html
    if clicks:
        index = 0

        def rewrite(match: re.Match[str]) -> str:
            nonlocal index
            url = html.unescape(match.group(3)).strip()
            if not _trackable(url, unsubscribe_url):
                return match.group(0)
            tracked = click_url(host, message_pk, index, url, opens=opens)
            index += 1
            return f"{match.group(1)}{match.group(2)}{html.escape(tracked)}{match.group(2)}"

        out = _LINK.sub(rewrite, out)
    if opens:
        pixel = _pixel(open_url(host, message_pk))
        ends = list(_BODY_END.finditer(out))
        if ends:
            at = ends[-1].start()
            out = f"{out[:at]}{pixel}{out[at:]}"
        else:
            out = f"{out}{pixel}"
    return out


def _pixel(url: str) -> str:
    """The pixel as the background of a 1x1 table cell, not an ``<img>``: any image in a short
    HTML message adds SpamAssassin's HTML_IMAGE_ONLY_* points (0.6 to 1.4 for the length of a
    cold email), a background adds none. The price: Outlook for Windows does not load cell
    backgrounds, so its readers' opens go unseen (docs/tracking.md)."""
    src = html.escape(url)
    return (
        '<table role="presentation" cellpadding="0" cellspacing="0" border="0"><tr>'
        f'<td background="{src}" style="background-image:url(\'{src}\');width:1px;height:1px;'
        'font-size:1px;line-height:1px">&#8203;</td></tr></table>'
    )


def _trackable(url: str, unsubscribe_url: str) -> bool:
    if url == unsubscribe_url or url.startswith(f"{settings.OUTREACH_BASE_URL}/u/"):
        return False
    if len(url) > MAX_URL:
        return False
    parts = urlsplit(url)
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def tracking_hosts() -> set[str]:
    """The tracking hosts of the pool's domains that are not retired."""
    domains = Domain.objects.exclude(state=Domain.State.RETIRED)
    return {d.tracking_hostname for d in domains.only("name", "tracking_host")}


# --- reading tokens ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ClickTarget:
    message_pk: int
    index: int
    url: str
    opens_tracked: bool


def read_open(token: str) -> int | None:
    value = tokens.unsign(token, OPEN_PURPOSE)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def read_click(token: str) -> ClickTarget | None:
    """The link a click token stands for, or None: forged, tampered or not an http(s) URL."""
    value = tokens.unsign(token, CLICK_PURPOSE)
    if not isinstance(value, list) or len(value) != 4:
        return None
    pk, index, url, opens = value
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (pk, index, opens)):
        return None
    if not isinstance(url, str) or not _trackable(url, ""):
        return None
    return ClickTarget(pk, index, url, bool(opens))


# --- recording --------------------------------------------------------------------------------


class _Recent:
    """A bounded, thread-safe memory of keys seen lately (oldest forgotten first)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> bool:
        """Remember ``key``; False when it was already there."""
        with self._lock:
            known = key in self._items
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)
            return not known

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


@dataclass(frozen=True)
class RatePolicy:
    """Fetches of one message's tracking URLs answered per ``seconds``; beyond that, 429.

    A person opens a message a few times; a proxy or a gateway a few more. Dozens a minute is
    a loop or an attack, and answering it costs nothing but must not cost the database."""

    requests: int = 30
    seconds: float = 60.0


RATE = RatePolicy()


@dataclass(frozen=True)
class MessageFacts:
    to_email: str
    sent_at: datetime | None


# Per process: what each message's first fetch read, the (message, kind, visitor) already
# stored, and each message's recent fetch times.
_facts = _Recent(50_000)
_stored = _Recent(200_000)
_rates = _Recent(50_000)


def reset() -> None:
    """Forget what this process remembers (tests, and after a restore)."""
    for cache in (_facts, _stored, _rates):
        cache.clear()


def message_facts(message_pk: int) -> MessageFacts | None:
    """What classification needs of a message; None when it does not exist (deleted)."""
    facts = _facts.get(message_pk)
    if facts is None:
        row = Message.objects.filter(pk=message_pk).values_list("to_email", "sent_at").first()
        if row is None:
            return None
        facts = MessageFacts(to_email=row[0], sent_at=row[1])
        _facts.put(message_pk, facts)
    return facts


def allow(message_pk: int, now: float | None = None) -> bool:
    """Whether one more fetch of this message's tracking URLs is answered (:data:`RATE`)."""
    now = time.monotonic() if now is None else now
    window = _rates.get(message_pk) or (now, 0)
    start, count = window
    if now - start >= RATE.seconds:
        start, count = now, 0
    _rates.put(message_pk, (start, count + 1))
    return count < RATE.requests


def opened_before(message_pk: int) -> bool:
    """Whether the message's pixel has been fetched (by anyone)."""
    if any(_stored.get((message_pk, "o", v)) for v in (visitors.HUMAN, visitors.MACHINE)):
        return True
    return Event.objects.filter(
        message_id=message_pk, type=Event.Type.OPENED, source=SOURCE
    ).exists()


def record_visit(
    message_pk: int,
    facts: MessageFacts,
    visit: visitors.Visit,
    *,
    kind: str,
    user_agent: str,
    ip: str,
    extra: dict[str, Any] | None = None,
) -> bool:
    """Store an ``opened`` (kind "o") or ``clicked`` (kind "c") event, once per message, kind
    and visitor class; True when this call stored it.

    The first call per key writes (or finds the row a concurrent request or another process
    wrote: the unique ``provider_event_id`` keeps it to one); later calls in this process are
    answered from memory and write nothing.
    """
    key = (message_pk, kind, visit.visitor)
    if _stored.get(key):
        return False
    event = record(
        n.Incoming(
            source=SOURCE,
            type=n.OPENED if kind == "o" else n.CLICKED,
            recipient=facts.to_email.lower(),
            occurred_at=clock.now(),
            provider_event_id=f"{kind}:{message_pk}:{visit.visitor}",
            outreach_message_id=message_pk,
            raw={
                "visitor": visit.visitor,
                "reason": visit.reason,
                "user_agent": visitors.clean_agent(user_agent),
                "ip": ip,
                **(extra or {}),
            },
        )
    )
    _stored.put(key, True)
    return event is not None


def seconds_since_sent(facts: MessageFacts) -> float | None:
    if facts.sent_at is None:
        return None
    return (clock.now() - facts.sent_at).total_seconds()
