"""The IMAP reader: replies, auto-replies, bounces (DSNs), complaints and mailto unsubscribes.

A mailbox is read when its ``settings`` hold ``imap_host`` (and optionally ``imap_port``,
``imap_username`` (default: the address), ``imap_security`` = ``ssl`` | ``starttls`` |
``plain``, ``imap_folders`` (default ``["INBOX"]``)) and its ``secrets`` an
``imap_password`` reference. A mailbox of a ``google`` or ``microsoft`` account without an
``imap_password`` logs in with SASL XOAUTH2, with the same token source as its sending.

1. :func:`parse` (pure, no database) turns one mail into normalized events:
   - ``multipart/report; report-type=delivery-status`` (RFC 3464): one bounce per failed
     recipient with its status code (5.x.x hard, 4.x.x soft; ``delayed``: deferred);
   - ``multipart/report; report-type=feedback-report`` (ARF): a complaint;
   - an unsubscribe request to the ``mailto:`` of ``List-Unsubscribe`` (subject "unsubscribe");
   - an auto-reply (``Auto-Submitted``, ``X-Autoreply``, ``Precedence: auto_reply``, usual
     out-of-office wording): recorded, never counted as a reply;
   - anything else that answers one of our messages: a reply.
2. :func:`read_folder` fetches what is new since the cursor (UIDVALIDITY + last UID), records
   each mail's events and moves the cursor in one transaction per mail: nothing is counted
   twice, nothing skipped. Events carry ``imap:<Message-ID>`` as their id, so even a
   renumbered folder (new UIDVALIDITY) does not count a mail twice.
3. ``outreach inbox`` (and ``outreach run``) poll every mailbox's folders in turn.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email.message import Message as EmailMessage
from email.parser import BytesParser, HeaderParser
from email.policy import compat32
from typing import Any

from django.db import transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce

from outreach.campaigns.models import Message
from outreach.events import normalize as n
from outreach.events.classify import (
    AUTO_REPLY,
    BOUNCE,
    OUT_OF_OFFICE,
    UNSUBSCRIBE_REQUEST,
    classify_content,
)
from outreach.events.headers import address_of as _address
from outreach.events.headers import header_text, mail_date
from outreach.events.headers import message_ids as _references
from outreach.events.mailcontent import read_content
from outreach.events.models import FolderCursor, InboxCursor
from outreach.events.record import find_message, record
from outreach.events.replies import keep_mail
from outreach.lib import clock
from outreach.lib.secrets import SecretError, resolve
from outreach.pool.models import IMAP_SECURITY, Mailbox

log = logging.getLogger(__name__)

# How often one folder is polled: replies within a few minutes are soon enough to stop a
# follow-up (pacing gaps are minutes long), and providers frown on tighter IMAP polling.
POLL_INTERVAL = timedelta(seconds=120)
# A failing server is retried less often, so a wrong password is not hammered.
ERROR_BACKOFF = timedelta(minutes=10)
# Mails handled per folder per pass: bounds one unit of work.
BATCH = 200
IMAP_TIMEOUT_SECONDS = 30

_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|out of (the )?office|ooo\b|"
    r"abwesenheitsnotiz|r[ée]ponse automatique|absence|away from|on vacation|"
    r"autoreply|auto:)",
    re.IGNORECASE,
)
_REPLY_PREFIX = re.compile(r"^\s*((re|aw|sv|antw|fwd?|wg|tr)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_UNSUBSCRIBE_SUBJECT = re.compile(r"^\s*unsubscribe\b", re.IGNORECASE)
_STATUS = re.compile(r"\b([245])\.\d{1,3}\.\d{1,3}\b")


@dataclass
class Parsed:
    """What one mail says: its events, and the fallback keys for finding our message."""

    events: list[n.Incoming] = field(default_factory=list)
    sender: str = ""
    subject: str = ""


def parse(raw: bytes, *, mailbox_address: str = "", mail: EmailMessage | None = None) -> Parsed:
    """Events found in one raw mail received by ``mailbox_address`` (pure function;
    ``mail``: the same bytes already parsed with compat32)."""
    mail = mail or BytesParser(policy=compat32).parsebytes(raw)
    sender = _address(mail.get("From", ""))
    subject = header_text(mail, "Subject")
    mail_id = header_text(mail, "Message-ID").strip()
    when = mail_date(mail)
    base = n.Incoming(
        source="imap",
        type=n.REPLIED,
        recipient=sender,
        occurred_at=when,
        provider_event_id=f"imap:{mail_id}"[:255] if mail_id else None,
        raw={
            "mailbox": mailbox_address,
            "from": header_text(mail, "From")[:500],
            "subject": subject[:500],
            "message_id": mail_id[:500],
            "date": header_text(mail, "Date")[:100],
        },
    )
    parsed = Parsed(sender=sender, subject=subject)
    if mail.get_content_type() == "multipart/report":
        report_type = str(mail.get_param("report-type", "") or "").lower()
        if report_type == "delivery-status":
            parsed.events = _dsn_events(mail, base)
            return parsed
        if report_type == "feedback-report":
            parsed.events = _complaint_events(mail, base)
            return parsed
    if sender and sender == mailbox_address.lower():
        return parsed  # our own copy
    references = _references(mail)
    if _UNSUBSCRIBE_SUBJECT.match(subject):
        parsed.events = [replace(base, type=n.UNSUBSCRIBED, referenced_message_ids=references)]
    elif is_auto_reply(mail):
        parsed.events = [replace(base, type=n.AUTO_REPLIED, referenced_message_ids=references)]
    else:
        parsed.events = [replace(base, type=n.REPLIED, referenced_message_ids=references)]
    return parsed


def is_auto_reply(mail: EmailMessage) -> bool:
    auto_submitted = header_text(mail, "Auto-Submitted").strip().lower()
    if auto_submitted and auto_submitted != "no":
        return True
    if mail.get("X-Autoreply") or mail.get("X-Autorespond"):
        return True
    precedence = header_text(mail, "Precedence").strip().lower()
    if precedence in ("auto_reply", "auto-reply", "bulk", "junk"):
        return True
    return bool(_AUTO_SUBJECT.match(_REPLY_PREFIX.sub("", header_text(mail, "Subject"))))


def _dsn_events(mail: EmailMessage, base: n.Incoming) -> list[n.Incoming]:
    status_part = next(
        (p for p in mail.walk() if p.get_content_type() == "message/delivery-status"), None
    )
    original = _original_headers(mail)
    original_id = header_text(original, "Message-ID").strip() if original is not None else ""
    tag = n.parse_message_pk(original.get(n.MESSAGE_ID_HEADER)) if original is not None else None
    if status_part is None:
        raise ValueError("delivery-status report without a message/delivery-status part")
    payload = status_part.get_payload()
    if isinstance(payload, list):
        blocks = [block for block in payload if isinstance(block, EmailMessage)]
    else:
        # Some MTAs mark the part 8bit text; parse its header blocks ourselves.
        chunks = re.split(r"\r?\n\r?\n", str(payload))
        blocks = [HeaderParser().parsestr(chunk) for chunk in chunks]
    events = []
    for block in blocks[1:] if len(blocks) > 1 else blocks:
        recipient = _dsn_recipient(block)
        action = header_text(block, "Action").strip().lower()
        if not recipient or action not in ("failed", "delayed"):
            continue
        status = header_text(block, "Status").strip()
        diagnostic = " ".join(header_text(block, "Diagnostic-Code").split())
        text = f"{status} {diagnostic}".strip()
        if action == "delayed":
            kind, bounce = n.DEFERRED, ""
        else:
            kind = n.BOUNCED
            bounce = n.SOFT if _status_class(status, diagnostic) == "4" else n.HARD
            if n.is_policy_block(text):
                kind = n.BLOCKED
        event_id = base.provider_event_id and f"{base.provider_event_id}:{recipient}"[:255]
        events.append(
            replace(
                base,
                type=kind,
                bounce_type=bounce,
                recipient=recipient,
                diagnostic=text[:2000],
                provider_event_id=event_id,
                provider_message_id=original_id[:255],
                referenced_message_ids=[original_id] if original_id else [],
                outreach_message_id=tag,
                raw={**base.raw, "status": status, "action": action, "diagnostic": diagnostic},
            )
        )
    return events


def _complaint_events(mail: EmailMessage, base: n.Incoming) -> list[n.Incoming]:
    original = _original_headers(mail)
    report = next(
        (p for p in mail.walk() if p.get_content_type() == "message/feedback-report"), None
    )
    recipient = ""
    if report is not None:
        payload = report.get_payload()
        block = payload[0] if isinstance(payload, list) and payload else None
        if isinstance(block, EmailMessage):
            recipient = _address(block.get("Original-Rcpt-To", ""))
    if not recipient and original is not None:
        recipient = _address(original.get("To", ""))
    if not recipient:
        return []
    original_id = header_text(original, "Message-ID").strip() if original is not None else ""
    tag = n.parse_message_pk(original.get(n.MESSAGE_ID_HEADER)) if original is not None else None
    return [
        replace(
            base,
            type=n.COMPLAINED,
            recipient=recipient,
            provider_message_id=original_id[:255],
            referenced_message_ids=[original_id] if original_id else [],
            outreach_message_id=tag,
        )
    ]


def _original_headers(mail: EmailMessage) -> EmailMessage | None:
    for part in mail.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], EmailMessage):
                return payload[0]
        if kind == "text/rfc822-headers":
            data = part.get_payload(decode=True)
            text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else ""
            return HeaderParser().parsestr(text)
    return None


def _dsn_recipient(block: Any) -> str:
    if not isinstance(block, EmailMessage):
        return ""
    value = header_text(block, "Final-Recipient") or header_text(block, "Original-Recipient")
    _, _, address = value.partition(";")
    return _address(address or value)


def _status_class(status: str, diagnostic: str) -> str:
    found = _STATUS.search(status) or _STATUS.search(diagnostic)
    if found:
        return found.group(1)
    code = re.search(r"\b([45])\d\d\b", diagnostic)
    return code.group(1) if code else "5"


# --- matching and recording ---------------------------------------------------------------


def fallback_message(parsed: Parsed, mailbox: Mailbox) -> Message | None:
    """For clients that drop In-Reply-To/References: our latest message from this mailbox to
    the sender whose subject matches the reply's (without its Re:/AW: prefixes)."""
    if not parsed.sender:
        return None
    subject = _REPLY_PREFIX.sub("", parsed.subject).strip()
    sent = Message.objects.filter(
        mailbox=mailbox, to_email__iexact=parsed.sender, sent_at__isnull=False
    ).order_by("-sent_at", "-id")
    if subject:
        match = sent.filter(Q(subject__iexact=subject)).first()
        if match is not None:
            return match
    return None


