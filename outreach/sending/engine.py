"""The sending engine: claimed messages out through their provider, at most once.

The flow of one message (BRIEF §3 Messages):

1. **Take** (:func:`take_batch`): a conditional UPDATE ``claimed``/due ``retry`` → ``sending``,
   only while the mailbox (and its domain) may still send and the address is not suppressed,
   choosing the provider account (primary, or its standby while the primary's circuit is open).
   The transaction **commits before any provider call**: a process killed during the call
   leaves a ``sending`` row whose lease expires into ``unknown``, never resent automatically.
2. **Send** (:func:`send_taken`): render, build the MIME message, hand it to the provider.
3. **Finish**: ``sent`` (enrollment advanced), ``retry`` (transient; backoff with jitter,
   bounded attempts then ``failed``), ``failed`` (permanent; a hard bounce suppresses the
   address, a policy block records a ``blocked`` event, an authentication failure pauses the
   mailbox). Every provider call is a :class:`SendAttempt` and a ``send_attempted`` signal.

Quota was reserved when the message was claimed and is never released after a provider call.
"""

from __future__ import annotations

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
from django.db import connection, transaction
from django.db.models import Case, Exists, F, OuterRef, Q, Value, When

from outreach.campaigns.models import Enrollment, Message, Step, Suppression
from outreach.lib import clock
from outreach.lib.loop import Loop
from outreach.pool.models import Domain, Mailbox, ProviderAccount
from outreach.providers import base
from outreach.providers.base import Envelope, Outcome, SendError, SendResult
from outreach.sending import circuit, mime
from outreach.sending.models import SendAttempt
from outreach.sending.signals import send_attempted

log = logging.getLogger(__name__)

