"""Reconciliation: settle the messages in doubt (``unknown``) by looking where they went.

A message is ``unknown`` when its provider call began and no answer was written (its worker
died, or the provider code failed mid-call). Every ``OUTREACH_RECONCILE_EVERY_MINUTES`` each
one is looked up again:

1. **Look** (:func:`look_up`). A mailbox with IMAP access and a Sent folder (its
   ``imap_sent_folder``, else the folder its server marks ``\\Sent``): the folder is searched
   by the ``Message-ID`` header, on the server (IMAP SEARCH), never downloaded. Otherwise the
   provider account's own lookup (:meth:`Provider.find_sent`): Mailgun's events API, Postmark's
   outbound message search, the sandbox outbox. SES keeps nothing to search.
2. **Decide** (:func:`decide`, a plain function). Found → ``sent``, finished as its worker
   would have (attempt recorded, enrollment advanced). Not found once the grace
   (``OUTREACH_UNKNOWN_RESEND_AFTER_MINUTES`` after its call began) is over → back to
   routing, its Message-ID kept so that a receiver can recognize a repeat; with the setting
   at 0 it stays for the operator. A lookup that failed (IMAP down, a 5xx) or cannot be made
   concludes nothing: the message stays, with why.
3. **Record**: each resolution is conditional on the message still being ``unknown`` (an
   operator or a second reconciler deciding at the same moment cannot both win) and writes
   its audit-log entry (:class:`StateChange`) in the same transaction. A process killed at
   any point leaves the message ``unknown``, to be looked up again: never marked sent on
   less than a sighting, never resent on less than a completed search that missed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from outreach.campaigns.models import Message
from outreach.lib import clock
from outreach.pool.models import Mailbox, StateChange
from outreach.providers.base import Envelope, SendError, SendResult
from outreach.sending import hooks
from outreach.sending.deliver import Called, ProviderCache, load_taken
from outreach.sending.finish import finish_batch
from outreach.sending.take import Taken

log = logging.getLogger(__name__)

State = Message.State
ACTOR = "system:reconcile"


class Answer(StrEnum):
    FOUND = "found"
    NOT_FOUND = "not_found"
    CANNOT_TELL = "cannot_tell"


@dataclass(frozen=True)
class Lookup:
    answer: Answer
    # Where it was looked for, or why it could not be.
    why: str


@dataclass(frozen=True)
class Verdict:
    action: Literal["sent", "resend", "wait"]
    why: str


def decide(
    lookup: Lookup, began_at: datetime, now: datetime, resend_after: timedelta | None
) -> Verdict:
    """What to do with a message in doubt, given what its lookup said. ``resend_after``
    None: never back to routing (the operator decides)."""
    if lookup.answer == Answer.FOUND:
        return Verdict("sent", f"found: {lookup.why}")
    if lookup.answer == Answer.CANNOT_TELL:
        return Verdict("wait", lookup.why)
    if resend_after is None:
        return Verdict("wait", f"not found: {lookup.why}; resending is off, the operator decides")
    due = began_at + resend_after
    if now >= due:
        minutes = int(resend_after.total_seconds() // 60)
        return Verdict("resend", f"not found {minutes} min after its call began: {lookup.why}")
    return Verdict(
        "wait", f"not found yet: {lookup.why}; back to routing at {due:%Y-%m-%d %H:%M} UTC"
    )


@dataclass
class ReconcileReport:
    looked_up: int = 0
    sent: int = 0
    resent: int = 0
    waiting: int = 0
    why: dict[str, int] = field(default_factory=dict)


def resend_after_setting() -> timedelta | None:
    minutes = int(getattr(settings, "OUTREACH_UNKNOWN_RESEND_AFTER_MINUTES", 30))
    return timedelta(minutes=minutes) if minutes > 0 else None


def reconcile_due(now: datetime | None = None, *, limit: int = 200) -> ReconcileReport:
    """Look up every ``unknown`` message not looked up in the last
    ``OUTREACH_RECONCILE_EVERY_MINUTES`` (at most ``limit``) and act on each answer."""
    now = now or clock.now()
    resend_after = resend_after_setting()
    every = timedelta(minutes=int(getattr(settings, "OUTREACH_RECONCILE_EVERY_MINUTES", 5)))
    due = (
        Message.objects.filter(state=State.UNKNOWN, mailbox__isnull=False)
        .filter(Q(reconciled_at__isnull=True) | Q(reconciled_at__lte=now - every))
        # In the due index's order (state, not_before, id): read from the few ``unknown``
        # rows, never by scanning the table in id order.
        .order_by("not_before", "pk")
        .values_list("pk", "provider_account_id")[:limit]
    )
    loaded = [m for m, _ in load_taken([Taken(pk, account or 0) for pk, account in due])]
    report = ReconcileReport(looked_up=len(loaded))
    if not loaded:
        return report
    lookups = look_up(loaded)
    for message in loaded:
        began_at = message.call_started_at or message.updated_at
        verdict = decide(lookups[message.pk], began_at, now, resend_after)
        if verdict.action == "sent":
            report.sent += settle_sent(message, verdict.why, now)
        elif verdict.action == "resend":
            report.resent += send_back_to_routing(message, verdict.why, now)
        else:
            report.waiting += Message.objects.filter(pk=message.pk, state=State.UNKNOWN).update(
                doubt=verdict.why[:500], reconciled_at=now
            )
        key = lookups[message.pk].answer.value
        report.why[key] = report.why.get(key, 0) + 1
    if report.sent or report.resent:
        log.warning(
            "reconciliation: %d message(s) found sent, %d back to routing, %d still in doubt",
            report.sent,
            report.resent,
            report.waiting,
        )
    return report


# --- 1. look ------------------------------------------------------------------------------


def look_up(messages: Iterable[Message]) -> dict[int, Lookup]:
    """Each message's :class:`Lookup`: its mailbox's Sent folder over IMAP when it has one
    (one connection per mailbox), else its provider account's lookup."""
    by_mailbox: dict[int, list[Message]] = {}
    lookups: dict[int, Lookup] = {}
    for message in messages:
        if not message.message_id_header:
            # Taken messages always have one; without it no copy can be recognized.
            lookups[message.pk] = Lookup(Answer.CANNOT_TELL, "no Message-ID to look for")
            continue
        by_mailbox.setdefault(message.mailbox_id or 0, []).append(message)
    providers = ProviderCache()
    try:
        for group in by_mailbox.values():
            mailbox = group[0].mailbox
            assert mailbox is not None
            found = _imap_lookups(mailbox, group)
            if found is None:
                found = {m.pk: _provider_lookup(m, providers) for m in group}
            lookups.update(found)
    finally:
        providers.close()
    return lookups


