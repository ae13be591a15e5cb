"""Answering a reply from the inbox: plain text with the quote below, sent at once through the
mailbox that received it, in the thread (``In-Reply-To``/``References``, "Re:").

An answer is a conversation, not cold mail: no sending window, pacing gap or daily cap holds
it. It is counted all the same in the day's totals of its mailbox, its domain and the pool
(uncapped units on the counters the scheduler reads), and recorded as a ``reply`` message in
the thread. It is refused only for a mailbox that cannot send at all.

As for every send, the message is committed as ``sending`` before the provider call; a call
that ends in neither an answer nor an error leaves it ``unknown`` for the operator.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction

from outreach.campaigns.models import Message
from outreach.events.models import Answer, InboundMail
from outreach.events.unsubscribe import unsubscribe_url
from outreach.lib import clock
from outreach.pool.models import Mailbox, PoolSettings, StateChange
from outreach.providers import base, mime
from outreach.scheduler import counters
from outreach.sending.deliver import signing_of

log = logging.getLogger(__name__)

MAX_ANSWER_CHARS = 20_000


class AnswerRefused(Exception):
    """The answer cannot be sent; the message says why, for the operator."""


@dataclass(frozen=True)
class MailboxStanding:
    state: str
    domain_state: str
    pause_reason: str
    provider_enabled: bool


def refusal(standing: MailboxStanding) -> str | None:
    """Why a mailbox cannot send an answer at all, or None (pure).

    Health pauses (bounce rate, a complaint) stop cold mail, not a conversation the lead
    started; retirement, a block (cooldown) and refused credentials stop everything.
    """
    if standing.state == Mailbox.State.RETIRED:
        return "the mailbox is retired"
    if standing.state == Mailbox.State.COOLDOWN or standing.domain_state == "cooldown":
        return "the mailbox is in cooldown after a block"
    if standing.state == Mailbox.State.PAUSED and "authentication" in standing.pause_reason:
        return f"the mailbox's credentials were refused ({standing.pause_reason[:120]})"
    if not standing.provider_enabled:
        return "the mailbox's provider account is disabled"
    return None


def standing_of(mailbox: Mailbox) -> MailboxStanding:
    pause = (
        StateChange.objects.filter(mailbox=mailbox, to_state=Mailbox.State.PAUSED)
        .order_by("-at", "-pk")
        .values_list("reason", flat=True)
        .first()
    )
    return MailboxStanding(
        state=mailbox.state,
        domain_state=mailbox.domain.state,
        pause_reason=(pause or "") if mailbox.state == Mailbox.State.PAUSED else "",
        provider_enabled=mailbox.provider_account.enabled,
    )


def quoted(mail: InboundMail) -> str:
    """The answered mail below the answer, as mail clients quote it."""
    when = mail.occurred_at.strftime("%a, %d %b %Y at %H:%M")
    who = f"{mail.from_name} <{mail.from_address}>" if mail.from_name else mail.from_address
    body = (mail.visible_text or mail.text_body).strip()
    lines = "\n".join(f"> {line}" if line else ">" for line in body.splitlines())
    return f"On {when}, {who} wrote:\n{lines}"


def answer_subject(subject: str) -> str:
    return subject if subject.lower().startswith("re:") else f"Re: {subject}".strip()


def send_answer(mail: InboundMail, text: str, *, actor: str) -> Message:
    """Send ``text`` (with the quote) to the writer of ``mail`` from the mailbox that got it.

    Raises :class:`AnswerRefused` with the reason when it cannot be sent.
    """
    text = _checked_text(mail, text)
    mailbox = _answering_mailbox(mail)
    now = clock.now()
    message = _new_reply(mail, mailbox, actor=actor, now=now)
    _count(message, mailbox)
    Answer.objects.create(mail=mail, message=message, text=text, actor=actor[:150], at=now)
    raw, envelope = _build(message, mailbox, f"{text}\n\n{quoted(mail)}\n")
    result = _call_provider(message, mailbox, raw, envelope)
    sent_at = clock.now()
    _finish(
        message,
        Message.State.SENT,
        sent_at=sent_at,
        provider_message_id=result.provider_message_id[:255],
    )
    InboundMail.objects.filter(pk=mail.pk).update(answered_at=sent_at)
    return message


def _checked_text(mail: InboundMail, text: str) -> str:
    """The answer's text, stripped; refused when empty, too long or with no one to answer."""
    text = text.strip()
    if not text:
        raise AnswerRefused("the answer is empty")
    if len(text) > MAX_ANSWER_CHARS:
        raise AnswerRefused(f"the answer is longer than {MAX_ANSWER_CHARS} characters")
    if not mail.from_address:
        raise AnswerRefused("the mail has no sender address to answer")
    return text