State = Message.State
SENDING_MAILBOX_STATES = (Mailbox.State.ACTIVE, Mailbox.State.WARMING)


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
    2. One conditional UPDATE per account: still due, mailbox still sending, address not
       suppressed. Race prevented: two workers reading the same candidates both try to take
       them; ``WHERE state IN (claimed, retry)`` lets exactly one win, so no message is ever
       handed to two provider calls. The winner reads back which rows are its own (its
       worker name and this batch's lease instant).
    3. Candidates that were not taken because their address is now suppressed are cancelled.
    """
    policy = policy or default_policy()
    lease_until = now + timedelta(seconds=policy.sending_lease_seconds)
    with transaction.atomic():
        candidates = Message.objects.filter(_due(now), mailbox__isnull=False).filter(
            _mailbox_can_send()
        )
        if connection.vendor == "postgresql":
            # Rows another worker is taking right now are skipped, not waited for.
            candidates = candidates.select_for_update(skip_locked=True, of=("self",))
        rows = list(
            candidates.order_by("not_before", "pk").values_list(
                "pk",
                "message_id_header",
                "mailbox__domain__name",
                "mailbox__provider_id",
                "mailbox__domain__provider_id",
            )[:limit]
        )
        if not rows:
            return []
        accounts = _accounts({r[3] or r[4] for r in rows})
        router = circuit.Router(now)
        by_account: dict[int, list[int]] = {}
        message_ids: dict[int, str] = {}
        for pk, header, domain_name, own_account, domain_account in rows:
            account = router.route(accounts[own_account or domain_account])
            if account is None:
                continue  # primary down and no usable standby: the message waits
            by_account.setdefault(account.pk, []).append(pk)
            if not header:
                # Assigned once and kept through retries: a receiver can recognize a repeat.
                message_ids[pk] = mime.new_message_id(domain_name)
        for account_id, pks in by_account.items():
            changes: dict[str, Any] = {
                "state": State.SENDING,
                "claimed_by": worker[:128],
                "lease_expires_at": lease_until,
                "provider_account_id": account_id,
                "updated_at": now,
            }
            new_ids = [When(pk=pk, then=Value(message_ids[pk])) for pk in pks if pk in message_ids]
            if new_ids:
                changes["message_id_header"] = Case(*new_ids, default=F("message_id_header"))
            Message.objects.filter(_due(now), pk__in=pks).filter(
                _mailbox_can_send(), _not_suppressed()
            ).update(**changes)
        mine = list(
            Message.objects.filter(
                pk__in=[r[0] for r in rows],
                state=State.SENDING,
                claimed_by=worker[:128],
                lease_expires_at=lease_until,
            ).values_list("pk", "provider_account_id")
        )
        routed = {pk for pks in by_account.values() for pk in pks}
        missed = routed - {pk for pk, _ in mine}
        for pk in missed:
            _cancel_if_suppressed(pk, now)
    return [Taken(pk, account_id, router.is_clean(account_id)) for pk, account_id in mine]


def _accounts(ids: Iterable[int]) -> dict[int, ProviderAccount]:
    return {a.pk: a for a in ProviderAccount.objects.filter(pk__in=ids).select_related("standby")}


def _cancel_if_suppressed(pk: int, now: datetime) -> None:
    """A due message to a suppressed address is cancelled; a claim's units go back."""
    from outreach.scheduler.claiming import release_message

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

    def get(self, account: ProviderAccount) -> base.Provider:
        fingerprint = hashlib.sha256(
            json.dumps([account.kind, account.settings, account.secrets], sort_keys=True).encode()
        ).hexdigest()
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


class RateLimiter:
    """A provider account's own send rate (``max_send_rate``, SES MaxSendRate) in this process.

    Blocks the calling thread until the next send is allowed; shared by the worker's threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: dict[int, float] = {}

    def wait(self, account: ProviderAccount) -> None:
        rate = account.max_send_rate
        if not rate or rate <= 0:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next.get(account.pk, now))
            self._next[account.pk] = slot + 1.0 / rate
        if slot > now:
            time.sleep(slot - now)


_default_limiter = RateLimiter()


def send_taken(
    taken: Taken,
    worker: str,
    *,
    providers: ProviderCache,
    limiter: RateLimiter = _default_limiter,
    policy: SendPolicy | None = None,
) -> str:
    """Send one message this worker has taken; returns the message's new state."""
    policy = policy or default_policy()
    message = Message.objects.select_related(
        "mailbox__domain", "provider_account", "campaign", "enrollment__lead", "step", "variant"
    ).get(pk=taken.message_id)
    account = message.provider_account
    mailbox = message.mailbox
    assert account is not None and mailbox is not None
    try:
        provider = providers.get(account)
        raw, envelope = _prepare(message, mailbox, provider)
    except SendError as err:
        return _finish(message, account, policy, worker, error=err, called=False)
    except Exception as exc:
        # Rendering or building failed (a template error, a broken address): the provider
        # was never called, so this is a clean permanent failure of this message.
        log.warning("message %s cannot be built: %s", message.pk, exc)
        build_error = SendError(f"cannot build the message: {exc}", permanent=True, code="build")
        return _finish(message, account, policy, worker, error=build_error, called=False)
    limiter.wait(account)
    try:
        result = provider.send(raw, envelope)
    except SendError as err:
        return _finish(message, account, policy, worker, error=err)
    except Exception as exc:
        # A provider bug after the call began: it may or may not have gone out. A duplicate
        # cold email is worse than a missing one, so the operator decides.
        log.exception("provider %s failed unexpectedly on message %s", account.name, message.pk)
        return _finish_unknown(message, account, worker, repr(exc))
    return _finish(message, account, policy, worker, result=result, clean=taken.circuit_clean)


def _prepare(message: Message, mailbox: Mailbox, provider: base.Provider) -> tuple[bytes, Envelope]:
    from outreach.events.unsubscribe import unsubscribe_url

    rendered = _render(message)
    credentials: dict[str, Any] = {
        **mailbox.settings,
        **base.resolve_secrets(mailbox.secrets),
    }
    dkim_key = None
    if provider.needs_dkim_signature and credentials.get("dkim_private_key"):
        dkim_key = mime.DkimKey(
            selector=str(credentials.get("dkim_selector") or mailbox.domain.dkim_selector),
            domain=mailbox.domain.name,
            private_key_pem=str(credentials["dkim_private_key"]),
        )
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
        unsubscribe_url=unsubscribe_url(message.pk),
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


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


def _render(message: Message) -> Rendered:
    """The message's content: a campaign step through the template engine; a warm-up message
    from the scheduler's warm-up content (plain text, as a person writes)."""
    if message.kind == Message.Kind.WARMUP or message.enrollment_id is None:
        from outreach.scheduler.warmup import warmup_content

        content = warmup_content(message)
        return Rendered(subject=message.subject or content.subject, html="", text=content.text)
    from outreach.campaigns.templates import render_message

    out = render_message(message)
    return Rendered(subject=out.subject, html=out.html, text=out.text)


# --- 3. finish ----------------------------------------------------------------------------


def _finish(
    message: Message,
    account: ProviderAccount,
    policy: SendPolicy,
    worker: str,
    *,
    result: SendResult | None = None,
    error: SendError | None = None,
    called: bool = True,
    clean: bool = False,
) -> str:
    now = clock.now()
    mailbox = message.mailbox
    assert mailbox is not None
    new_state: str
    mine = Message.objects.filter(
        pk=message.pk, state__in=[State.SENDING, State.UNKNOWN], claimed_by=message.claimed_by
    )
    attempts = message.attempts + (1 if called else 0)
    with transaction.atomic():
        if result is not None:
            new_state = State.SENT
            # Also from `unknown`: if the lease ran out while the provider was slow but it did
            # accept the message, the truth is `sent`.
            mine.update(
                state=State.SENT,
                provider_message_id=result.provider_message_id[:255],
                sent_at=now,
                attempts=attempts,
                last_error="",
                lease_expires_at=None,
                updated_at=now,
            )
            Mailbox.objects.filter(pk=mailbox.pk).update(last_sent_at=now, consecutive_failures=0)
            _advance_enrollment(message, now)
            outcome: str = SendAttempt.Outcome.SENT
            code, response = result.code, result.response
        else:
            assert error is not None
            new_state = _apply_failure(message, mine, error, attempts, policy, now)
            outcome, code, response = error.kind.value, error.code, error.message
        attempt = None
        if called:
            attempt = SendAttempt.objects.create(
                message=message,
                mailbox=mailbox,
                provider_account=account,
                outcome=outcome,
                code=code[:32],
                response=response[:4000],
                at=now,
            )
            _signal(attempt)
    if error is not None:
        _after_failure(message, account, error, attempt, now)
    elif called and not clean:
        circuit.record_success(account)
    return new_state


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
            not_before=now + backoff(attempts, policy),
            lease_expires_at=None,
            **common,
        )
        return State.RETRY
    if error.kind == Outcome.AUTH_FAILED:
        # The mailbox is paused below; the message has not gone out, so it goes back to the
        # router (a pinned follow-up keeps waiting for its own mailbox). Its units stay used:
        # a provider was called.
        mine.update(
            state=State.SCHEDULED,
            mailbox=None,
            provider_account=None,
            claimed_by="",
            lease_expires_at=None,
            quota_day=None,
            not_before=now,
            **common,
        )
        return State.SCHEDULED
    mine.update(state=State.FAILED, lease_expires_at=None, **common)
    return State.FAILED