def record_mail(raw: bytes, mailbox: Mailbox, *, fallback_id: str, folder: str = "") -> int:
    """Record the events of one mail and keep the mail itself when it belongs to us (see
    :mod:`outreach.events.replies`); returns how many events and mails were new.

    The mail's label decides its event: an out-of-office or other machine answer is an
    auto-reply (it never stops the sequence), an unsubscribe request is an unsubscribe, any
    other answer a reply.
    """
    try:
        mail: EmailMessage | None = BytesParser(policy=compat32).parsebytes(raw)
    except Exception:  # read_content notes it; parse() is not tried
        mail = None
    content = read_content(raw, mail)
    try:
        if mail is None:
            raise ValueError("unparseable mail")
        parsed: Parsed | None = parse(raw, mailbox_address=mailbox.address, mail=mail)
    except Exception as exc:  # one unreadable mail must not block the folder behind it
        log.warning("inbox %s: unreadable mail %s: %s", mailbox.address, fallback_id, exc)
        parsed = None
    if content.from_address and content.from_address == mailbox.address.lower():
        return 0  # our own copy
    verdict = classify_content(
        content, received=(content.date or clock.now()).date(), own_addresses=(mailbox.address,)
    )
    stored = 0
    ours: Message | None = None
    for event in parsed.events if parsed else []:
        if event.provider_event_id is None:
            event.provider_event_id = f"imap:{fallback_id}:{event.recipient}"[:255]
        if event.type in (n.REPLIED, n.AUTO_REPLIED, n.UNSUBSCRIBED):
            event = replace(event, type=event_type_for(verdict.label, event.type))
            found = find_message(event)
            if found is None:
                found = fallback_message(parsed, mailbox)  # type: ignore[arg-type]
            if found is None and event.type != n.UNSUBSCRIBED:
                continue  # not an answer to us: kept below only if a lead wrote it
            if found is not None:
                event.outreach_message_id = found.pk
        else:
            found = find_message(event)
        ours = ours or found
        if record(event) is not None:
            stored += 1
    kept = keep_mail(content, verdict, mailbox, ours, folder=folder)
    return stored + (1 if kept is not None else 0)