def sent_folder_search(client: Any, folder: str | None, header_values: list[str]) -> list[bool]:
    """Whether each ``Message-ID`` is in ``folder`` (None: the folder flagged ``\\Sent``),
    searched on the server; raises LookupError when there is no such folder."""
    from imap_tools import AND, H

    if folder is None:
        flagged = [f.name for f in client.folder.list() if "\\Sent" in f.flags]
        if not flagged:
            raise LookupError("no folder is marked \\Sent: set the mailbox's imap_sent_folder")
        folder = flagged[0]
    if not client.folder.exists(folder):
        raise LookupError(f"no IMAP folder {folder!r}")
    client.folder.set(folder, readonly=True)
    return [bool(client.uids(AND(header=H("Message-ID", value)))) for value in header_values]


def _imap_lookups(mailbox: Mailbox, messages: list[Message]) -> dict[int, Lookup] | None:
    """Lookups in the mailbox's Sent folder; None when the mailbox has no IMAP access."""
    try:
        config = hooks.imap_config(mailbox)
    except Exception as exc:  # a missing secret, a bad option: the operator's to fix
        return {m.pk: Lookup(Answer.CANNOT_TELL, f"IMAP access unusable: {exc}") for m in messages}
    if config is None:
        return None
    folder = (mailbox.settings or {}).get("imap_sent_folder") or None
    where = f"{mailbox.address}'s Sent folder"
    try:
        with hooks.imap_connect(config) as client:
            found = sent_folder_search(
                client, folder, [m.message_id_header or "" for m in messages]
            )
    except LookupError as exc:
        return {m.pk: Lookup(Answer.CANNOT_TELL, str(exc)) for m in messages}
    except Exception as exc:
        # Down, refused, timed out, logged out mid-search: nothing may be concluded.
        why = f"IMAP lookup failed: {type(exc).__name__}: {exc}"[:300]
        return {m.pk: Lookup(Answer.CANNOT_TELL, why) for m in messages}
    return {
        m.pk: Lookup(Answer.FOUND if hit else Answer.NOT_FOUND, f"{where} (IMAP)")
        for m, hit in zip(messages, found, strict=True)
    }