def _pauses_mailbox(message: Message) -> bool:
    # SMTP logins belong to the mailbox; an API key refused is the account's problem, which
    # the circuit breaker handles by failing over.
    account = message.provider_account
    return account is None or account.kind in (
        ProviderAccount.Kind.SMTP,
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
    if error.kind == Outcome.TRANSIENT:
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


def _pause_mailbox(message: Message, error: SendError) -> None:
    from outreach.pool.states import IllegalTransition, transition_mailbox

    mailbox = Mailbox.objects.select_related("domain").get(pk=message.mailbox_id or 0)
    if mailbox.state not in SENDING_MAILBOX_STATES:
        return
    try:
        transition_mailbox(
            mailbox,
            Mailbox.State.PAUSED,
            reason=f"authentication failed: {error}"[:500],
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
            diagnostic=str(error)[:2000],
            raw={"code": error.code, "response": error.message, "kind": error.kind.value},
        )
    )


def _finish_unknown(message: Message, account: ProviderAccount, worker: str, error: str) -> str:
    now = clock.now()
    with transaction.atomic():
        Message.objects.filter(
            pk=message.pk, state=State.SENDING, claimed_by=message.claimed_by
        ).update(
            state=State.UNKNOWN,
            attempts=message.attempts + 1,
            last_error=f"provider call ended unexpectedly: {error}"[:2000],
            lease_expires_at=None,
            updated_at=now,
        )
        assert message.mailbox is not None
        attempt = SendAttempt.objects.create(
            message=message,
            mailbox=message.mailbox,
            provider_account=account,
            outcome=SendAttempt.Outcome.TRANSIENT,
            code="unknown",
            response=error[:4000],
            at=now,
        )
        _signal(attempt)
    return State.UNKNOWN


