"""One vocabulary for events: provider payloads (through anymail) into :class:`Incoming`.

Everything here is pure: no database. :func:`from_anymail` turns django-anymail's
``AnymailTrackingEvent`` into our normalized form, deciding hard/soft bounces and policy
blocks from the provider's own fields; the raw payload always travels with it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from anymail.signals import AnymailTrackingEvent, EventType, RejectReason

from outreach.lib import clock, eventtypes

if TYPE_CHECKING:
    from outreach.providers.simulated.sender import Notification


# The words of our vocabulary, owned by outreach.lib.eventtypes (callers write n.BOUNCED).
DELIVERED = eventtypes.DELIVERED
BOUNCED = eventtypes.BOUNCED
DEFERRED = eventtypes.DEFERRED
COMPLAINED = eventtypes.COMPLAINED
UNSUBSCRIBED = eventtypes.UNSUBSCRIBED
OPENED = eventtypes.OPENED
CLICKED = eventtypes.CLICKED
REPLIED = eventtypes.REPLIED
AUTO_REPLIED = eventtypes.AUTO_REPLIED
BLOCKED = eventtypes.BLOCKED
HARD = eventtypes.HARD
SOFT = eventtypes.SOFT

# Where the sending engine leaves our message id: a header on the message and/or provider
# metadata (SES X-Metadata, Mailgun user-variables, Postmark Metadata, SendGrid custom args).
MESSAGE_ID_HEADER = "X-Outreach-Message"
METADATA_KEYS = ("outreach_message_id", "outreach-message", "x-outreach-message", "message_pk")

_SIMPLE_TYPES = {
    EventType.DELIVERED: DELIVERED,
    EventType.DEFERRED: DEFERRED,
    EventType.COMPLAINED: COMPLAINED,
    EventType.UNSUBSCRIBED: UNSUBSCRIBED,
    EventType.OPENED: OPENED,
    EventType.CLICKED: CLICKED,
    EventType.AUTORESPONDED: AUTO_REPLIED,
}

# An extended status 5.7.x together with words of policy: the receiver refuses *us* (domain or
# IP reputation, spam filter), not the address. Blocks cool the mailbox down (health rules);
# they never suppress the lead.
_POLICY_STATUS = re.compile(r"\b5\.7\.\d{1,3}\b")
_POLICY_WORDS = re.compile(
    r"block|blacklist|blocklist|denylist|spam|reputation|policy|spamhaus|rbl\b", re.IGNORECASE
)


@dataclass
class Incoming:
    """A normalized event before it is stored (see ``outreach.events.models.Event``)."""

    source: str
    type: str
    recipient: str
    occurred_at: datetime
    provider_event_id: str | None = None
    provider_message_id: str = ""
    # Our Message pk when the provider echoed it back (header or metadata).
    outreach_message_id: int | None = None
    # Message-IDs this event refers to (replies: In-Reply-To and References).
    referenced_message_ids: list[str] = field(default_factory=list)
    # The mailbox the event is about when its message no longer names it (a send-time block
    # whose message went back to the router); otherwise the message's.
    mailbox_id: int | None = None
    bounce_type: str = ""
    diagnostic: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


def from_simulated(notification: Notification) -> Incoming:
    """The simulated provider's notification (its "webhook") in our vocabulary."""
    return Incoming(
        source=notification.source,
        type=notification.type,
        recipient=notification.recipient,
        occurred_at=notification.occurred_at,
        provider_event_id=notification.provider_event_id,
        provider_message_id=notification.provider_message_id,
        outreach_message_id=notification.outreach_message_id,
        bounce_type=notification.bounce_type,
        diagnostic=notification.diagnostic,
        raw=notification.raw,
    )


def is_policy_block(diagnostic: str) -> bool:
    """True for a rejection that says the receiver blocks the sender (5.7.x + policy words)."""
    return bool(_POLICY_STATUS.search(diagnostic) and _POLICY_WORDS.search(diagnostic))


