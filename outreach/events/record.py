"""Storing normalized events, once each, and their effects in the same transaction.

Effects (docs/rules.md, Sequences and Suppression):

- hard bounce: the address is suppressed, its active enrollments stop;
- the third soft bounce to one address counts as a hard bounce;
- complaint: suppressed, enrollments stop. Pausing the sending mailbox is the health rule's
  (``outreach.metrics.health.mailbox_verdict``, with its ``complaint_pause_count``): it runs
  on ``event_recorded`` inside this same transaction, so once the complaint is stored the
  worker's conditional UPDATE (mailbox still active/warming) lets nothing more leave it;
- unsubscribe: suppressed, enrollments stop;
- reply: the thread's enrollment stops; with ``campaign.stop_on_company_reply`` every active
  enrollment of the campaign at the replier's company domain stops too;
- auto-reply, block, delivery, open, click: recorded only (the health rules read them).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction

from outreach.campaigns.models import Enrollment, Message, Suppression
from outreach.campaigns.suppression import suppress
from outreach.events import normalize as n
from outreach.events.models import Event
from outreach.events.signals import event_recorded
from outreach.lib import clock
from outreach.pool.models import Mailbox
from outreach.providers.base import Outcome, SendError

if TYPE_CHECKING:
    from outreach.providers.simulated.sender import Notification

log = logging.getLogger(__name__)

# Soft bounces to one address before it is treated as a hard bounce: a mailbox full three
# times running is as good as dead, and each retry costs reputation.
SOFT_BOUNCES_AS_HARD = 3

# Free-mail domains are nobody's company: a reply from one Gmail user must not stop every
# other Gmail lead of the campaign.
FREEMAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "yahoo.com",
        "ymail.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "gmx.com",
        "gmx.de",
        "web.de",
        "mail.com",
        "yandex.com",
        "yandex.ru",
        "zoho.com",
        "fastmail.com",
    }
)


def record_simulated(notification: Notification) -> bool:
    """Store a notification of the simulated provider; True when it was new."""
    return record(n.from_simulated(notification)) is not None


def record(incoming: n.Incoming) -> Event | None:
    """Store ``incoming`` and apply its effects atomically; None when it was already stored.

    ``event_recorded`` is sent inside the transaction, so listeners' writes commit or roll
    back with the event.
    """
    # No savepoint of its own inside a caller's transaction (a webhook's batch): every
    # statement counts on the ingest path, and an error aborts the batch anyway.
    with transaction.atomic(savepoint=False):
        message = find_message(incoming)
        if message is not None and not same_recipient(incoming, message):
            # An id echoed back for another address (a forwarded copy, a provider mixing up
            # batches, a forged id): the event is kept, unmatched, and touches neither that
            # message's mailbox nor its lead.
            message = None
        event = Event(
            source=incoming.source,
            provider_event_id=incoming.provider_event_id,
            type=incoming.type,
            bounce_type=incoming.bounce_type,
            diagnostic=incoming.diagnostic,
            recipient=incoming.recipient,
            message=message,
            mailbox_id=(message.mailbox_id or incoming.mailbox_id) if message else None,
            campaign_id=message.campaign_id if message else None,
            provider_message_id=incoming.provider_message_id,
            unmatched=message is None,
            occurred_at=incoming.occurred_at,
            received_at=clock.now(),
            raw=incoming.raw,
        )
        if not _insert_once(event):
            return None
        apply_effects(event, message)
        event_recorded.send(sender=Event, event=event)
    return event


def on_send_refused(
    sender: Any, message: Message, error: SendError, attempt: Any, at: Any, **kwargs: Any
) -> Event | None:
    """A hard bounce or a block at send time (``sending.signals.send_refused``) becomes an
    event like a webhook's: it suppresses and stops enrollments, and the health rules count
    it."""
    is_bounce = error.kind == Outcome.HARD_BOUNCE
    return record(
        n.Incoming(
            source="smtp",
            type="bounced" if is_bounce else "blocked",
            bounce_type="hard" if is_bounce else "",
            recipient=message.to_email,
            occurred_at=at,
            provider_event_id=f"attempt-{attempt.pk}" if attempt else None,
            outreach_message_id=message.pk,
            # A blocked message is routed again: its row no longer names the mailbox the
            # receiver refused, the event does.
            mailbox_id=message.mailbox_id,
            diagnostic=str(error)[:2000],
            raw={"code": error.code, "response": error.message, "kind": error.kind.value},
        )
    )


def find_message(incoming: n.Incoming) -> Message | None:
    """The message an event is about: our id echoed back, the provider's id, or Message-IDs.

    The message comes with the columns the effects and the rollups read and its mailbox's
    domain id: nothing downstream reads the message again.
    """
    if incoming.outreach_message_id:
        found = _first_message(f"m.{_col('id')} = %s", [incoming.outreach_message_id])
        if found:
            return found
    provider_ids = _id_variants(incoming.provider_message_id)
    if provider_ids:
        found = _first_message(
            f"m.{_col('provider_message_id')} IN (%s, %s)"
            f" OR m.{_col('message_id_header')} IN (%s, %s)",
            provider_ids * 2,
        )
        if found:
            return found
    header_ids = [v for ref in incoming.referenced_message_ids for v in _id_variants(ref)]
    if header_ids:
        marks = ", ".join(["%s"] * len(header_ids))
        found = _first_message(f"m.{_col('message_id_header')} IN ({marks})", header_ids)
        if found:
            return found
    return None


# Types whose sender may rightly differ from the message's recipient: a colleague answers,
# a forwarded copy auto-replies. They are matched by the thread's Message-IDs.
_ANY_SENDER_TYPES = frozenset({n.REPLIED, n.AUTO_REPLIED})


def same_recipient(incoming: n.Incoming, message: Message) -> bool:
    """Is ``incoming`` about the address ``message`` was sent to (replies: always)."""
    if incoming.type in _ANY_SENDER_TYPES or not incoming.recipient:
        return True
    if incoming.source == "imap" and incoming.type == n.UNSUBSCRIBED:
        return True  # a reply in the thread asking to be removed is a reply too
    return incoming.recipient.strip().lower() == message.to_email.strip().lower()


# The columns of a found message (attnames), in the model's order as ``Model.from_db`` wants.
_MESSAGE_FIELDS = tuple(
    f.attname
    for f in Message._meta.concrete_fields
    if f.attname
    in {
        "id",
        "mailbox_id",
        "campaign_id",
        "enrollment_id",
        "step_id",
        "variant_id",
        "provider_account_id",
        "to_email",
        "state",
    }
)


_MAILBOX_FIELDS = [
    f.attname for f in Mailbox._meta.concrete_fields if f.attname in ("id", "domain_id")
]
assert _MAILBOX_FIELDS == ["id", "domain_id"]


def _col(attname: str) -> str:
    for field in Message._meta.concrete_fields:
        if field.attname == attname:
            return connection.ops.quote_name(field.column)
    raise LookupError(attname)


def _first_message(where: str, params: list[Any]) -> Message | None:
    """The newest message matching ``where`` (over alias ``m``), its mailbox (id and domain
    id) attached. Plain SQL: this runs for every webhook event, and building the same ORM
    query each time cost more than the query itself."""
    q = connection.ops.quote_name
    mailbox = Mailbox._meta
    # Identifiers come from the models; values are parameters.
    sql = (  # noqa: S608
        "SELECT {columns}, b.{domain} FROM {messages} m "
        "LEFT OUTER JOIN {mailboxes} b ON m.{mailbox_id} = b.{mailbox_pk} "
        "WHERE {where} ORDER BY m.{pk} DESC LIMIT 1"
    ).format(
        columns=", ".join(f"m.{_col(f)}" for f in _MESSAGE_FIELDS),
        domain=q(mailbox.get_field("domain").column),
        messages=q(Message._meta.db_table),
        mailboxes=q(mailbox.db_table),
        mailbox_id=_col("mailbox_id"),
        mailbox_pk=q(mailbox.pk.column),
        where=where,
        pk=_col("id"),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    *values, domain_id = row
    message = Message.from_db(connection.alias, list(_MESSAGE_FIELDS), values)
    if message.mailbox_id is not None:
        Message.mailbox.field.set_cached_value(
            message,
            Mailbox.from_db(connection.alias, _MAILBOX_FIELDS, [message.mailbox_id, domain_id]),
        )
    return message


def _insert_once(event: Event) -> bool:
    """INSERT ``event`` unless its (source, provider event id) is stored already.

    One statement, ``INSERT ... ON CONFLICT DO NOTHING RETURNING id`` (SQLite 3.35+,
    PostgreSQL): a repeat (a provider's retry, or two deliveries racing) inserts nothing and
    leaves the transaction usable, with no savepoint around it.
    """
    fields = [f for f in Event._meta.local_concrete_fields if not f.primary_key]
    values = [f.get_db_prep_save(f.pre_save(event, True), connection) for f in fields]
    q = connection.ops.quote_name
    sql = "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}, {}) DO NOTHING RETURNING {}".format(  # noqa: S608
        q(Event._meta.db_table),
        ", ".join(q(f.column) for f in fields),
        ", ".join(["%s"] * len(fields)),
        q(Event._meta.get_field("source").column),
        q(Event._meta.get_field("provider_event_id").column),
        q(Event._meta.pk.column),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    if row is None:
        return False
    event.pk = row[0]
    event._state.adding = False
    event._state.db = connection.alias
    return True


def _id_variants(value: str) -> list[str]:
    # Providers disagree on angle brackets around ids (Mailgun drops them, SES has none).
    bare = value.strip().strip("<>").strip()
    return [bare, f"<{bare}>"] if bare else []


def apply_effects(event: Event, message: Message | None) -> None:
    address = event.recipient
    if event.type == Event.Type.BOUNCED and address:
        if event.bounce_type == Event.BounceType.HARD:
            _suppress_and_stop(address, Suppression.Source.HARD_BOUNCE, event, "hard bounce")
        elif _soft_bounces(address) >= SOFT_BOUNCES_AS_HARD:
            _suppress_and_stop(
                address,
                Suppression.Source.HARD_BOUNCE,
                event,
                f"{SOFT_BOUNCES_AS_HARD} soft bounces",
            )
    elif event.type == Event.Type.COMPLAINED:
        if address:
            _suppress_and_stop(address, Suppression.Source.COMPLAINT, event, "spam complaint")
    elif event.type == Event.Type.UNSUBSCRIBED and address:
        _suppress_and_stop(address, Suppression.Source.UNSUBSCRIBE, event, "unsubscribed")
        if event.source == "imap" and message is not None:
            _stop_on_reply(event, message)  # a reply asking to be removed is a reply too
    elif event.type == Event.Type.REPLIED and message is not None:
        _stop_on_reply(event, message)


def _soft_bounces(address: str) -> int:
    return Event.objects.filter(
        recipient=address, type=Event.Type.BOUNCED, bounce_type=Event.BounceType.SOFT
    ).count()


_STOP_REASONS: dict[str, str] = {
    Suppression.Source.HARD_BOUNCE: Enrollment.StopReason.BOUNCE,
    Suppression.Source.COMPLAINT: Enrollment.StopReason.COMPLAINT,
    Suppression.Source.UNSUBSCRIBE: Enrollment.StopReason.UNSUBSCRIBE,
}


def _suppress_and_stop(address: str, source: str, event: Event, why: str) -> None:
    suppress(address, source, reason=f"{why} ({event.source} event)", created_by="events")
    enrollments = Enrollment.objects.filter(lead__email__iexact=address)
    stop_enrollments(enrollments, _STOP_REASONS[source])


def stop_enrollments(enrollments: object, reason: str) -> int:
    """Stop the active ones among ``enrollments`` and cancel their unsent messages.

    ``scheduled`` ones hold no quota yet; a ``retry`` one's units were used by its provider
    call and stay used. Both changes are conditional on the state, so a worker taking a
    retry at the same moment and this stop cannot both win. A claimed or sending message is
    the engine's: the live-sequence and suppression checks at send time stop it.
    """
    now = clock.now()
    active = Enrollment.objects.filter(
        pk__in=enrollments.values("pk"),  # type: ignore[attr-defined]
        state=Enrollment.State.ACTIVE,
    )
    ids = list(active.values_list("pk", flat=True))
    if not ids:
        return 0
    Enrollment.objects.filter(pk__in=ids, state=Enrollment.State.ACTIVE).update(
        state=Enrollment.State.STOPPED, stop_reason=reason, stopped_at=now, next_due_at=None
    )
    unsent = (Message.State.SCHEDULED, Message.State.RETRY)
    Message.objects.filter(enrollment_id__in=ids, state__in=unsent).update(
        state=Message.State.CANCELLED, last_error=f"enrollment stopped: {reason}", updated_at=now
    )
    return len(ids)


def _stop_on_reply(event: Event, message: Message) -> None:
    if message.enrollment_id is not None:
        stop_enrollments(Enrollment.objects.filter(pk=message.enrollment_id), "reply")
    campaign = message.campaign
    domain = event.recipient.rpartition("@")[2]
    if campaign is None or not campaign.stop_on_company_reply or not domain:
        return
    if domain in FREEMAIL_DOMAINS:
        return
    stop_enrollments(
        Enrollment.objects.filter(campaign=campaign, lead__email_domain__iexact=domain),
        Enrollment.StopReason.COMPANY_REPLY,
    )