def _signal(attempt: SendAttempt) -> None:
    # A savepoint: a failing listener (metrics, health rules) must not undo the attempt.
    try:
        with transaction.atomic():
            send_attempted.send(sender=SendAttempt, attempt=attempt)
    except Exception:
        log.exception("send_attempted listener failed for attempt %s", attempt.pk)


def _advance_enrollment(message: Message, sent_at: datetime) -> None:
    """After a step went out: the thread is set on step 1, the next step falls due after its
    delay, or the enrollment finishes after the last step."""
    step = message.step
    if message.enrollment_id is None or step is None:
        return
    enrollments = Enrollment.objects.filter(pk=message.enrollment_id)
    if step.position == 1:
        enrollments.filter(thread_mailbox__isnull=True).update(
            thread_mailbox_id=message.mailbox_id,
            thread_message_id=message.message_id_header or "",
        )
    following = (
        Step.objects.filter(campaign_id=step.campaign_id, position__gt=step.position)
        .order_by("position")
        .first()
    )
    changes: dict[str, Any] = {"last_step": step.position}
    if following is not None:
        changes["next_due_at"] = sent_at + timedelta(
            days=following.delay_days, hours=following.delay_hours
        )
    else:
        changes.update(state=Enrollment.State.FINISHED, next_due_at=None)
    # Only an active enrollment moves on: one stopped by a reply meanwhile stays stopped.
    enrollments.filter(state=Enrollment.State.ACTIVE, last_step__lte=step.position).update(
        **changes
    )


# --- recovery, health, the loop ----------------------------------------------------------


def expire_sending(now: datetime) -> int:
    """``sending`` rows whose lease ran out become ``unknown`` (the scheduler's recovery does
    the same; doing it here too keeps a worker-only deployment honest)."""
    return Message.objects.filter(state=State.SENDING, lease_expires_at__lt=now).update(
        state=State.UNKNOWN,
        last_error="lease expired during the provider call; not resent automatically",
        updated_at=now,
    )


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
    providers = ProviderCache()
    try:
        for item in taken:
            send_taken(item, worker, providers=providers)
    finally:
        providers.close()
    return len(taken)


class Worker:
    """``outreach worker``: takes due messages in batches and sends them on ``concurrency``
    threads; a batch is finished before the next is taken and before a stop is honoured."""

    HEALTH_EVERY = timedelta(minutes=1)
    # Messages taken per thread and batch: one take transaction serves several sends, and a
    # stop request still waits for at most a few seconds of work.
    BATCH_PER_THREAD = 8

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
        if self._pool is None:
            for item in taken:
                self._send(item)
        else:
            list(self._pool.map(self._send, taken))
        return True

    def on_tick(self) -> None:
        now = clock.now()
        expire_sending(now)
        if self._next_health is None or now >= self._next_health:
            sync_provider_health()
            self._next_health = now + self.HEALTH_EVERY

    def _send(self, item: Taken) -> None:
        cache = getattr(self._local, "providers", None)
        if cache is None:
            cache = self._local.providers = ProviderCache()
            with self._caches_lock:
                self._caches.append(cache)
        try:
            send_taken(item, self.name, providers=cache, policy=self.policy)
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
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        conn.close_if_unusable_or_obsolete()


def make_loop(stop: threading.Event) -> Loop:
    """The worker loop for ``outreach run`` (listed in ``settings.OUTREACH_LOOPS``)."""
    worker = Worker()
    return Loop(
        name="worker",
        handle_one=worker.handle_one,
        idle_seconds=1.0,
        on_tick=worker.on_tick,
        stop=stop,
    )