def _provider_lookup(message: Message, providers: ProviderCache) -> Lookup:
    account = message.provider_account
    mailbox = message.mailbox
    if account is None or mailbox is None:
        return Lookup(Answer.CANNOT_TELL, "no provider account to ask")
    envelope = Envelope(sender=mailbox.address, recipient=message.to_email, message_id=message.pk)
    try:
        found = providers.get(account).find_sent(message.message_id_header or "", envelope)
    except SendError as exc:
        return Lookup(Answer.CANNOT_TELL, f"{account.kind} lookup failed: {exc}"[:300])
    if found is None:
        return Lookup(
            Answer.CANNOT_TELL,
            f"{account.kind} keeps no record to search and the mailbox has no IMAP Sent folder",
        )
    where = f"{account.kind} account {account.name}"
    return Lookup(Answer.FOUND if found else Answer.NOT_FOUND, where)


# --- 3. record ----------------------------------------------------------------------------


def settle_sent(message: Message, why: str, now: datetime) -> int:
    """Finish ``message`` as ``sent`` (as its worker would have); 1 if this call did it."""
    me = f"reconcile:{message.pk}:{now.isoformat()}"[:128]
    with transaction.atomic():
        # Made this reconciliation's own first: finish_batch changes only its owner's rows.
        if Message.objects.filter(pk=message.pk, state=State.UNKNOWN).update(claimed_by=me) != 1:
            return 0
        message.claimed_by = me
        assert message.provider_account is not None
        result = SendResult(message.provider_message_id, response=why[:4000])
        finish_batch([Called(message, message.provider_account, result=result)])
        Message.objects.filter(pk=message.pk).update(doubt="", reconciled_at=now)
        _audit(message, State.SENT, why, now)
    return 1


def send_back_to_routing(
    message: Message, why: str, now: datetime, *, actor: str = ACTOR, note: str = ""
) -> int:
    """``message`` goes back to ``scheduled``: routed again (a follow-up waits for its own
    mailbox). Its units stay used: a provider was called. Its Message-ID is kept: a
    receiver that did get the first copy can recognize the second. 1 if this call did it.

    The one way back to routing for a message in doubt: the reconciler's, and the operator's
    "send again" on the dashboard (``actor``, and ``note``, the line added to its last error;
    by default when and why it was reconciled). Either writes its audit-log entry."""
    note = note or f"reconciled {now:%Y-%m-%d %H:%M}: {why}"
    with transaction.atomic():
        back = Message.objects.filter(pk=message.pk, state=State.UNKNOWN).update(
            state=State.SCHEDULED,
            not_before=now,
            mailbox=None,
            provider_account=None,
            claimed_by="",
            lease_expires_at=None,
            quota_day=None,
            doubt="",
            reconciled_at=now,
            last_error=f"{message.last_error}\n{note}".strip(),
            updated_at=now,
        )
        if back == 1:
            _audit(message, State.SCHEDULED, why, now, actor)
    return back


def _audit(message: Message, to_state: str, why: str, now: datetime, actor: str = ACTOR) -> None:
    StateChange.objects.create(
        mailbox_id=message.mailbox_id,
        from_state=State.UNKNOWN,
        to_state=to_state,
        reason=f"message {message.pk} to {message.to_email}: {why}"[:500],
        figures={
            "message": message.pk,
            "message_id_header": message.message_id_header,
            "call_started_at": message.call_started_at.isoformat()
            if message.call_started_at
            else None,
        },
        actor=actor,
        at=now,
    )
