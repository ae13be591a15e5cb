"""The sending engine: claimed messages out through their provider, at most once.

The flow of one message (BRIEF §3 Messages):

1. **Take** (:func:`take_batch`): a conditional UPDATE ``claimed``/due ``retry`` → ``sending``,
   only while the mailbox (and its domain) may still send and the address is not suppressed,
   choosing the provider account (primary, or its standby while the primary's circuit is open).
   The transaction **commits before any provider call**: a process killed during the call
   leaves a ``sending`` row whose lease expires into ``unknown``, never resent automatically.
2. **Send** (:func:`call_provider`): render, build the MIME message, commit that the call
   begins (:func:`begin_call`, which also records the connection's previous acceptance),
   hand it to the provider. A killed worker's messages whose call never began go back to
   routing, accepted ones are finished as ``sent``: at most one per connection is in doubt
   (:func:`expire_sending`).
3. **Finish** (:func:`finish_batch`, once per batch of calls): ``sent`` (enrollment advanced),
   ``retry`` (transient; backoff with jitter, bounded attempts then ``failed``), ``failed``
   (permanent; a hard bounce suppresses the address, a policy block records a ``blocked``
   event, an authentication failure pauses the mailbox). Every provider call is a
   :class:`SendAttempt`; each finished batch is one ``send_attempted`` signal carrying them all.
   A process killed between a call and the finish leaves ``sending`` rows: ``unknown`` after
   their lease, as for a kill during the call.

Quota was reserved when the message was claimed and is never released after a provider call.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Exists, F, Field, OuterRef, Q, Subquery, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce

from outreach.campaigns.lifecycle import record_build_failure
from outreach.campaigns.models import (
    Campaign,
    Enrollment,
    Message,
    Step,
    Suppression,
    Variant,
)
from outreach.lib import clock, dbstats
from outreach.lib.loop import Loop
from outreach.pool.models import Domain, Mailbox, ProviderAccount
from outreach.pool.policy import SENDING_STATES as SENDING_MAILBOX_STATES
from outreach.providers import base
from outreach.providers.base import Envelope, Outcome, SendError, SendResult
from outreach.sending import circuit, mime
from outreach.sending.models import SendAttempt
from outreach.sending.signals import send_attempted

log = logging.getLogger(__name__)

State = Message.State
# The SendError code of a message that cannot be built (no provider was called).
BUILD_FAILED = "build"
# How long such a message waits before it is built again (its campaign pauses before long).
BUILD_RETRY_DELAY = timedelta(minutes=15)


@dataclass(frozen=True)
class SendPolicy:
    # A provider call is bounded by its own timeout (30 s for SMTP, 30 s for the HTTP APIs);
    # five minutes of lease means a live worker never sees its own message declared unknown.
    sending_lease_seconds: int = 300
    # Transient failures are retried; after this many attempts in all the message fails
    # (a day of 4xx from one recipient's server is an answer too).
    max_attempts: int = 6
    # Exponential backoff: 1, 2, 4, 8, 16 minutes..., capped at an hour, with jitter so that a
    # provider outage does not produce a synchronized wave of retries when it ends.
    backoff_base_seconds: float = 60.0
    backoff_max_seconds: float = 3600.0
    # Parallel provider calls per worker process: SMTP is latency-bound, a few connections
    # keep it busy without opening dozens of sessions to one server.
    concurrency: int = 4
    # A take reserves a rate-limited account's send slots at most this far ahead, so a taken
    # message waits for its slot at most this long: well within its sending lease.
    rate_horizon_seconds: float = 30.0


def default_policy() -> SendPolicy:
    return SendPolicy(concurrency=getattr(settings, "OUTREACH_WORKER_CONCURRENCY", 4))


def backoff(attempt: int, policy: SendPolicy, rng: random.Random | None = None) -> timedelta:
    """Wait before attempt ``attempt + 1``: between half and all of base·2^(attempt-1), capped."""
    rng = rng or random.Random()
    ceiling = min(
        policy.backoff_max_seconds, policy.backoff_base_seconds * 2 ** max(attempt - 1, 0)
    )
    return timedelta(seconds=ceiling / 2 + rng.uniform(0, ceiling / 2))


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


# --- 1. take -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Taken:
    message_id: int
    account_id: int
    # The account's circuit was closed with no failure counted when the batch was taken: a
    # success then needs no circuit bookkeeping.
    circuit_clean: bool = True
    # The send slot reserved under the account's own rate (``time.monotonic()``), if it has one.
    send_at: float | None = None


def _not_suppressed() -> Q:
    return ~Q(
        Exists(
            Suppression.objects.filter(kind=Suppression.Kind.ADDRESS, value=OuterRef("to_email"))
        )
    ) & ~Q(
        Exists(
            Suppression.objects.filter(kind=Suppression.Kind.DOMAIN, value=OuterRef("to_domain"))
        )
    )


def _mailbox_can_send() -> Q:
    return Q(
        Exists(
            Mailbox.objects.filter(
                pk=OuterRef("mailbox_id"),
                state__in=SENDING_MAILBOX_STATES,
                domain__state=Domain.State.ACTIVE,
            )
        )
    )


def _sequence_live() -> Q:
    # A reply can stop an enrollment, and an operator can pause a campaign, after a message
    # was claimed: such a message is not taken. Its lease runs out and the scheduler's
    # recovery gives its units back.
    # EXISTS rather than joins: an UPDATE filtered through a join becomes
    # `id IN (SELECT ... every due message ...)`, one pass over the whole backlog per batch.
    return Q(enrollment__isnull=True) | Q(
        Exists(
            Enrollment.objects.filter(pk=OuterRef("enrollment_id"), state=Enrollment.State.ACTIVE)
        )
        & Exists(Campaign.objects.filter(pk=OuterRef("campaign_id"), state=Campaign.State.ACTIVE))
    )


def _due(now: datetime) -> Q:
    # A claim whose lease ran out belongs to the scheduler's recovery (back to scheduled,
    # units released); taking it too would let both win.
    return Q(state=State.CLAIMED, lease_expires_at__gt=now) | Q(
        state=State.RETRY, not_before__lte=now
    )


def take_batch(
    worker: str, now: datetime, limit: int, policy: SendPolicy | None = None
) -> list[Taken]:
    """Move up to ``limit`` due messages to ``sending`` for ``worker`` and commit.

    1. Read due candidates whose mailbox may send (on PostgreSQL skipping rows another worker
       has locked) and route each to its provider account (circuit breakers).
    2. A rate-limited account's send slots are reserved for every worker together
       (:func:`reserve_rate`); candidates beyond what its rate allows soon stay due.
    3. One conditional UPDATE per account: still due, mailbox still sending, address not
       suppressed. Race prevented: two workers reading the same candidates both try to take
       them; ``WHERE state IN (claimed, retry)`` lets exactly one win, so no message is ever
       handed to two provider calls. The winner reads back which rows are its own (its
       worker name and this batch's lease instant).
    4. Candidates that were not taken because their address is now suppressed are cancelled.
    """
    policy = policy or default_policy()
    lease_until = now + timedelta(seconds=policy.sending_lease_seconds)
    with transaction.atomic():
        rows = _candidates(now, limit, policy)
        if not rows:
            return []
        accounts = _accounts({r[3] or r[4] for r in rows})
        router = circuit.Router(now)
        by_account: dict[int, list[int]] = {}
        routed: dict[int, ProviderAccount] = {}
        message_ids: dict[int, str] = {}
        for pk, header, domain_name, own_account, domain_account in rows:
            account = router.route(accounts[own_account or domain_account])
            if account is None:
                continue  # primary down and no usable standby: the message waits
            by_account.setdefault(account.pk, []).append(pk)
            routed[account.pk] = account
            if not header:
                # Assigned once and kept through retries: a receiver can recognize a repeat.
                message_ids[pk] = mime.new_message_id(domain_name)
        send_at: dict[int, float] = {}
        # Account rows are locked in id order: two takes never wait for each other crosswise.
        for account_id in sorted(by_account):
            rate = routed[account_id].max_send_rate
            if not rate or rate <= 0:
                continue
            pks = by_account[account_id]
            allowed, wait = reserve_rate(account_id, rate, len(pks), now, policy)
            by_account[account_id] = pks[:allowed]
            first = time.monotonic() + wait
            send_at.update((pk, first + i / rate) for i, pk in enumerate(pks[:allowed]))
        for account_id, pks in by_account.items():
            if not pks:
                continue
            changes: dict[str, Any] = {
                "state": State.SENDING,
                "claimed_by": worker[:128],
                "lease_expires_at": lease_until,
                "provider_account_id": account_id,
                "updated_at": now,
                # This attempt's markers (a retry's are from its previous attempt).
                "call_started_at": None,
                "accepted_at": None,
            }
            new_ids = {pk: message_ids[pk] for pk in pks if pk in message_ids}
            if new_ids:
                changes["message_id_header"] = _per_message(
                    new_ids, "message_id_header", every_row=len(new_ids) == len(pks)
                )
            Message.objects.filter(_due(now), pk__in=pks).filter(
                _mailbox_can_send(), _sequence_live(), _not_suppressed()
            ).update(**changes)
        mine = list(
            Message.objects.filter(
                pk__in=[r[0] for r in rows],
                state=State.SENDING,
                claimed_by=worker[:128],
                lease_expires_at=lease_until,
            ).values_list("pk", "provider_account_id")
        )
        tried = {pk for pks in by_account.values() for pk in pks}
        missed = tried - {pk for pk, _ in mine}
        for pk in missed:
            _cancel_if_suppressed(pk, now)
    # In the order the candidates were read, which is also the order of their send slots.
    order = {row[0]: i for i, row in enumerate(rows)}
    return [
        Taken(pk, account_id, router.is_clean(account_id), send_at.get(pk))
        for pk, account_id in sorted(mine, key=lambda m: order[m[0]])
    ]


def reserve_rate(
    account_id: int, rate: float, wanted: int, now: datetime, policy: SendPolicy
) -> tuple[int, float]:
    """Reserve up to ``wanted`` consecutive send slots of an account limited to ``rate``
    messages per second (SES MaxSendRate), for every worker on the database together.

    Returns how many were reserved and in how many seconds the first slot starts; slot
    ``i`` starts ``i / rate`` seconds after it. The account row is locked for the rest of
    the take (PostgreSQL; on SQLite the take's write transaction holds the database): two
    workers reserve one after the other, never the same slots. Slots are reserved at most
    ``policy.rate_horizon_seconds`` ahead, and always one when the account is idle. Slots
    of a message that is not taken after all stay unused: the rate is only ever undershot.
    """
    reserved = (
        ProviderAccount.objects.select_for_update()
        .filter(pk=account_id)
        .values_list("rate_slot_at", flat=True)
    )
    next_free = reserved.first()
    # The time once the row is ours: waiting for the lock must not put slots in the past.
    now = max(now, clock.now())
    first = max(next_free or now, now)
    room = int((now - first).total_seconds() * rate + policy.rate_horizon_seconds * rate)
    allowed = min(wanted, max(room, 1 if first == now else 0))
    if allowed > 0:
        ProviderAccount.objects.filter(pk=account_id).update(
            rate_slot_at=first + timedelta(seconds=allowed / rate)
        )
    return allowed, (first - now).total_seconds()


def _candidates(now: datetime, limit: int, policy: SendPolicy) -> list[tuple[Any, ...]]:
    """The first ``limit`` due messages whose mailbox may send, oldest ``not_before`` first:
    ``(pk, message_id_header, domain name, mailbox's account, domain's account)``.

    Claimed and retrying messages are read apart, each in the order of ``message_due_idx``
    (state, not_before, id), and merged: one query over both states would sort the whole
    due backlog for every batch. Messages of an account whose send slots are reserved to
    the horizon are passed over, so they do not hold up other accounts' messages behind
    them. On PostgreSQL rows another worker is taking right now are skipped, not waited for.
    """
    full = ProviderAccount.objects.filter(
        max_send_rate__gt=0,
        rate_slot_at__gte=now + timedelta(seconds=policy.rate_horizon_seconds),
    ).values("pk")
    sendable = (
        Message.objects.filter(mailbox__isnull=False)
        .filter(_mailbox_can_send(), _sequence_live())
        .exclude(
            Q(mailbox__provider__in=full)
            | Q(mailbox__provider__isnull=True, mailbox__domain__provider__in=full)
        )
    )
    rows: list[tuple[Any, ...]] = []
    for due in (
        sendable.filter(state=State.CLAIMED, lease_expires_at__gt=now),
        sendable.filter(state=State.RETRY, not_before__lte=now),
    ):
        if connection.vendor == "postgresql":
            due = due.select_for_update(skip_locked=True, of=("self",))
        rows += due.order_by("not_before", "pk").values_list(
            "not_before",
            "pk",
            "message_id_header",
            "mailbox__domain__name",
            "mailbox__provider_id",
            "mailbox__domain__provider_id",
        )[:limit]
    return [row[1:] for row in sorted(rows)[:limit]]


def _accounts(ids: Iterable[int]) -> dict[int, ProviderAccount]:
    return {a.pk: a for a in ProviderAccount.objects.filter(pk__in=ids).select_related("standby")}


def _cancel_if_suppressed(pk: int, now: datetime) -> None:
    """A due message to a suppressed address is cancelled; a claim's units go back."""
    from outreach.scheduler.counters import release_message

    suppressed = Message.objects.filter(pk=pk, state__in=[State.CLAIMED, State.RETRY]).exclude(
        _not_suppressed()
    )
    message = suppressed.select_related("mailbox").first()
    if message is None:
        return
    if (
        Message.objects.filter(pk=pk, state=message.state).update(
            state=State.CANCELLED,
            last_error="recipient suppressed before sending",
            lease_expires_at=None,
            updated_at=now,
        )
        == 1
        and message.state == State.CLAIMED
    ):
        # Never reached a provider: the claim's units are given back.
        release_message(message)


# --- 2. send ------------------------------------------------------------------------------


class ProviderCache:
    """Provider instances of one thread, rebuilt when their account's configuration changes."""

    def __init__(self) -> None:
        self._items: dict[int, tuple[str, base.Provider]] = {}
        # The last call of this thread the provider accepted and that is not written yet:
        # (message pk, worker, when, provider's id); :func:`begin_call` writes it.
        self.accepted: tuple[int, str, datetime, str] | None = None
        # The fingerprint of the account object last seen: a batch's messages share one.
        self._seen: tuple[ProviderAccount, str] | None = None

    def get(self, account: ProviderAccount) -> base.Provider:
        if self._seen is not None and self._seen[0] is account:
            fingerprint = self._seen[1]
        else:
            fingerprint = hashlib.sha256(
                json.dumps(
                    [account.kind, account.settings, account.secrets], sort_keys=True
                ).encode()
            ).hexdigest()
            self._seen = (account, fingerprint)
        cached = self._items.get(account.pk)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        if cached is not None:
            cached[1].close()
        provider = base.build(account.kind, account.settings, account.secrets)
        self._items[account.pk] = (fingerprint, provider)
        return provider

    def close(self) -> None:
        for _, provider in self._items.values():
            provider.close()
        self._items.clear()


@dataclass
class Called:
    """What became of one taken message's provider call, before it is recorded.

    Exactly one of ``result`` (accepted), ``error`` (refused; ``called`` False when the
    provider was never reached) and ``unexpected`` (the call ended in a provider bug: it may
    or may not have gone out) is set.
    """

    message: Message
    account: ProviderAccount
    result: SendResult | None = None
    error: SendError | None = None
    unexpected: str | None = None
    called: bool = True
    clean: bool = False
    # The call never began (none of the above is set): the recovery took the message back
    # after its lease ran out, or its start could not be written (the database went away).
    # It was not sent; its row is left to the recovery.
    taken_back: bool = False


def load_taken(taken: list[Taken]) -> list[tuple[Message, Taken]]:
    """The taken messages with everything rendering and finishing reads.

    A message brings its enrollment and lead; what a batch shares (mailboxes and their
    domains, accounts, campaigns, steps, variants) is read once per batch and attached, a
    query each, rather than joined into every row and built again for every message.
    """
    by_pk = Message.objects.select_related("enrollment__lead").in_bulk(
        [t.message_id for t in taken]
    )
    rows = list(by_pk.values())
    mailboxes = Mailbox.objects.select_related("domain").in_bulk({m.mailbox_id for m in rows})
    accounts = ProviderAccount.objects.in_bulk({m.provider_account_id for m in rows})
    steps = Step.objects.in_bulk({m.step_id for m in rows})
    campaigns = Campaign.objects.in_bulk(
        {m.campaign_id for m in rows} | {s.campaign_id for s in steps.values()}
    )
    variants = Variant.objects.in_bulk({m.variant_id for m in rows})
    for step in steps.values():
        step.campaign = campaigns[step.campaign_id]
    for m in rows:
        m.mailbox = mailboxes.get(m.mailbox_id)  # type: ignore[arg-type]
        m.provider_account = accounts.get(m.provider_account_id)  # type: ignore[arg-type]
        m.campaign = campaigns.get(m.campaign_id)  # type: ignore[arg-type]
        m.step = steps.get(m.step_id)  # type: ignore[arg-type]
        m.variant = variants.get(m.variant_id)  # type: ignore[arg-type]
    return [(by_pk[t.message_id], t) for t in taken if t.message_id in by_pk]


@dataclass(frozen=True)
class Prepared:
    """A taken message rendered and built, ready for its provider call."""

    message: Message
    account: ProviderAccount
    raw: bytes
    envelope: Envelope
    clean: bool
    send_at: float | None = None


def prepare_call(message: Message, taken: Taken) -> Prepared | Called:
    """Render and build one taken message: a :class:`Prepared`, or the :class:`Called` of a
    message that cannot be built (the provider is never reached); writes nothing."""
    account = message.provider_account
    mailbox = message.mailbox
    assert account is not None and mailbox is not None
    try:
        raw, envelope = _prepare(message, mailbox, account)
    except SendError as err:
        return Called(message, account, error=err, called=False)
    except Exception as exc:
        # Rendering or building failed (a template error, a broken address): the provider
        # was never called; the message waits for the campaign to be fixed (_apply_failure).
        log.warning("message %s cannot be built: %s", message.pk, exc)
        build_error = SendError(
            f"cannot build the message: {exc}", permanent=True, code=BUILD_FAILED
        )
        return Called(message, account, error=build_error, called=False)
    return Prepared(message, account, raw, envelope, taken.circuit_clean, taken.send_at)


def deliver(prepared: Prepared | Called, *, providers: ProviderCache) -> Called:
    """Hand one prepared message to its provider, at its send slot when its account has a
    rate; writes nothing. (A :class:`Called` passes through: its message could not be built.)

    The message is ``sending`` (committed by :func:`take_batch`) before this runs.
    """
    if isinstance(prepared, Called):
        return prepared
    message, account = prepared.message, prepared.account
    try:
        provider = providers.get(account)
    except SendError as err:
        return Called(message, account, error=err, called=False)
    if prepared.send_at is not None:
        time.sleep(max(0.0, prepared.send_at - time.monotonic()))
    try:
        began = begin_call(message, providers)
    except DatabaseError:
        # Written or not, nothing goes out: the recovery finds it never began, or began
        # with no answer (in doubt until reconciled, never resent before).
        log.exception("cannot write that the call of message %s begins", message.pk)
        began = False
    if not began:
        return Called(message, account, called=False, taken_back=True)
    try:
        result = provider.send(prepared.raw, prepared.envelope)
    except SendError as err:
        return Called(message, account, error=err)
    except Exception as exc:
        # A provider bug after the call began: it may or may not have gone out. A duplicate
        # cold email is worse than a missing one, so the operator decides.
        log.exception("provider %s failed unexpectedly on message %s", account.name, message.pk)
        return Called(message, account, unexpected=repr(exc))
    providers.accepted = (message.pk, message.claimed_by, clock.now(), result.provider_message_id)
    return Called(message, account, result=result, clean=prepared.clean)


def begin_call(message: Message, providers: ProviderCache) -> bool:
    """Commit that ``message``'s provider call begins now; False when it must not begin.

    The same statement (one commit per message) records the acceptance of this thread's
    previous call (``providers.accepted``), so a worker killed at any moment leaves, per
    connection, at most one message whose call began with no answer written: the truly
    unknown one. Race prevented: the lease of a stalled worker runs out and the recovery
    (:func:`expire_sending`) sends a message whose call never began back to routing while
    the worker is about to call; both are conditional on ``sending`` with no call started,
    so exactly one wins and a message the recovery took back is never sent.
    """
    adapt = connection.ops.adapt_datetimefield_value
    now = adapt(clock.now())
    prev_pk, prev_worker, prev_at, prev_id = providers.accepted or (0, "", clock.now(), "")
    params = [
        *(message.pk, now),
        *(prev_pk, adapt(prev_at)),
        *(prev_pk, prev_id[:255]),
        *(message.pk, State.SENDING, message.claimed_by),
        *(prev_pk, State.SENDING, prev_worker),
    ]
    with connection.cursor() as cursor:
        cursor.execute(_begin_call_sql(connection.vendor), params)
        changed = {row[0] for row in cursor.fetchall()}
    providers.accepted = None
    return message.pk in changed


@functools.cache
def _begin_call_sql(vendor: str) -> str:
    """:func:`begin_call`'s statement: written once, as SQL, for the cost of a send."""
    q = connection.ops.quote_name
    # The model's field names are its column names (no db_column anywhere on Message).
    started, accepted, provider_id, pk, state, claimed_by = (
        q(c)
        for c in (
            "call_started_at",
            "accepted_at",
            "provider_message_id",
            "id",
            "state",
            "claimed_by",
        )
    )
    # Identifiers come from the model; every value is a parameter.
    return (
        f"UPDATE {q(Message._meta.db_table)} SET "  # noqa: S608
        f"{started} = CASE WHEN {pk} = %s THEN %s ELSE {started} END, "
        f"{accepted} = CASE WHEN {pk} = %s THEN %s ELSE {accepted} END, "
        f"{provider_id} = CASE WHEN {pk} = %s THEN %s ELSE {provider_id} END "
        f"WHERE ({pk} = %s AND {state} = %s AND {claimed_by} = %s AND {started} IS NULL) "
        f"OR ({pk} = %s AND {state} = %s AND {claimed_by} = %s) "
        f"RETURNING {pk}"
    )


def call_provider(message: Message, taken: Taken, *, providers: ProviderCache) -> Called:
    """:func:`prepare_call` then :func:`deliver`: one taken message through its provider."""
    return deliver(prepare_call(message, taken), providers=providers)


def send_taken(
    taken: Taken,
    worker: str,
    *,
    providers: ProviderCache,
    policy: SendPolicy | None = None,
) -> str:
    """Send one message this worker has taken; returns the message's new state."""
    loaded = load_taken([taken])
    if not loaded:
        return ""
    called = call_provider(*loaded[0], providers=providers)
    return finish_batch([called], policy)[0]


def _prepare(
    message: Message, mailbox: Mailbox, account: ProviderAccount
) -> tuple[bytes, Envelope]:
    from outreach.events.unsubscribe import unsubscribe_url

    unsubscribe = unsubscribe_url(message.pk)
    rendered = _render(message, unsubscribe)
    credentials, dkim_key = signing_of(mailbox, account)
    campaign = message.campaign
    outgoing = mime.Outgoing(
        from_address=mailbox.address,
        from_name=(campaign.from_name if campaign else "") or mailbox.display_name,
        reply_to=mailbox.reply_to,
        to_address=message.to_email,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        message_id=message.message_id_header or mime.new_message_id(mailbox.domain.name),
        date=clock.now(),
        unsubscribe_url=unsubscribe,
        unsubscribe_mailto=f"mailto:{mailbox.reply_to or mailbox.address}?subject=unsubscribe",
        in_reply_to=message.in_reply_to,
        references=message.references,
        tag=str(message.pk),
    )
    raw = mime.build(outgoing, dkim_key)
    envelope = Envelope(
        sender=mailbox.address,
        recipient=message.to_email,
        message_id=message.pk,
        credentials=credentials,
    )
    return raw, envelope


def signing_of(
    mailbox: Mailbox, account: ProviderAccount
) -> tuple[dict[str, Any], mime.DkimKey | None]:
    """The mailbox's options with its secrets resolved, and its DKIM key when outreach signs
    for this provider (SMTP relays; API providers sign themselves)."""
    credentials: dict[str, Any] = {
        **mailbox.settings,
        **base.resolve_secrets(mailbox.secrets),
    }
    dkim_key = None
    needs_dkim = base.provider_class(account.kind).needs_dkim_signature
    if needs_dkim and credentials.get("dkim_private_key"):
        dkim_key = mime.DkimKey(
            selector=str(credentials.get("dkim_selector") or mailbox.domain.dkim_selector),
            domain=mailbox.domain.name,
            private_key_pem=str(credentials["dkim_private_key"]),
        )
    return credentials, dkim_key


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


def _render(message: Message, unsubscribe_url: str) -> Rendered:
    """The message's content: a campaign step through the template engine; a warm-up message
    from the scheduler's warm-up content (plain text, as a person writes)."""
    if message.kind == Message.Kind.WARMUP or message.enrollment_id is None:
        from outreach.scheduler.warmup import warmup_content

        content = warmup_content(message)
        return Rendered(subject=message.subject or content.subject, html="", text=content.text)
    from outreach.campaigns.templates import render_message

    out = render_message(message, unsubscribe_url=unsubscribe_url)
    campaign, mailbox = message.campaign, message.mailbox
    if campaign is None or mailbox is None or not (campaign.track_opens or campaign.track_clicks):
        return Rendered(subject=out.subject, html=out.html, text=out.text)
    from outreach.events.tracking import instrument

    # The flags are read now, when the message is built: turning tracking on or off applies
    # to every message built from then on. The text part is never touched.
    tracked = instrument(
        out.html,
        message_pk=message.pk,
        host=mailbox.domain.tracking_hostname,
        opens=campaign.track_opens,
        clicks=campaign.track_clicks,
        unsubscribe_url=unsubscribe_url,
    )
    return Rendered(subject=out.subject, html=tracked, text=out.text)


# --- 3. finish ----------------------------------------------------------------------------


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
            rows = SendAttempt.objects.bulk_create([_attempt(item, now) for _, item in recorded])
            attempts = {i: row for (i, _), row in zip(recorded, rows, strict=True)}
            _signal(list(attempts.values()))
    _after_commit(batch, attempts, now)
    return states


def _mine(message: Message) -> Any:
    return Message.objects.filter(
        pk=message.pk, state__in=[State.SENDING, State.UNKNOWN], claimed_by=message.claimed_by
    )


def _mark_sent(sent: list[Called], now: datetime) -> None:
    if not sent:
        return
    by_worker: dict[str, list[Called]] = {}
    for item in sent:
        by_worker.setdefault(item.message.claimed_by, []).append(item)
    for worker, items in by_worker.items():
        # Also from `unknown`: if the lease ran out while the provider was slow but it did
        # accept the message, the truth is `sent`.
        Message.objects.filter(
            pk__in=[c.message.pk for c in items],
            state__in=[State.SENDING, State.UNKNOWN],
            claimed_by=worker,
        ).update(
            state=State.SENT,
            provider_message_id=_per_message(
                {c.message.pk: c.result.provider_message_id[:255] for c in items if c.result},
                "provider_message_id",
                every_row=True,
            ),
            sent_at=now,
            attempts=F("attempts") + 1,
            last_error="",
            lease_expires_at=None,
            updated_at=now,
        )
    Mailbox.objects.filter(pk__in=sorted({c.message.mailbox_id or 0 for c in sent})).update(
        last_sent_at=now, consecutive_failures=0
    )
    _advance_enrollments([c.message for c in sent], now)


def _per_message(values: dict[int, str], field: str, *, every_row: bool) -> Any:
    """One column's new value per message pk, as one expression for an UPDATE: a plain value
    when they all agree (an SMTP server's reply) and ``every_row`` of the UPDATE is among
    ``values``, else ``CASE id WHEN ... ELSE <the column> END`` (other rows keep theirs).

    Written as SQL with parameters: the ORM's ``Case(When(pk=...))`` resolves one filter per
    branch, which cost more than the whole UPDATE for a batch of a hundred messages.
    """
    distinct = set(values.values())
    if every_row and len(distinct) == 1:
        return distinct.pop()
    q = connection.ops.quote_name
    target = Message._meta.get_field(field)
    assert isinstance(target, Field) and target.column
    column = q(target.column)
    branches = " ".join(["WHEN %s THEN %s"] * len(values))
    params = [item for pair in values.items() for item in pair]
    # Identifiers come from the model; every value is a parameter.
    return RawSQL(  # noqa: S611
        f"CASE {q(Message._meta.pk.column)} {branches} ELSE {column} END",  # type: ignore[union-attr]
        params,
        output_field=target,
    )


def _attempt(item: Called, now: datetime) -> SendAttempt:
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
    return SendAttempt(
        message=item.message,
        mailbox=mailbox,
        provider_account=item.account,
        outcome=outcome,
        code=code[:32],
        response=response[:4000],
        at=now,
    )


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
        from outreach.scheduler.counters import release_message

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
    from outreach.pool.states import IllegalTransition, mark_auth_failed, transition_mailbox

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
    """A hard bounce or a block at send time becomes an event like a webhook's: the events
    collector suppresses and stops enrollments, and the health rules count it."""
    from outreach.events import normalize
    from outreach.events.record import record

    is_bounce = error.kind == Outcome.HARD_BOUNCE
    record(
        normalize.Incoming(
            source="smtp",
            type="bounced" if is_bounce else "blocked",
            bounce_type="hard" if is_bounce else "",
            recipient=message.to_email,
            occurred_at=now,
            provider_event_id=f"attempt-{attempt.pk}" if attempt else None,
            outreach_message_id=message.pk,
            # A blocked message is routed again: its row no longer names the mailbox the
            # receiver refused, the event does.
            mailbox_id=message.mailbox_id,
            diagnostic=str(error)[:2000],
            raw={"code": error.code, "response": error.message, "kind": error.kind.value},
        )
    )


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
    delay, or the enrollment finishes after the last step. One UPDATE per step of the batch."""
    sent = [m for m in sent if m.enrollment_id is not None and m.step is not None]
    if not sent:
        return
    firsts = [m for m in sent if m.step is not None and m.step.position == 1]
    if firsts:
        # The thread is the step-1 message just sent: read from its row (one correlated
        # subquery) rather than spelled out per enrollment.
        first = Message.objects.filter(
            pk__in=[m.pk for m in firsts], enrollment_id=OuterRef("pk")
        ).order_by("pk")[:1]
        Enrollment.objects.filter(
            pk__in=[m.enrollment_id for m in firsts], thread_mailbox__isnull=True
        ).update(
            thread_mailbox_id=Subquery(first.values("mailbox_id")),
            thread_message_id=Coalesce(Subquery(first.values("message_id_header")), Value("")),
        )
    campaigns = {m.step.campaign_id for m in sent if m.step is not None}
    delays: dict[int, list[tuple[int, int, int]]] = {}
    for campaign_id, position, days, hours in Step.objects.filter(
        campaign_id__in=campaigns
    ).values_list("campaign_id", "position", "delay_days", "delay_hours"):
        delays.setdefault(campaign_id, []).append((position, days, hours))
    by_step: dict[int, list[Message]] = {}
    steps: dict[int, Step] = {}
    for m in sent:
        assert m.step is not None
        by_step.setdefault(m.step.pk, []).append(m)
        steps[m.step.pk] = m.step
    for step_id, messages in sorted(by_step.items()):
        step = steps[step_id]
        following = min(
            (d for d in delays.get(step.campaign_id, []) if d[0] > step.position), default=None
        )
        changes: dict[str, Any] = {"last_step": step.position}
        if following is not None:
            changes["next_due_at"] = sent_at + timedelta(days=following[1], hours=following[2])
        else:
            changes.update(state=Enrollment.State.FINISHED, next_due_at=None)
        # Only an active enrollment moves on: one stopped by a reply meanwhile stays stopped.
        Enrollment.objects.filter(
            pk__in=[m.enrollment_id for m in messages],
            state=Enrollment.State.ACTIVE,
            last_step__lte=step.position,
        ).update(**changes)


# --- recovery, health, the loop ----------------------------------------------------------


def expire_sending(now: datetime, *, limit: int = 1000) -> int:
    """``sending`` rows whose lease ran out (their worker died or stalled), settled by what
    :func:`begin_call` wrote; returns how many became ``unknown``. The scheduler's recovery
    calls this too; a worker calling it keeps a worker-only deployment honest.

    1. The provider accepted the call: finished as ``sent``, as its worker would have.
    2. The call never began: nothing went out. A first attempt goes back to ``claimed`` with
       its lease run out, so the scheduler's recovery releases its units and routes it again;
       a retry goes back to ``retry``, due now (its units were used by an earlier call).
    3. The call began and no answer was written: ``unknown``, for reconciliation
       (:mod:`outreach.sending.reconcile`); never resent without it.

    Each step is conditional on the row still being ``sending`` with its lease run out, so
    two recoveries (the scheduler's, a worker's) and a late worker never both win.
    """
    expired = Message.objects.filter(state=State.SENDING, lease_expires_at__lt=now)
    _finish_accepted(expired, now, limit)
    never_began = expired.filter(call_started_at__isnull=True)
    # Their lease stays run out: an expired claim, which only the scheduler's recovery takes.
    back = {"updated_at": now}
    # A first message may be routed to another domain: a Message-ID named after the old one
    # would tie the two together (the next take gives it a new one).
    never_began.filter(attempts=0, pinned_mailbox__isnull=True).update(
        state=State.CLAIMED, message_id_header=None, **back
    )
    never_began.filter(attempts=0).update(state=State.CLAIMED, **back)
    never_began.update(state=State.RETRY, not_before=now, lease_expires_at=None, updated_at=now)
    return expired.update(
        state=State.UNKNOWN,
        last_error="the provider call began and its worker stopped before recording the "
        "answer; not resent without reconciliation",
        updated_at=now,
    )


def _finish_accepted(expired: Any, now: datetime, limit: int) -> int:
    """Finish the accepted messages of ``expired`` as ``sent``; returns how many.

    They are first made this recovery's own (a conditional UPDATE of ``claimed_by``), so a
    second recovery running at the same moment finishes none of them twice.
    """
    pks = list(expired.filter(accepted_at__isnull=False).values_list("pk", flat=True)[:limit])
    if not pks:
        return 0
    me = f"recovery:{worker_name()}"[:128]
    expired.filter(pk__in=pks, accepted_at__isnull=False).update(claimed_by=me)
    mine = Message.objects.filter(pk__in=pks, state=State.SENDING, claimed_by=me)
    taken = [Taken(pk, account) for pk, account in mine.values_list("pk", "provider_account_id")]
    batch = [
        Called(
            message,
            message.provider_account,
            result=SendResult(
                message.provider_message_id,
                response="accepted; recorded after its worker stopped",
            ),
        )
        for message, _ in load_taken(taken)
        if message.provider_account is not None
    ]
    finish_batch(batch)
    return len(batch)


def sync_provider_health() -> int:
    """Open the circuit of every account the health check (``alerts.ProviderHealth``) found
    unhealthy (SES SendingEnabled false, PROBATION/SHUTDOWN, quota nearly used)."""
    try:
        from outreach.alerts.models import ProviderHealth
    except ImportError:  # pragma: no cover - the alerts app is always installed
        return 0
    opened = 0
    for health in ProviderHealth.objects.filter(healthy=False).select_related(
        "provider_account__standby"
    ):
        problems = "; ".join(str(p) for p in health.problems) or "reported unhealthy"
        if circuit.open_circuit(
            health.provider_account,
            reason=f"provider health: {problems}"[:400],
            figures={"problems": health.problems},
        ):
            opened += 1
    return opened


def send_due(now: datetime | None = None, *, limit: int = 100, worker: str | None = None) -> int:
    """Take and send up to ``limit`` due messages in this thread; returns how many were taken."""
    worker = worker or worker_name()
    taken = take_batch(worker, now or clock.now(), limit)
    if not taken:
        return 0
    providers = ProviderCache()
    try:
        finish_batch([call_provider(m, t, providers=providers) for m, t in load_taken(taken)])
    finally:
        providers.close()
    return len(taken)


class Worker:
    """``outreach worker``: takes due messages in batches and sends them on ``concurrency``
    threads; a batch is finished before the next is taken and before a stop is honoured."""

    HEALTH_EVERY = timedelta(minutes=1)
    # Messages taken per thread and batch: one take transaction serves several sends, and a
    # stop request still waits for at most a few seconds of work.
    BATCH_PER_THREAD = 25

    def __init__(self, concurrency: int | None = None, name: str | None = None) -> None:
        self.policy = default_policy()
        self.concurrency = max(1, concurrency or self.policy.concurrency)
        self.name = name or worker_name()
        self._local = threading.local()
        self._caches: list[ProviderCache] = []
        self._caches_lock = threading.Lock()
        self._pool = (
            ThreadPoolExecutor(self.concurrency, thread_name_prefix="send")
            if self.concurrency > 1
            else None
        )
        self._next_health: datetime | None = None

    def handle_one(self) -> bool:
        taken = take_batch(
            self.name, clock.now(), self.concurrency * self.BATCH_PER_THREAD, self.policy
        )
        if not taken:
            return False
        # Rendering and building happen here, one message after the other, each handed to
        # the sending threads as soon as it is built: the threads only talk to providers
        # (waiting on sockets, not competing for the interpreter) while the next is built.
        ready = (prepare_call(message, t) for message, t in load_taken(taken))
        if self._pool is None:
            batch = [self._deliver(item) for item in ready]
        else:
            batch = [
                future.result()
                for future in [self._pool.submit(self._deliver, item) for item in ready]
            ]
        # The batch's bookkeeping in one transaction, from this thread: the sending threads
        # never wait for each other's database writes.
        finish_batch(batch, self.policy)
        return True

    def on_tick(self) -> None:
        now = clock.now()
        dbstats.refresh()
        expire_sending(now)
        if self._next_health is None or now >= self._next_health:
            sync_provider_health()
            self._next_health = now + self.HEALTH_EVERY

    def _deliver(self, item: Prepared | Called) -> Called:
        cache = getattr(self._local, "providers", None)
        if cache is None:
            cache = self._local.providers = ProviderCache()
            with self._caches_lock:
                self._caches.append(cache)
        try:
            return deliver(item, providers=cache)
        finally:
            if self._pool is not None:
                _close_thread_connection()

    def close(self) -> None:
        if self._pool is not None:
            # One task per thread (the barrier keeps any thread from taking two), each closing
            # its own database connection: connections belong to the thread that opened them.
            barrier = threading.Barrier(self.concurrency)

            def close_own() -> None:
                from django.db import connections

                try:
                    barrier.wait(timeout=10)
                except threading.BrokenBarrierError:
                    pass
                connections.close_all()

            for future in [self._pool.submit(close_own) for _ in range(self.concurrency)]:
                future.result()
            self._pool.shutdown(wait=True)
        with self._caches_lock:
            for cache in self._caches:
                cache.close()
            self._caches.clear()


def _close_thread_connection() -> None:
    """A sending thread keeps its database connection between calls (:func:`begin_call`
    writes through it before every call; reopening it each time, as ``CONN_MAX_AGE=0`` does
    on SQLite, cost more than the write). One an error left unusable is closed, to be
    opened again by the next call."""
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        if conn.errors_occurred and not conn.is_usable():
            conn.close()


def make_loop(stop: threading.Event) -> Loop:
    """The worker loop for ``outreach run`` (listed in ``settings.OUTREACH_LOOPS``)."""
    worker = Worker()
    return Loop(
        name="worker",
        handle_one=worker.handle_one,
        idle_seconds=1.0,
        on_tick=worker.on_tick,
        on_stop=worker.close,
        stop=stop,
    )
