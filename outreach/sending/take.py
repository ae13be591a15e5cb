"""Step 1 of the sending engine, the take (see :mod:`outreach.sending.engine`), and the
policy every step follows.

A conditional UPDATE ``claimed``/due ``retry`` → ``sending``, only while the mailbox (and its
domain) may still send, the sequence is live and the address is not suppressed, choosing the
provider account (primary, or its standby while the primary's circuit is open). The
transaction **commits before any provider call**.
"""

from __future__ import annotations

import os
import random
import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, Field, OuterRef, Q
from django.db.models.expressions import RawSQL

from outreach.campaigns.models import Campaign, Enrollment, Message, Suppression
from outreach.lib import clock
from outreach.pool.models import Domain, Mailbox, ProviderAccount
from outreach.pool.policy import SENDING_STATES as SENDING_MAILBOX_STATES
from outreach.providers import mime
from outreach.scheduler.counters import release_message
from outreach.sending import circuit, sql

State = Message.State


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
    3. One conditional UPDATE per account: still due, mailbox still sending, sequence still
       live, address not suppressed. Race prevented: two workers reading the same candidates
       both try to take them; ``WHERE state IN (claimed, retry)`` lets exactly one win, so no
       message is ever handed to two provider calls. The winner reads back which rows are its
       own (its worker name and this batch's lease instant).
    4. Candidates that were not taken because their address is now suppressed are cancelled.
    """
    policy = policy or default_policy()
    lease_until = now + timedelta(seconds=policy.sending_lease_seconds)
    with transaction.atomic():
        rows = _candidates(now, limit, policy)
        if not rows:
            return []
        routes = _route(rows, now)
        send_at = _reserve_slots(routes, now, policy)
        for account_id, pks in routes.by_account.items():
            _take(pks, account_id, routes.message_ids, worker, now, lease_until)
        mine = _taken_by(worker, lease_until, [r[0] for r in rows])
        for pk in routes.tried() - {pk for pk, _ in mine}:
            _cancel_if_suppressed(pk, now)
    # In the order the candidates were read, which is also the order of their send slots.
    order = {row[0]: i for i, row in enumerate(rows)}
    return [
        Taken(pk, account_id, routes.router.is_clean(account_id), send_at.get(pk))
        for pk, account_id in sorted(mine, key=lambda m: order[m[0]])
    ]


@dataclass
class _Routes:
    """Where a batch's candidates go: their accounts, and the Message-IDs they still need."""

    router: circuit.Router
    by_account: dict[int, list[int]] = field(default_factory=dict)
    accounts: dict[int, ProviderAccount] = field(default_factory=dict)
    message_ids: dict[int, str] = field(default_factory=dict)

    def tried(self) -> set[int]:
        return {pk for pks in self.by_account.values() for pk in pks}


def _route(rows: list[tuple[Any, ...]], now: datetime) -> _Routes:
    """Step 1: each candidate to its account (primary, or standby while the primary's circuit
    is open); a candidate with neither usable waits."""
    accounts = _accounts({r[3] or r[4] for r in rows})
    routes = _Routes(circuit.Router(now))
    for pk, header, domain_name, own_account, domain_account in rows:
        account = routes.router.route(accounts[own_account or domain_account])
        if account is None:
            continue  # primary down and no usable standby: the message waits
        routes.by_account.setdefault(account.pk, []).append(pk)
        routes.accounts[account.pk] = account
        if not header:
            # Assigned once and kept through retries: a receiver can recognize a repeat.
            routes.message_ids[pk] = mime.new_message_id(domain_name)
    return routes


def _reserve_slots(routes: _Routes, now: datetime, policy: SendPolicy) -> dict[int, float]:
    """Step 2: the send slot (``time.monotonic()``) of each candidate of a rate-limited
    account; candidates beyond the slots reserved are dropped from ``routes``."""
    send_at: dict[int, float] = {}
    # Account rows are locked in id order: two takes never wait for each other crosswise.
    for account_id in sorted(routes.by_account):
        rate = routes.accounts[account_id].max_send_rate
        if not rate or rate <= 0:
            continue
        pks = routes.by_account[account_id]
        allowed, wait = reserve_rate(account_id, rate, len(pks), now, policy)
        routes.by_account[account_id] = pks[:allowed]
        first = time.monotonic() + wait
        send_at.update((pk, first + i / rate) for i, pk in enumerate(pks[:allowed]))
    return send_at


def _take(
    pks: list[int],
    account_id: int,
    message_ids: dict[int, str],
    worker: str,
    now: datetime,
    lease_until: datetime,
) -> None:
    """Step 3: one conditional UPDATE of one account's candidates to ``sending``."""
    if not pks:
        return
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
        changes["message_id_header"] = per_message(
            new_ids, "message_id_header", every_row=len(new_ids) == len(pks)
        )
    Message.objects.filter(_due(now), sql.AnyOf(F("pk"), pks)).filter(
        _mailbox_can_send(), _sequence_live(), _not_suppressed()
    ).update(**changes)


def _taken_by(worker: str, lease_until: datetime, pks: list[int]) -> list[tuple[int, int]]:
    """Which of ``pks`` this take won: ``(pk, provider account)``."""
    return list(
        Message.objects.filter(
            sql.AnyOf(F("pk"), pks),
            state=State.SENDING,
            claimed_by=worker[:128],
            lease_expires_at=lease_until,
        ).values_list("pk", "provider_account_id")
    )


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


def per_message(values: dict[int, str], field: str, *, every_row: bool) -> Any:
    """One column's new value per message pk, as one expression for an UPDATE: a plain value
    when they all agree (an SMTP server's reply) and ``every_row`` of the UPDATE is among
    ``values``, else the value of the row's pk, the column's own for other rows
    (:func:`outreach.sending.sql.pick`).

    Written as SQL with parameters: the ORM's ``Case(When(pk=...))`` resolves one filter per
    branch, which cost more than the whole UPDATE for a batch of a hundred messages.
    """
    target = Message._meta.get_field(field)
    assert isinstance(target, Field) and target.column
    expression, params = sql.pick(
        sql.column(Message, "pk"), values, sql.column(Message, field), every_row=every_row
    )
    # Identifiers come from the model; every value is a parameter.
    return RawSQL(expression, params, output_field=target)  # noqa: S611