def event_type_for(label: str, parsed_type: str) -> str:
    """The event a reply of ``label`` records (its effects are record.apply_effects')."""
    if label == UNSUBSCRIBE_REQUEST:
        return n.UNSUBSCRIBED
    if label in (OUT_OF_OFFICE, AUTO_REPLY, BOUNCE):
        return n.AUTO_REPLIED
    if parsed_type == n.UNSUBSCRIBED:
        return n.UNSUBSCRIBED  # the mailto: unsubscribe ("unsubscribe" subject) stays one
    return n.REPLIED


# --- reading a folder ---------------------------------------------------------------------


@dataclass(frozen=True)
class ImapConfig:
    host: str
    port: int
    username: str
    password: str
    security: str
    folders: tuple[str, ...]
    # An OAuth2 access token: logs in with XOAUTH2 instead of the password.
    token: str = field(default="", repr=False)


def imap_config(mailbox: Mailbox) -> ImapConfig | None:
    settings = mailbox.settings or {}
    if not settings.get("imap_host"):
        return None
    folders = settings.get("imap_folders") or ["INBOX"]
    password = (mailbox.secrets or {}).get("imap_password")
    token = "" if password else _oauth_token(mailbox)
    return build_imap_config(settings, password, mailbox.address, folders, token=token)