def _answering_mailbox(mail: InboundMail) -> Mailbox:
    """The mailbox that received ``mail``; refused when it cannot send at all."""
    mailbox = Mailbox.objects.select_related("domain", "provider", "domain__provider").get(
        pk=mail.mailbox_id
    )
    why = refusal(standing_of(mailbox))
    if why:
        raise AnswerRefused(why)
    return mailbox


def _new_reply(mail: InboundMail, mailbox: Mailbox, *, actor: str, now: datetime) -> Message:
    """The answer's ``reply`` message in the thread, committed as ``sending``."""
    thread = mail.references.split() + ([mail.message_id_header] if mail.message_id_header else [])
    references = " ".join(dict.fromkeys(thread))
    return Message.objects.create(
        kind=Message.Kind.REPLY,
        to_email=mail.from_address,
        to_domain=mail.from_address.rpartition("@")[2],
        mailbox=mailbox,
        provider_account=mailbox.provider_account,
        state=Message.State.SENDING,
        subject=answer_subject(mail.subject),
        message_id_header=mime.new_message_id(mailbox.domain.name),
        in_reply_to=mail.message_id_header,
        references=references[:5000],
        claimed_by=actor[:128],
        quota_day=counters.pool_day(now, PoolSettings.load()),
        created_at=now,
        updated_at=now,
    )


def _call_provider(
    message: Message, mailbox: Mailbox, raw: bytes, envelope: base.Envelope
) -> base.SendResult:
    """The provider's answer to the send; the message ends ``failed`` on a refusal and
    ``unknown`` on anything else, and :class:`AnswerRefused` says which."""
    account = mailbox.provider_account
    try:
        provider = base.build(account.kind, account.settings, account.secrets)
        try:
            return provider.send(raw, envelope)
        finally:
            provider.close()
    except base.SendError as err:
        _finish(message, Message.State.FAILED, last_error=str(err)[:2000])
        raise AnswerRefused(f"the provider refused it: {err}") from err
    except Exception as exc:
        log.exception("answer %s: provider call ended unexpectedly", message.pk)
        _finish(message, Message.State.UNKNOWN, last_error=repr(exc)[:2000])
        raise AnswerRefused(f"unknown whether it was sent: {exc}") from exc


def _count(message: Message, mailbox: Mailbox) -> None:
    """One unit on the day's counters of the mailbox, its domain and the pool, without a
    cap: an answer is never held, but the mailbox's volume for the day includes it."""
    assert message.quota_day is not None
    units = counters.reservation_for(
        kind=Message.Kind.REPLY,
        mailbox_id=mailbox.pk,
        domain_id=mailbox.domain_id,
        mailbox_cap=0,
        domain_cap=0,
        limits=PoolSettings.load().limits,
    ).units
    uncapped = counters.Reservation(tuple((scope, key, None) for scope, key, _ in units))
    with transaction.atomic():
        counters.ensure_counters(message.quota_day, uncapped.keys())
        with connection.cursor() as cursor:
            counters.reserve(cursor, message.quota_day, uncapped)


def _build(message: Message, mailbox: Mailbox, text: str) -> tuple[bytes, base.Envelope]:
    credentials, dkim_key = signing_of(mailbox, mailbox.provider_account)
    unsubscribe = unsubscribe_url(message.pk)
    outgoing = mime.Outgoing(
        from_address=mailbox.address,
        from_name=mailbox.display_name,
        reply_to=mailbox.reply_to,
        to_address=message.to_email,
        subject=message.subject,
        text=text,
        html="",
        message_id=message.message_id_header or "",
        date=clock.now(),
        unsubscribe_url=unsubscribe,
        unsubscribe_mailto=f"mailto:{mailbox.reply_to or mailbox.address}?subject=unsubscribe",
        in_reply_to=message.in_reply_to,
        references=message.references,
        tag=str(message.pk),
    )
    envelope = base.Envelope(
        sender=mailbox.address,
        recipient=message.to_email,
        message_id=message.pk,
        credentials=credentials,
    )
    return mime.build(outgoing, dkim_key), envelope


def _finish(message: Message, state: str, **fields: Any) -> None:
    Message.objects.filter(pk=message.pk, state=Message.State.SENDING).update(
        state=state, updated_at=clock.now(), **fields
    )
    message.state = state
    for name, value in fields.items():
        setattr(message, name, value)
