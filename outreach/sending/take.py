"""Step 1 of the sending engine, the take (see :mod:`outreach.sending.engine`), and the
policy every step follows.

A conditional UPDATE ``claimed``/due ``retry`` → ``sending``, only while the mailbox (and its
domain) may still send, the sequence is live and the address is not suppressed, choosing the
provider account (primary, or its standby while the primary's circuit is open). The
transaction **commits before any provider call**.
"""

from __future__ import annotations

import functools
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
from django.db.models import Field
from django.db.models.expressions import RawSQL

from outreach.campaigns.models import Campaign, Enrollment, Message, Suppression
from outreach.lib import clock, sql
from outreach.pool.models import Domain, Mailbox, ProviderAccount
from outreach.pool.policy import SENDING_STATES as SENDING_MAILBOX_STATES
from outreach.providers import mime
from outreach.scheduler.counters import release_message
from outreach.sending import circuit

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


# The take's checks, as SQL conditions on a row of the message table (named in full: an UPDATE
# cannot alias it on every SQLite), written once: built by the ORM they were compiled again
# for every batch, which cost more than running them. Identifiers come from the models and
# every value is a parameter.


@functools.cache
def _may_send(vendor: str) -> tuple[str, tuple[Any, ...]]:
    """The message's mailbox (and its domain) may still send, and its sequence is live.

    A reply can stop an enrollment, and an operator can pause a campaign, after a message
    was claimed: such a message is not taken. Its lease runs out and the scheduler's
    recovery gives its units back. EXISTS rather than joins: an UPDATE filtered through a
    join becomes ``id IN (SELECT ... every due message ...)``, one pass over the whole
    backlog per batch.
    """
    m, b, d = (functools.partial(sql.column, model) for model in (Message, Mailbox, Domain))
    e, c = (functools.partial(sql.column, model) for model in (Enrollment, Campaign))
    me = sql.table(Message)
    states = ", ".join(["%s"] * len(SENDING_MAILBOX_STATES))
    condition = (
        f"EXISTS(SELECT 1 FROM {sql.table(Mailbox)} b "  # noqa: S608
        f"INNER JOIN {sql.table(Domain)} d ON b.{b('domain')} = d.{d('pk')} "
        f"WHERE b.{b('pk')} = {me}.{m('mailbox')} AND b.{b('state')} IN ({states}) "
        f"AND d.{d('state')} = %s) "
        f"AND ({me}.{m('enrollment')} IS NULL OR ("
        f"EXISTS(SELECT 1 FROM {sql.table(Enrollment)} e "
        f"WHERE e.{e('pk')} = {me}.{m('enrollment')} AND e.{e('state')} = %s) "
        f"AND EXISTS(SELECT 1 FROM {sql.table(Campaign)} c "
        f"WHERE c.{c('pk')} = {me}.{m('campaign')} AND c.{c('state')} = %s)))"
    )
    params = (
        *sorted(SENDING_MAILBOX_STATES),
        Domain.State.ACTIVE.value,
        Enrollment.State.ACTIVE.value,
        Campaign.State.ACTIVE.value,
    )
    return condition, params


@functools.cache
def _not_suppressed(vendor: str) -> tuple[str, tuple[Any, ...]]:
    """Neither the message's address nor its domain is suppressed."""
    m, x = functools.partial(sql.column, Message), functools.partial(sql.column, Suppression)
    me, table = sql.table(Message), sql.table(Suppression)
    condition = " AND ".join(
        f"NOT EXISTS(SELECT 1 FROM {table} s "  # noqa: S608
        f"WHERE s.{x('kind')} = %s AND s.{x('value')} = {me}.{m(column)})"
        for column in ("to_email", "to_domain")
    )
    return condition, (Suppression.Kind.ADDRESS.value, Suppression.Kind.DOMAIN.value)