def _oauth_token(mailbox: Mailbox) -> str:
    """The XOAUTH2 token of a Google or Microsoft mailbox ("" for any other mailbox)."""
    from outreach.providers import base, oauth2

    account = mailbox.provider_account
    if account.kind not in oauth2.OAUTH_KINDS:
        return ""
    options = {**base.provider_class(account.kind).defaults, **account.settings}
    credentials = {**mailbox.settings, **base.resolve_secrets(mailbox.secrets)}
    grant = oauth2.grant_for(
        account.kind, options, base.resolve_secrets(account.secrets), mailbox.address, credentials
    )
    return oauth2.access_token(grant) if grant is not None else ""


def build_imap_config(
    options: dict[str, Any],
    password_ref: Any,
    address: str,
    folders: Iterable[str],
    *,
    label: str = "",
    token: str = "",
) -> ImapConfig:
    """The IMAP access of ``address`` (also the default login) from its ``imap_*`` options
    (a mailbox's settings, a seed's table); raises ValueError or :class:`SecretError`,
    naming ``label`` (default: the address), when it cannot be read."""
    label = label or address
    security = str(options.get("imap_security", "ssl"))
    if security not in IMAP_SECURITY:
        raise ValueError(f"{label}: imap_security must be ssl, starttls or plain")
    if not password_ref and not token:
        raise SecretError(f"{label}: imap_password secret is not set")
    return ImapConfig(
        host=str(options["imap_host"]),
        port=int(options.get("imap_port") or (993 if security == "ssl" else 143)),
        username=str(options.get("imap_username") or address),
        password=resolve(str(password_ref)) if password_ref else "",
        security=security,
        folders=tuple(str(f) for f in folders),
        token=token,
    )


def connect(config: ImapConfig) -> Any:
    from imap_tools import MailBox, MailBoxStartTls, MailBoxUnencrypted

    kinds = {"ssl": MailBox, "starttls": MailBoxStartTls, "plain": MailBoxUnencrypted}
    client = kinds[config.security](config.host, config.port, timeout=IMAP_TIMEOUT_SECONDS)
    if config.token:
        return client.xoauth2(config.username, config.token)
    return client.login(config.username, config.password)


def read_folder(cursor: InboxCursor, config: ImapConfig) -> tuple[int, bool]:
    """Record what is new in ``cursor``'s folder, at most :data:`BATCH` mails.

    Returns the number of new events and whether mail is left for another pass.
    """

    def handle(raw: bytes, where: str) -> int:
        return record_mail(
            raw, cursor.mailbox, fallback_id=f"{cursor.mailbox_id}:{where}", folder=cursor.folder
        )

    return read_new_mail(cursor, config, handle)


