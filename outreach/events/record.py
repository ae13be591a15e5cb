"""Storing normalized events, once each, and their effects in the same transaction.

Effects (BRIEF §3 Sequences and Suppression):

- hard bounce: the address is suppressed, its active enrollments stop;
- the third soft bounce to one address counts as a hard bounce;
- complaint: suppressed, enrollments stop, and the sending mailbox is paused at once, so the
  worker's conditional UPDATE (mailbox still active/warming) lets nothing more leave it;
- unsubscribe: suppressed, enrollments stop;
- reply: the thread's enrollment stops; with ``campaign.stop_on_company_reply`` every active
  enrollment of the campaign at the replier's company domain stops too;
- auto-reply, block, delivery, open, click: recorded only (the health rules read them).
"""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.db.models import Q

from outreach.campaigns.models import Enrollment, Message, Suppression
from outreach.campaigns.suppression import suppress
from outreach.events import normalize as n
from outreach.events.models import Event
from outreach.events.signals import event_recorded
from outreach.lib import clock
from outreach.pool.models import Mailbox
from outreach.pool.states import IllegalTransition, transition_mailbox

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


def record(incoming: n.Incoming) -> Event | None:
    """Store ``incoming`` and apply its effects atomically; None when it was already stored.

    ``event_recorded`` is sent inside the transaction, so listeners' writes commit or roll
    back with the event.
    """
    # No savepoint of its own inside a caller's transaction (a webhook's batch): every
    # statement counts on the ingest path, and an error aborts the batch anyway.
    with transaction.atomic(savepoint=False):
        message = find_message(incoming)
        event = Event(
            source=incoming.source,
            provider_event_id=incoming.provider_event_id,
            type=incoming.type,
            bounce_type=incoming.bounce_type,
            diagnostic=incoming.diagnostic,
            recipient=incoming.recipient,
            message=message,
            mailbox_id=message.mailbox_id if message else None,
            campaign_id=message.campaign_id if message else None,
            provider_message_id=incoming.provider_message_id,
            unmatched=message is None,
            occurred_at=incoming.occurred_at,
            received_at=clock.now(),
            raw=incoming.raw,
        )
        try:
            # A repeat (a provider's retry, or two deliveries racing) hits the unique
            # constraint; the savepoint keeps the transaction usable (PostgreSQL).
            with transaction.atomic():
                event.save(force_insert=True)
        except IntegrityError:
            return None
        apply_effects(event, message)
        event_recorded.send(sender=Event, event=event)
    return event


def find_message(incoming: n.Incoming) -> Message | None:
    """The message an event is about: our id echoed back, the provider's id, or Message-IDs."""
    # Only the columns the effects read: this runs for every webhook event.
    messages = Message.objects.only(*_MESSAGE_FIELDS)
    if incoming.outreach_message_id:
        found = list(messages.filter(pk=incoming.outreach_message_id))
        if found:
            return found[0]
    provider_ids = _id_variants(incoming.provider_message_id)
    if provider_ids:
        found = list(
            messages.filter(
                Q(provider_message_id__in=provider_ids) | Q(message_id_header__in=provider_ids)
            ).order_by("-id")[:1]
        )
        if found:
            return found[0]
    header_ids = [v for ref in incoming.referenced_message_ids for v in _id_variants(ref)]
    if header_ids:
        found = list(messages.filter(message_id_header__in=header_ids).order_by("-id")[:1])
        if found:
            return found[0]
    return None


_MESSAGE_FIELDS = ("id", "mailbox_id", "campaign_id", "enrollment_id", "to_email", "state")


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
        if message is not None and message.mailbox_id is not None:
            _pause_mailbox(message.mailbox_id, event)
    elif event.type == Event.Type.UNSUBSCRIBED and address:
        _suppress_and_stop(address, Suppression.Source.UNSUBSCRIBE, event, "unsubscribed")
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
    """Stop the active ones among ``enrollments`` and cancel their unclaimed messages.

    Only ``scheduled`` messages are cancelled: they hold no quota yet. A claimed or sending
    one is the engine's; the suppression check at send time stops it.
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
    Message.objects.filter(enrollment_id__in=ids, state=Message.State.SCHEDULED).update(
        state=Message.State.CANCELLED, last_error=f"enrollment stopped: {reason}", updated_at=now
    )
    return len(ids)


def _pause_mailbox(mailbox_id: int, event: Event) -> None:
    mailbox = Mailbox.objects.select_related("domain").get(pk=mailbox_id)
    if mailbox.state in (Mailbox.State.PAUSED, Mailbox.State.RETIRED):
        return
    try:
        transition_mailbox(
            mailbox,
            Mailbox.State.PAUSED,
            reason=f"spam complaint from {event.recipient or 'a recipient'}",
            actor="rule:complaint",
            figures={"event_id": event.pk, "source": event.source, "message_id": event.message_id},
        )
    except IllegalTransition:  # pragma: no cover - paused/retired are filtered above
        log.warning("complaint: cannot pause %s from %s", mailbox.address, mailbox.state)


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