def _due(now: datetime) -> tuple[str, list[Any]]:
    # A claim whose lease ran out belongs to the scheduler's recovery (back to scheduled,
    # units released); taking it too would let both win.
    m, me, at = functools.partial(sql.column, Message), sql.table(Message), sql.when(now)
    return (
        f"(({me}.{m('state')} = %s AND {me}.{m('lease_expires_at')} > %s) "
        f"OR ({me}.{m('state')} = %s AND {me}.{m('not_before')} <= %s))",
        [State.CLAIMED, at, State.RETRY, at],
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
    m, me = functools.partial(sql.column, Message), sql.table(Message)
    at = sql.when(now)
    changes = (
        f"{m('state')} = %s, {m('claimed_by')} = %s, {m('lease_expires_at')} = %s, "
        f"{m('provider_account')} = %s, {m('updated_at')} = %s, "
        # This attempt's markers (a retry's are from its previous attempt).
        f"{m('call_started_at')} = NULL, {m('accepted_at')} = NULL"
    )
    params: list[Any] = [State.SENDING, worker[:128], sql.when(lease_until), account_id, at]
    new_ids = {pk: message_ids[pk] for pk in pks if pk in message_ids}
    if new_ids:
        header, header_params = sql.pick(
            m("pk"), new_ids, m("message_id_header"), every_row=len(new_ids) == len(pks)
        )
        changes += f", {m('message_id_header')} = {header}"
        params += header_params
    due, due_params = _due(now)
    mine, mine_params = sql.any_of(f"{me}.{m('pk')}", pks)
    may_send, may_send_params = _may_send(connection.vendor)
    allowed, allowed_params = _not_suppressed(connection.vendor)
    sql.execute(
        f"UPDATE {me} SET {changes} WHERE {due} AND {mine} "  # noqa: S608
        f"AND {may_send} AND {allowed}",
        [*params, *due_params, *mine_params, *may_send_params, *allowed_params],
    )


def _taken_by(worker: str, lease_until: datetime, pks: list[int]) -> list[tuple[int, int]]:
    """Which of ``pks`` this take won: ``(pk, provider account)``."""
    m = functools.partial(sql.column, Message)
    mine, mine_params = sql.any_of(m("pk"), pks)
    rows = sql.fetch(
        f"SELECT {m('pk')}, {m('provider_account')} FROM {sql.table(Message)} "  # noqa: S608
        f"WHERE {mine} AND {m('state')} = %s AND {m('claimed_by')} = %s "
        f"AND {m('lease_expires_at')} = %s",
        [*mine_params, State.SENDING, worker[:128], sql.when(lease_until)],
    )
    return [(pk, account_id) for pk, account_id in rows]


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
    m, b, d, a = (
        functools.partial(sql.column, model)
        for model in (Message, Mailbox, Domain, ProviderAccount)
    )
    me = sql.table(Message)
    full = (
        f"SELECT {a('pk')} FROM {sql.table(ProviderAccount)} "  # noqa: S608
        f"WHERE {a('max_send_rate')} > %s AND {a('rate_slot_at')} >= %s"
    )
    horizon = sql.when(now + timedelta(seconds=policy.rate_horizon_seconds))
    may_send, may_send_params = _may_send(connection.vendor)
    lock = f" FOR UPDATE OF {me} SKIP LOCKED" if connection.vendor == "postgresql" else ""
    at = sql.when(now)
    rows: list[tuple[Any, ...]] = []
    for state, due in (
        (State.CLAIMED, f"{me}.{m('lease_expires_at')} > %s"),
        (State.RETRY, f"{me}.{m('not_before')} <= %s"),
    ):
        rows += sql.fetch(
            f"SELECT {me}.{m('not_before')}, {me}.{m('pk')}, "  # noqa: S608
            f"{me}.{m('message_id_header')}, md.{d('name')}, mb.{b('provider')}, "
            f"md.{d('provider')} FROM {me} "
            f"INNER JOIN {sql.table(Mailbox)} mb ON {me}.{m('mailbox')} = mb.{b('pk')} "
            f"LEFT OUTER JOIN {sql.table(Domain)} md ON mb.{b('domain')} = md.{d('pk')} "
            f"WHERE {may_send} "
            f"AND NOT ((mb.{b('provider')} IN ({full}) AND mb.{b('provider')} IS NOT NULL) "
            f"OR (md.{d('provider')} IN ({full}) AND mb.{b('provider')} IS NULL)) "
            f"AND {me}.{m('state')} = %s AND {due} "
            f"ORDER BY {me}.{m('not_before')}, {me}.{m('pk')} LIMIT %s{lock}",
            [*may_send_params, 0, horizon, 0, horizon, state, at, limit],
        )
    # Both reads merged in the order of (not_before, pk), as each was read.
    return [row[1:] for row in sorted(rows, key=lambda row: (row[0], row[1]))[:limit]]


def _accounts(ids: Iterable[int]) -> dict[int, ProviderAccount]:
    return sql.load(ProviderAccount, ids, follow=["standby"])


def _cancel_if_suppressed(pk: int, now: datetime) -> None:
    """A due message to a suppressed address is cancelled; a claim's units go back."""
    m, me = functools.partial(sql.column, Message), sql.table(Message)
    allowed, allowed_params = _not_suppressed(connection.vendor)
    suppressed = sql.fetch(
        f"SELECT {m('pk')} FROM {me} WHERE {me}.{m('pk')} = %s "  # noqa: S608
        f"AND {me}.{m('state')} IN (%s, %s) AND NOT ({allowed})",
        [pk, State.CLAIMED, State.RETRY, *allowed_params],
    )
    message = Message.objects.select_related("mailbox").filter(pk=pk).first()
    if not suppressed or message is None or message.state not in (State.CLAIMED, State.RETRY):
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
    (:func:`outreach.lib.sql.pick`).

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
