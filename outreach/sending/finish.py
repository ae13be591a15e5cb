"""Step 3 of the sending engine, the finish (see :mod:`outreach.sending.engine`): a batch of
provider calls recorded in one transaction, then their effects outside the message rows.

``sent`` (enrollment advanced), ``retry`` (transient; backoff with jitter, bounded attempts
then ``failed``), ``failed`` (permanent; a hard bounce suppresses the address, a policy block
records a ``blocked`` event, an authentication failure pauses the mailbox). Every provider
call is a :class:`SendAttempt`; each finished batch is one ``send_attempted`` signal carrying
them all.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, Q

from outreach.campaigns.lifecycle import record_build_failure
from outreach.campaigns.models import Enrollment, Message, Step
from outreach.lib import bulk, clock, sql
from outreach.pool.models import Mailbox, ProviderAccount
from outreach.pool.states import IllegalTransition, mark_auth_failed, transition_mailbox
from outreach.providers.base import Outcome, SendError
from outreach.scheduler.counters import release_message
from outreach.sending import circuit
from outreach.sending.deliver import BUILD_FAILED, BUILD_RETRY_DELAY, Called
from outreach.sending.models import SendAttempt
from outreach.sending.signals import send_attempted, send_refused
from outreach.sending.take import (
    SENDING_MAILBOX_STATES,
    SendPolicy,
    State,
    backoff,
    default_policy,
)

log = logging.getLogger(__name__)


def finish_batch(batch: list[Called], policy: SendPolicy | None = None) -> list[str]:
    """Record the provider calls of a batch; returns each message's new state, in order.

    1. In one transaction: the accepted messages become ``sent`` with one UPDATE, their
       mailboxes and enrollments move on with a few set-wise UPDATEs; each refused one gets
       its own ``retry``/``failed``/``scheduled`` and each unexpected one ``unknown``; every
       provider call becomes a :class:`SendAttempt` (one INSERT) and the batch one
       ``send_attempted`` signal.
    2. After the commit, in the order of the calls: circuit breakers, and the effects of
       refusals outside the message row (events, suppression, mailbox pauses).

    Only rows still ``sending`` (or ``unknown`` after a slow call) for the worker that took
    them change: a lease that ran out meanwhile cannot be overwritten by anything but the
    truth that the provider accepted the message.
    """
    policy = policy or default_policy()
    now = clock.now()
    states: list[str] = []
    attempts: dict[int, SendAttempt] = {}
    with transaction.atomic():
        sent = [c for c in batch if c.result is not None]
        _mark_sent(sent, now)
        for item in batch:
            if item.taken_back:
                states.append("")
            elif item.result is not None:
                states.append(State.SENT)
            elif item.error is not None:
                attempt_no = item.message.attempts + (1 if item.called else 0)
                states.append(
                    _apply_failure(
                        item.message, _mine(item.message), item.error, attempt_no, policy, now
                    )
                )
            else:
                states.append(_mark_unknown(item, now))
        recorded = [(i, item) for i, item in enumerate(batch) if item.called]
        if recorded:
            rows = _record_attempts([item for _, item in recorded], now)
            attempts = {i: row for (i, _), row in zip(recorded, rows, strict=True)}
            _signal(list(attempts.values()))
    _after_commit(batch, attempts, now)
    return states


def _mine(message: Message) -> Any:
    return Message.objects.filter(
        pk=message.pk, state__in=[State.SENDING, State.UNKNOWN], claimed_by=message.claimed_by
    )


def _mark_sent(sent: list[Called], now: datetime) -> None:
    """The accepted messages become ``sent`` (one UPDATE per worker, as SQL: see
    :mod:`outreach.lib.sql`), their mailboxes record the send and their enrollments move
    on."""
    if not sent:
        return
    by_worker: dict[str, list[Called]] = {}
    for item in sent:
        by_worker.setdefault(item.message.claimed_by, []).append(item)
    m = functools.partial(sql.column, Message)
    at = sql.when(now)
    for worker, items in by_worker.items():
        ids = {c.message.pk: c.result.provider_message_id[:255] for c in items if c.result}
        provider_id, provider_params = sql.pick(m("pk"), ids, m("provider_message_id"))
        mine, mine_params = sql.any_of(m("pk"), list(ids))
        # Also from `unknown`: if the lease ran out while the provider was slow but it did
        # accept the message, the truth is `sent`.
        sql.execute(
            f"UPDATE {sql.table(Message)} SET {m('state')} = %s, "  # noqa: S608
            f"{m('provider_message_id')} = {provider_id}, {m('sent_at')} = %s, "
            f"{m('attempts')} = {m('attempts')} + 1, {m('last_error')} = '', "
            f"{m('lease_expires_at')} = NULL, {m('updated_at')} = %s "
            f"WHERE {mine} AND {m('state')} IN (%s, %s) AND {m('claimed_by')} = %s",
            [State.SENT, *provider_params, at, at, *mine_params, *_STILL_MINE, worker],
        )
    b = functools.partial(sql.column, Mailbox)
    boxes, boxes_params = sql.any_of(b("pk"), sorted({c.message.mailbox_id or 0 for c in sent}))
    sql.execute(
        f"UPDATE {sql.table(Mailbox)} SET {b('last_sent_at')} = %s, "  # noqa: S608
        f"{b('consecutive_failures')} = 0 WHERE {boxes}",
        [at, *boxes_params],
    )
    _advance_enrollments([c.message for c in sent], now)


_STILL_MINE = (State.SENDING, State.UNKNOWN)


def _record_attempts(items: list[Called], now: datetime) -> list[SendAttempt]:
    """A :class:`SendAttempt` per provider call, stored with one multi-row INSERT
    (:func:`outreach.lib.bulk.insert`; ``bulk_create`` cost more than the rest of the
    finish) and returned as the stored rows, their message, mailbox and account attached as
    ``bulk_create`` leaves them (the listeners read them without a query)."""
    attempts = [_attempt(item, now) for item in items]
    bulk.insert(SendAttempt, attempts, returning_pks=True)
    return attempts


def _attempt(item: Called, now: datetime) -> SendAttempt:
    """The unsaved attempt of one provider call."""
    if item.result is not None:
        outcome: str = SendAttempt.Outcome.SENT
        code, response = item.result.code, item.result.response
    elif item.error is not None:
        outcome, code, response = item.error.kind.value, item.error.code, item.error.message
    else:
        outcome = SendAttempt.Outcome.TRANSIENT
        code, response = "unknown", item.unexpected or ""
    mailbox = item.message.mailbox
    assert mailbox is not None
    # Built without Model.__init__ (its pre_init/post_init signals and its pass over every
    # field cost more than the rest of this function), as SendAttempt(...) would build it.
    attempt = sql.new(
        SendAttempt,
        message_id=item.message.pk,
        mailbox_id=mailbox.pk,
        provider_account_id=item.account.pk,
        outcome=outcome,
        code=code[:32],
        response=response[:4000],
        at=now,
    )
    # What assigning the instances would do, without the ORM's checks for every field.
    cached = attempt._state.fields_cache
    cached["message"], cached["mailbox"] = item.message, mailbox
    cached["provider_account"] = item.account
    return attempt


def _after_commit(batch: list[Called], attempts: dict[int, SendAttempt], now: datetime) -> None:
    # A success only touches a circuit that had failures; once per account until the next
    # failure of that account, in call order, as if each call were recorded on its own.
    succeeded: set[int] = set()
    for i, item in enumerate(batch):
        if item.error is not None:
            succeeded.discard(item.account.pk)
            _after_failure(item.message, item.account, item.error, attempts.get(i), now)
        elif item.result is not None and not item.clean and item.account.pk not in succeeded:
            circuit.record_success(item.account)
            succeeded.add(item.account.pk)


def _apply_failure(
    message: Message,
    mine: Any,
    error: SendError,
    attempts: int,
    policy: SendPolicy,
    now: datetime,
) -> str:
    common = {"attempts": attempts, "last_error": str(error)[:2000], "updated_at": now}
    if error.kind == Outcome.TRANSIENT or (
        error.kind == Outcome.AUTH_FAILED and not _pauses_mailbox(message)
    ):
        Mailbox.objects.filter(pk=message.mailbox_id or 0).update(
            consecutive_failures=F("consecutive_failures") + 1
        )
        if attempts >= policy.max_attempts:
            mine.update(state=State.FAILED, lease_expires_at=None, **common)
            return State.FAILED
        mine.update(
            state=State.RETRY,
            not_before=now + max(backoff(attempts, policy), _hold(error)),
            lease_expires_at=None,
            **common,
        )
        return State.RETRY
    if error.kind == Outcome.AUTH_FAILED or (
        error.kind == Outcome.BLOCKED and attempts < policy.max_attempts
    ):
        # The mailbox is paused (authentication) or cooled down (a block: the receiver
        # refuses the sender, not the address) below; the message has not gone out, so it
        # goes back to the router, a bounded number of times for blocks. A pinned follow-up
        # keeps waiting for its own mailbox until its wait limit. Its units stay used:
        # a provider was called.
        _back_to_router(message, mine, now, common)
        return State.SCHEDULED
    if error.code == BUILD_FAILED and message.campaign_id is not None:
        # A template or address a campaign message cannot be built from is the campaign's
        # fault, not the lead's: the message waits (repeated failures pause the campaign, see
        # _after_failure) and its units go back, since no provider was called.

        if _back_to_router(message, mine, now + BUILD_RETRY_DELAY, common):
            release_message(message)
        return State.SCHEDULED
    mine.update(state=State.FAILED, lease_expires_at=None, **common)
    return State.FAILED


def _back_to_router(message: Message, mine: Any, not_before: datetime, common: Any) -> int:
    """The message waits for the router again (a pinned follow-up for its own mailbox). A
    first message may leave from another domain, so it gets a Message-ID there: the old one
    would tie the two domains together."""
    pinned = message.pinned_mailbox_id is not None
    return int(
        mine.update(
            state=State.SCHEDULED,
            mailbox=None,
            provider_account=None,
            claimed_by="",
            lease_expires_at=None,
            quota_day=None,
            not_before=not_before,
            **({} if pinned else {"message_id_header": None}),
            **common,
        )
    )


def _pauses_mailbox(message: Message) -> bool:
    # SMTP logins belong to the mailbox; an API key refused is the account's problem, which
    # the circuit breaker handles by failing over.
    account = message.provider_account
    return account is None or account.kind in (
        ProviderAccount.Kind.SMTP,
        ProviderAccount.Kind.GOOGLE,
        ProviderAccount.Kind.MICROSOFT,
        ProviderAccount.Kind.SANDBOX,
    )


def _after_failure(
    message: Message,
    account: ProviderAccount,
    error: SendError,
    attempt: SendAttempt | None,
    now: datetime,
) -> None:
    """Effects outside the message row: circuit breaker, suppression, events, mailbox state."""
    if error.kind == Outcome.TRANSIENT and error.hold_seconds:
        # One mailbox over its provider's rate: it rests; the account itself is fine.
        until = now + _hold(error)
        Mailbox.objects.filter(pk=message.mailbox_id or 0).filter(
            Q(next_send_at__isnull=True) | Q(next_send_at__lt=until)
        ).update(next_send_at=until)
    elif error.kind == Outcome.TRANSIENT:
        circuit.record_failure(account, str(error))
    elif error.kind == Outcome.AUTH_FAILED:
        if _pauses_mailbox(message):
            _pause_mailbox(message, error)
        else:
            circuit.open_circuit(
                account,
                reason=f"authentication refused: {error}"[:400],
                figures={"code": error.code},
            )
    elif error.kind in (Outcome.HARD_BOUNCE, Outcome.BLOCKED):
        circuit.record_success(account)  # the provider answered: it is up
        _record_event(message, error, attempt, now)
    elif error.code == BUILD_FAILED and message.campaign_id is not None:
        record_build_failure(message.campaign_id, error.message)


def _hold(error: SendError) -> timedelta:
    return timedelta(seconds=error.hold_seconds)


def _pause_mailbox(message: Message, error: SendError) -> None:
    mailbox = Mailbox.objects.select_related("domain").get(pk=message.mailbox_id or 0)
    if mailbox.state not in SENDING_MAILBOX_STATES:
        return  # the health rules paused it already (rule:auth_failed)
    try:
        transition_mailbox(
            mailbox,
            Mailbox.State.PAUSED,
            reason=mark_auth_failed(mailbox, str(error)),
            actor="system:sending",
            figures={"code": error.code, "message_id": message.pk},
        )
    except IllegalTransition:  # pragma: no cover - filtered above
        log.warning("cannot pause %s from %s", mailbox.address, mailbox.state)


def _record_event(
    message: Message, error: SendError, attempt: SendAttempt | None, now: datetime
) -> None:
    """A hard bounce or a block at send time becomes an event like a webhook's (the events
    collector listens): it suppresses and stops enrollments, and the health rules count it."""
    send_refused.send(sender=SendAttempt, message=message, error=error, attempt=attempt, at=now)


def _mark_unknown(item: Called, now: datetime) -> str:
    message = item.message
    Message.objects.filter(
        pk=message.pk, state=State.SENDING, claimed_by=message.claimed_by
    ).update(
        state=State.UNKNOWN,
        attempts=message.attempts + 1,
        last_error=f"provider call ended unexpectedly: {item.unexpected}"[:2000],
        lease_expires_at=None,
        updated_at=now,
    )
    return State.UNKNOWN


def _signal(attempts: list[SendAttempt]) -> None:
    # A savepoint: a failing listener (metrics, health rules) must not undo the attempts.
    try:
        with transaction.atomic():
            send_attempted.send(sender=SendAttempt, attempts=attempts)
    except Exception:
        log.exception("send_attempted listener failed for attempts %s", [a.pk for a in attempts])


def _advance_enrollments(sent: list[Message], sent_at: datetime) -> None:
    """After steps went out: the thread is set on step 1, the next step falls due after its
    delay, or the enrollment finishes after the last step. One UPDATE per step of the batch,
    as SQL (:mod:`outreach.lib.sql`)."""
    sent = [m for m in sent if m.enrollment_id is not None and m.step is not None]
    if not sent:
        return
    e = functools.partial(sql.column, Enrollment)
    m = functools.partial(sql.column, Message)
    firsts = [m_ for m_ in sent if m_.step is not None and m_.step.position == 1]
    if firsts:
        # The thread is the step-1 message just sent: read from its row (one correlated
        # subquery) rather than spelled out per enrollment.
        messages, messages_params = sql.any_of(f"t.{m('pk')}", [x.pk for x in firsts])
        first = (
            f"FROM {sql.table(Message)} t WHERE {messages} "
            f"AND t.{m('enrollment')} = {sql.table(Enrollment)}.{e('pk')} "
            f"ORDER BY t.{m('pk')} LIMIT 1"
        )
        mine, mine_params = sql.any_of(e("pk"), [x.enrollment_id for x in firsts])
        sql.execute(
            f"UPDATE {sql.table(Enrollment)} SET "  # noqa: S608
            f"{e('thread_mailbox')} = (SELECT t.{m('mailbox')} {first}), "
            f"{e('thread_message_id')} = COALESCE((SELECT t.{m('message_id_header')} {first}), '') "
            f"WHERE {mine} AND {e('thread_mailbox')} IS NULL",
            [*messages_params, *messages_params, *mine_params],
        )
    s_ = functools.partial(sql.column, Step)
    campaigns, campaigns_params = sql.any_of(
        s_("campaign"), sorted({x.step.campaign_id for x in sent if x.step is not None})
    )
    delays: dict[int, list[tuple[int, int, int]]] = {}
    for campaign_id, position, days, hours in sql.fetch(
        f"SELECT {s_('campaign')}, {s_('position')}, {s_('delay_days')}, "  # noqa: S608
        f"{s_('delay_hours')} FROM {sql.table(Step)} WHERE {campaigns}",
        campaigns_params,
    ):
        delays.setdefault(campaign_id, []).append((position, days, hours))
    by_step: dict[int, list[Message]] = {}
    steps: dict[int, Step] = {}
    for x in sent:
        assert x.step is not None
        by_step.setdefault(x.step.pk, []).append(x)
        steps[x.step.pk] = x.step
    for step_id, messages_of_step in sorted(by_step.items()):
        step = steps[step_id]
        following = min(
            (d for d in delays.get(step.campaign_id, []) if d[0] > step.position), default=None
        )
        if following is not None:
            due = sent_at + timedelta(days=following[1], hours=following[2])
            changes, params = f"{e('next_due_at')} = %s", [sql.when(due)]
        else:
            changes = f"{e('state')} = %s, {e('next_due_at')} = NULL"
            params = [Enrollment.State.FINISHED]
        mine, mine_params = sql.any_of(e("pk"), [x.enrollment_id for x in messages_of_step])
        # Only an active enrollment moves on: one stopped by a reply meanwhile stays stopped.
        sql.execute(
            f"UPDATE {sql.table(Enrollment)} SET {e('last_step')} = %s, {changes} "  # noqa: S608
            f"WHERE {mine} AND {e('state')} = %s AND {e('last_step')} <= %s",
            [step.position, *params, *mine_params, Enrollment.State.ACTIVE, step.position],
        )