def parse_message_pk(value: Any) -> int | None:
    """Our message id from a header or metadata value ("123", 123, "<123>"), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 < value < 2**63 else None
    if isinstance(value, str):
        text = value.strip().strip("<>").strip()
        if text.isascii() and text.isdigit() and len(text) < 19:
            return int(text) or None
    return None


def fingerprint(raw: Any) -> str:
    """A stable id for an event whose provider gives none: a hash of its canonical payload."""
    text = json.dumps(raw, sort_keys=True, default=str, ensure_ascii=True)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def sanitize(value: Any, depth: int = 0) -> Any:
    """Make a payload storable everywhere: no NUL characters (PostgreSQL refuses them)."""
    if depth > 50:
        return None
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {str(k).replace("\x00", ""): sanitize(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [sanitize(v, depth + 1) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return str(value).replace("\x00", "")


class MissingField(ValueError):
    """The payload lacks what its event needs (its type, or the address it is about)."""


# Types whose effects need the address they are about.
_NEED_RECIPIENT = {BOUNCED, COMPLAINED, UNSUBSCRIBED}
# SES event-publishing types anymail does not know.
_SES_EXTRA_TYPES = {"DeliveryDelay": DEFERRED, "Subscription": None}


def from_anymail(source: str, event: AnymailTrackingEvent) -> Incoming | None:
    """Our form of an anymail tracking event; None for types we do not keep (queued, sent...).

    Raises :class:`MissingField` for an event without a recognizable type, or without the
    recipient its effects need: such a payload is refused and kept as a dead letter.
    """
    raw = event.esp_event if isinstance(event.esp_event, dict) else _querydict(event.esp_event)
    if event.event_type == EventType.UNKNOWN:
        ses_type = raw.get("eventType") if source == "ses" else None
        if ses_type not in _SES_EXTRA_TYPES:
            raise MissingField(f"{source} event without a known type: {event.description or ''}")
        kind = _SES_EXTRA_TYPES[ses_type]
        if kind is None:
            return None
        event.event_type = EventType.DEFERRED
    kind, bounce_type = _classify(source, event, raw)
    if kind is None:
        return None
    if kind in _NEED_RECIPIENT and not _address(event.recipient):
        raise MissingField(f"{source} {kind} event without a recipient")
    diagnostic = " ".join(
        part for part in (_text(event.description), _text(event.mta_response)) if part
    )
    if kind == BOUNCED and is_policy_block(diagnostic):
        kind = BLOCKED
    recipient = _address(event.recipient)
    event_id = _text(event.event_id)
    if source == "postmark":
        event_id = postmark_event_id(kind, bounce_type, raw, recipient) or event_id
    return Incoming(
        source=source,
        type=kind,
        recipient=recipient,
        occurred_at=event.timestamp or clock.now(),
        provider_event_id=event_id[:255] or None,
        provider_message_id=_text(event.message_id)[:255],
        outreach_message_id=_message_pk(event, raw),
        bounce_type=bounce_type,
        diagnostic=diagnostic[:2000],
        raw=sanitize(raw),
    )


def _classify(
    source: str, event: AnymailTrackingEvent, raw: dict[str, Any]
) -> tuple[str | None, str]:
    """(type, bounce type) of an anymail event, from the provider's own hard/soft fields."""
    event_type = event.event_type
    if event_type in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[event_type], ""
    if event_type == EventType.BOUNCED:
        return BOUNCED, _bounce_type(source, raw)
    if event_type == EventType.REJECTED:
        # Refused before sending because the address is known bad (SendGrid "dropped:
        # Bounced Address", Postmark "BadEmailAddress"): as good as a hard bounce.
        if event.reject_reason in (RejectReason.BOUNCED, RejectReason.INVALID):
            return BOUNCED, HARD
        if event.reject_reason == RejectReason.UNSUBSCRIBED:
            return UNSUBSCRIBED, ""
        # Postmark's "ISP block" (content or blocklisting) and DMARC rejections say the
        # receiver refuses the sender, not the address: a block the health rules count.
        if source == "postmark" and raw.get("Type") in POSTMARK_BLOCKS:
            return BLOCKED, ""
    return None, ""


POSTMARK_BLOCKS = ("Blocked", "DMARCPolicy")


def postmark_event_id(kind: str, bounce_type: str, raw: dict[str, Any], recipient: str) -> str:
    """One id for the two webhooks Postmark sends about one hard bounce or complaint.

    Postmark posts a ``Bounce`` (or ``SpamComplaint``) and then a ``SubscriptionChange`` with
    ``SuppressionReason`` ``HardBounce`` (or ``SpamComplaint``) for the same message and
    address. Both get the id ``<what>:<MessageID>:<address>``, so the second is a repeat and
    the bounce is counted once, whichever arrives first. "" for every other event (its own
    ``ID``, or a hash of the payload).
    """
    message_id = _text(raw.get("MessageID"))
    if not message_id or not recipient:
        return ""
    if kind == BOUNCED and bounce_type == HARD:
        return f"hard-bounce:{message_id}:{recipient}"
    if kind == COMPLAINED:
        return f"complaint:{message_id}:{recipient}"
    return ""


def _bounce_type(source: str, raw: dict[str, Any]) -> str:
    if source == "ses":
        bounce = raw.get("bounce")
        kind = bounce.get("bounceType") if isinstance(bounce, dict) else None
        return HARD if kind == "Permanent" else SOFT
    if source == "mailgun":
        data = raw.get("event-data", raw)
        severity = data.get("severity") if isinstance(data, dict) else None
        # Legacy webhooks have no severity; their "bounced" event is a permanent failure.
        return SOFT if severity == "temporary" else HARD
    if source == "postmark":
        return SOFT if raw.get("Type") in ("SoftBounce", "Transient", "DnsError") else HARD
    if source == "sendgrid":
        # "bounce" is a permanent refusal; "blocked" a temporary one by the receiving server.
        return SOFT if raw.get("type") == "blocked" else HARD
    return HARD


def _message_pk(event: AnymailTrackingEvent, raw: dict[str, Any]) -> int | None:
    metadata = event.metadata if isinstance(event.metadata, dict) else {}
    for key, value in metadata.items():
        if str(key).lower() in METADATA_KEYS:
            pk = parse_message_pk(value)
            if pk:
                return pk
    mail = raw.get("mail")
    headers = mail.get("headers") if isinstance(mail, dict) else None
    if isinstance(headers, list):  # SES: [{"name": ..., "value": ...}]
        for header in headers:
            if (
                isinstance(header, dict)
                and str(header.get("name", "")).lower() == MESSAGE_ID_HEADER.lower()
            ):
                pk = parse_message_pk(header.get("value"))
                if pk:
                    return pk
    return None


def _querydict(data: Any) -> dict[str, Any]:
    try:
        return {key: data.getlist(key) for key in data}
    except AttributeError:
        return {"payload": str(data)}


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _address(value: Any) -> str:
    return _text(value).lower()[:254]