def read_new_mail(
    cursor: FolderCursor, config: ImapConfig, handle: Callable[[bytes, str], int]
) -> tuple[int, bool]:
    """Hand each mail new in ``cursor``'s folder to ``handle(raw, "FOLDER:VALIDITY:UID")``,
    at most :data:`BATCH`, moving the cursor past it in the same transaction.

    Returns the sum of what ``handle`` returned and whether mail is left for another pass.
    """
    from imap_tools import AND, U

    cursors = type(cursor)._default_manager
    stored = 0
    with connect(config) as client:
        status = client.folder.status(cursor.folder, ["UIDVALIDITY", "UIDNEXT"])
        client.folder.set(cursor.folder, readonly=True)
        validity = int(status["UIDVALIDITY"])
        if cursor.uid_validity != validity:
            # The server renumbered the folder: read it again from the start; event ids
            # (Message-IDs) keep anything already recorded from counting twice.
            cursor.uid_validity, cursor.last_uid = validity, 0
            cursors.filter(pk=cursor.pk).update(uid_validity=validity, last_uid=0)
        if int(status.get("UIDNEXT", 0)) and int(status["UIDNEXT"]) <= cursor.last_uid + 1:
            return 0, False
        uids = [
            int(uid)
            for uid in client.uids(AND(uid=U(str(cursor.last_uid + 1), "*")))
            if int(uid) > cursor.last_uid
        ]
        more = len(uids) > BATCH
        for uid in sorted(uids)[:BATCH]:
            # The bytes as the server holds them (a parsed and re-written copy would mend
            # broken MIME and lose what was wrong); PEEK leaves the \\Seen flag alone.
            typ, data = client.client.uid("FETCH", str(uid), "(BODY.PEEK[])")
            raws = (
                [item[1] for item in data or [] if isinstance(item, tuple)] if typ == "OK" else []
            )
            with transaction.atomic():
                for raw in raws:
                    stored += handle(bytes(raw), f"{cursor.folder}:{validity}:{uid}")
                cursors.filter(pk=cursor.pk).update(last_uid=uid)
                cursor.last_uid = uid
    return stored, more


# --- the loop ------------------------------------------------------------------------------


def ensure_cursors(mailboxes: Iterable[Mailbox] | None = None) -> None:
    boxes = mailboxes or Mailbox.objects.filter(settings__has_key="imap_host").exclude(
        state=Mailbox.State.RETIRED
    )
    for mailbox in boxes:
        folders = (mailbox.settings or {}).get("imap_folders") or ["INBOX"]
        for folder in folders:
            InboxCursor.objects.get_or_create(mailbox=mailbox, folder=str(folder)[:255])


def read_one_due() -> bool:
    """Claim the folder most overdue for a poll and read it; False when none is due.

    The claim is a conditional UPDATE of ``next_check_at``: two readers (on two machines)
    that pick the same folder cannot both read it, the second's UPDATE changes no row.
    """
    now = clock.now()
    ensure_cursors()
    due = (
        InboxCursor.objects.select_related("mailbox")
        .filter(Q(next_check_at__isnull=True) | Q(next_check_at__lte=now))
        .exclude(mailbox__state=Mailbox.State.RETIRED)
        .order_by("next_check_at", "pk")
        .first()
    )
    if due is None:
        return False
    if not (due.mailbox.settings or {}).get("imap_host"):
        InboxCursor.objects.filter(pk=due.pk).delete()  # the mailbox is no longer read
        return True

    def read() -> tuple[int, bool]:
        config = imap_config(due.mailbox)
        return read_folder(due, config) if config is not None else (0, False)

    stored = claim_and_read(due, now, POLL_INTERVAL, read, label=due.mailbox.address)
    if stored:
        log.info("inbox %s %s: %d new events", due.mailbox.address, due.folder, stored)
    return True


def claim_and_read(
    due: FolderCursor,
    now: datetime,
    interval: timedelta,
    read: Callable[[], tuple[int, bool]],
    *,
    label: str,
) -> int:
    """Claim ``due`` for ``interval`` and run ``read``; returns what it stored.

    The claim is a conditional UPDATE of ``next_check_at``: of two readers that picked the
    same folder, the second changes no row and reads nothing. A failing read (a server down,
    a wrong password) must not stop the other folders: it is noted on the cursor and tried
    again after :data:`ERROR_BACKOFF`. Mail left after a read (a first read of an old
    folder) makes the folder due again at once.
    """
    cursors = type(due)._default_manager.filter(pk=due.pk)
    if cursors.filter(next_check_at=due.next_check_at).update(next_check_at=now + interval) != 1:
        return 0  # another reader took it
    try:
        stored, more = read()
    except Exception as exc:
        log.warning("%s %s: %s", label, due.folder, exc)
        cursors.update(
            last_error=f"{type(exc).__name__}: {exc}"[:1000],
            checked_at=clock.now(),
            next_check_at=clock.now() + ERROR_BACKOFF,
            failing_since=Coalesce(F("failing_since"), Value(now)),
        )
        return 0
    cursors.update(
        checked_at=clock.now(),
        last_error="",
        failing_since=None,
        **({"next_check_at": now} if more else {}),
    )
    return stored
