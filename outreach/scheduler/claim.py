"""One claim: a due message gets a mailbox and one unit of every cap, atomically.

A claim is one transaction that (1) moves the message ``scheduled`` → ``claimed``, (2) takes
the mailbox's pacing slot, (3) reserves one unit on every daily counter the message falls under
(global, domain, mailbox, campaign, recipient domain). Each step is a conditional UPDATE whose
affected row count is checked; if any of them finds nothing to change the whole transaction
rolls back, so a claim either holds every unit it needs or none. This is what makes a cap a
promise across processes and machines: the database, not a process's memory, decides.

The in-memory :class:`~outreach.scheduler.routing.PoolRouter` only *proposes* a mailbox; when
its view is stale (another process used the quota) the UPDATE refuses and the router is told.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import DatabaseError, connection, transaction

from outreach.campaigns.models import Message
from outreach.pool.models import Domain, Mailbox
from outreach.pool.policy import SENDING_STATES
from outreach.scheduler.counters import (
    Reservation,
    first_full,
    full_scope,
    reserve,
)
from outreach.scheduler.models import DailyCounter

log = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class ClaimOutcome:
    """What became of one claim attempt."""

    claimed: bool
    # "gone" (someone else took the message), "busy" (mailbox paced/changed), "full" (a cap).
    reason: str = ""
    scope: str = ""
    key: str = ""


CLAIMED = ClaimOutcome(True)
GONE = ClaimOutcome(False, "gone")
BUSY = ClaimOutcome(False, "busy")
# A refused reservation, inside claim_one: the counter is named after the rollback.
_FULL = ClaimOutcome(False, "full")


class _Refused(Exception):
    def __init__(self, outcome: ClaimOutcome):
        self.outcome = outcome


def claim_one(
    message_id: int,
    *,
    mailbox_id: int,
    provider_account_id: int,
    reservation: Reservation,
    day: date,
    now: datetime,
    next_send_at: datetime,
    lease: timedelta,
    worker: str,
    allowed_states: tuple[str, ...] = SENDING_STATES,
) -> ClaimOutcome:
    """Claim ``message_id`` for ``mailbox_id`` in one transaction, or change nothing.

    Inside an outer transaction (the routing pass commits claims in groups) it is a savepoint:
    all-or-nothing all the same, and nothing is visible to others before the outer commit.

    Steps, each a conditional UPDATE that must change exactly one row (or one per counter):

    1. the message is still ``scheduled`` (another process may have claimed it a moment ago;
       on PostgreSQL a row being claimed right now is skipped, not waited for);
    2. the mailbox is still in a sending state, on a sending domain, and its pacing slot is
       free (``next_send_at <= now``): two processes routing to the same mailbox at once
       cannot both send inside the gap; the slot moves to ``next_send_at``;
    3. every cap of ``reservation`` has a unit left (see :func:`.counters.reserve`).

    Locks are taken in that order (message, mailbox, counters) by every claim. Claims grouped
    in one transaction (:func:`claim_batch`) can still wait on another group's rows in a
    cycle; the database then aborts one claim (a deadlock error), which comes back ``busy``.
    """
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            # 1. The message, still scheduled.
            if not _take_message(
                cursor, message_id, mailbox_id, provider_account_id, day, now, lease, worker
            ):
                raise _Refused(GONE)
            # 2. The mailbox's pacing slot, while it and its domain may still send.
            if not _take_slot(cursor, mailbox_id, now, next_send_at, allowed_states):
                raise _Refused(BUSY)
            # 3. One unit of every cap.
            if not reserve(cursor, day, reservation):
                raise _Refused(_FULL)
    except _Refused as refused:
        if refused.outcome is _FULL:
            # Named after the rollback: the refused reservation's own increments are undone,
            # so the counter named is the one that had no unit left.
            return ClaimOutcome(False, "full", *full_scope(day, reservation))
        return refused.outcome
    except DatabaseError as exc:
        # A serialization failure or deadlock on PostgreSQL, a busy timeout on SQLite: the
        # transaction rolled back entirely; the message stays scheduled for the next pass.
        log.warning("claim of message %s rolled back: %s", message_id, exc)
        return BUSY
    return CLAIMED


def _take_message(
    cursor: Any,
    message_id: int,
    mailbox_id: int,
    provider_account_id: int,
    day: date,
    now: datetime,
    lease: timedelta,
    worker: str,
) -> bool:
    """Step 1 of a claim: the message, if still ``scheduled``, becomes ``claimed``."""
    ops = connection.ops
    message_table = Message._meta.db_table
    if connection.vendor == "postgresql":
        # SKIP LOCKED: a row another process is claiming right now is not worth waiting for;
        # its UPDATE will win and ours would then find nothing anyway.
        target = (
            f"id = (SELECT id FROM {message_table} WHERE id = %s AND state = %s "  # noqa: S608
            "FOR UPDATE SKIP LOCKED)"
        )
    else:
        target = "id = %s AND state = %s"
    cursor.execute(
        f"UPDATE {message_table} SET state = %s, mailbox_id = %s, "  # noqa: S608
        "provider_account_id = %s, claimed_by = %s, lease_expires_at = %s, "
        f"quota_day = %s, updated_at = %s WHERE {target}",
        [
            Message.State.CLAIMED,
            mailbox_id,
            provider_account_id,
            worker[:128],
            ops.adapt_datetimefield_value(now + lease),
            ops.adapt_datefield_value(day),
            ops.adapt_datetimefield_value(now),
            message_id,
            Message.State.SCHEDULED,
        ],
    )
    return bool(cursor.rowcount == 1)


def _take_slot(
    cursor: Any,
    mailbox_id: int,
    now: datetime,
    next_send_at: datetime,
    allowed_states: tuple[str, ...],
) -> bool:
    """Step 2 of a claim: the mailbox's pacing slot, while it and its domain may send."""
    ops = connection.ops
    states = ", ".join(["%s"] * len(allowed_states))
    cursor.execute(
        f"UPDATE {Mailbox._meta.db_table} SET next_send_at = %s "  # noqa: S608
        f"WHERE id = %s AND state IN ({states}) "
        "AND (next_send_at IS NULL OR next_send_at <= %s) "
        f"AND EXISTS (SELECT 1 FROM {Domain._meta.db_table} d "
        f"WHERE d.id = {Mailbox._meta.db_table}.domain_id AND d.state = %s)",
        [
            ops.adapt_datetimefield_value(next_send_at),
            mailbox_id,
            *allowed_states,
            ops.adapt_datetimefield_value(now),
            Domain.State.ACTIVE,
        ],
    )
    return bool(cursor.rowcount == 1)


@dataclass(frozen=True)
class Proposal:
    """One claim to make: this message, from this mailbox, holding these units."""

    message_id: int
    mailbox_id: int
    provider_account_id: int
    reservation: Reservation
    next_send_at: datetime


def claim_batch(
    proposals: list[Proposal],
    *,
    day: date,
    now: datetime,
    lease: timedelta,
    worker: str,
    allowed_states: tuple[str, ...] = SENDING_STATES,
) -> list[ClaimOutcome]:
    """Claim every proposal, in order, each all-or-nothing, in one transaction: an
    :class:`ClaimOutcome` per proposal.

    On PostgreSQL the whole batch is one call of the ``outreach_claim_batch_v1`` function
    (created by a migration), which runs :func:`claim_one`'s steps server-side: a claim costs
    no round trip of its own. On SQLite the batch is decided in memory from one read of its
    rows and written in a few guarded statements (:func:`_claim_batch_setwise`), or, should a
    statement refuse, claimed one :func:`claim_one` savepoint per proposal.
    """
    if not proposals:
        return []
    implementation = "plpgsql" if connection.vendor == "postgresql" else "setwise"
    with transaction.atomic():
        return IMPLEMENTATIONS[implementation](proposals, day, now, lease, worker, allowed_states)


def _claim_batch_python(
    proposals: list[Proposal],
    day: date,
    now: datetime,
    lease: timedelta,
    worker: str,
    allowed_states: tuple[str, ...],
) -> list[ClaimOutcome]:
    return [
        claim_one(
            p.message_id,
            mailbox_id=p.mailbox_id,
            provider_account_id=p.provider_account_id,
            reservation=p.reservation,
            day=day,
            now=now,
            next_send_at=p.next_send_at,
            lease=lease,
            worker=worker,
            allowed_states=allowed_states,
        )
        for p in proposals
    ]


# --- The set-wise claim (SQLite) -------------------------------------------------------------


class _SetRefused(Exception):
    """A set-wise statement changed fewer rows than the decision counted on."""


def _claim_batch_setwise(
    proposals: list[Proposal],
    day: date,
    now: datetime,
    lease: timedelta,
    worker: str,
    allowed_states: tuple[str, ...],
) -> list[ClaimOutcome]:
    """The whole batch in a few statements, answering exactly as :func:`_claim_batch_python`.

    SQLite has one writer: inside the routing pass's IMMEDIATE transaction nobody else
    writes, so what the batch's rows look like can be read once and every claim decided in
    order in memory (:func:`decide_claims`, the same three steps as :func:`claim_one`). The
    claims decided are then applied set-wise, each statement still guarded as a claim's is
    (message still ``scheduled``, pacing slot free while mailbox and domain may send,
    ``used + n <= cap`` on every counter) and its affected row count checked. Should any
    statement change fewer rows than decided (the read was stale: a writer we did not expect),
    the batch's changes are rolled back and it is claimed again one savepoint per claim.
    """
    try:
        with transaction.atomic():  # one savepoint for the batch
            state = _read_batch_rows(proposals, day)
            outcomes = decide_claims(proposals, state, now, allowed_states)
            claims = [p for p, o in zip(proposals, outcomes, strict=True) if o.claimed]
            _apply_claims(claims, day, now, lease, worker, allowed_states)
    except (_SetRefused, DatabaseError) as exc:
        log.info("set-wise claim of %d proposals fell back to one by one: %s", len(proposals), exc)
        return _claim_batch_python(proposals, day, now, lease, worker, allowed_states)
    return outcomes


@dataclass
class BatchRows:
    """What a claim batch's rows look like before it: plain values for :func:`decide_claims`.

    ``messages``: message id -> state; ``mailboxes``: mailbox id -> (state, pacing slot,
    domain's state); ``counters``: (scope, key) -> used, for the rows that exist.
    """

    messages: dict[int, str]
    mailboxes: dict[int, tuple[str, datetime | None, str]]
    counters: dict[tuple[str, str], int]


def _read_batch_rows(proposals: list[Proposal], day: date) -> BatchRows:
    """The batch's messages, mailboxes (with their domains) and counters: three SELECTs."""
    message_ids = list({p.message_id for p in proposals})
    mailbox_ids = list({p.mailbox_id for p in proposals})
    # As in counters.reserve: each term names a whole (scope, key, day), so every row is
    # found through the unique index whatever the planner thinks of the day's other rows.
    day_value = connection.ops.adapt_datefield_value(day)
    keys = {k for p in proposals for k in p.reservation.keys()}
    params: list[Any] = []
    for scope, key in keys:
        params += [scope, key, day_value]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, state FROM {Message._meta.db_table} "  # noqa: S608
            f"WHERE id IN ({_marks(message_ids)})",
            message_ids,
        )
        messages = dict(cursor.fetchall())
        cursor.execute(
            f"SELECT m.id, m.state, m.next_send_at, d.state FROM {Mailbox._meta.db_table} m "  # noqa: S608
            f"JOIN {Domain._meta.db_table} d ON d.id = m.domain_id "
            f"WHERE m.id IN ({_marks(mailbox_ids)})",
            mailbox_ids,
        )
        mailboxes = {
            pk: (state, _aware(slot), domain_state)
            for pk, state, slot, domain_state in cursor.fetchall()
        }
        cursor.execute(
            f'SELECT scope, "key", used FROM {DailyCounter._meta.db_table} WHERE '  # noqa: S608
            + " OR ".join(['(scope = %s AND "key" = %s AND day = %s)'] * len(keys)),
            params,
        )
        counters = {(scope, key): used for scope, key, used in cursor.fetchall()}
    return BatchRows(messages, mailboxes, counters)


def _marks(values: list[Any]) -> str:
    return ", ".join(["%s"] * len(values))


def _aware(value: datetime | None) -> datetime | None:
    # SQLite gives stored datetimes back naive, in UTC (how Django stores them).
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def decide_claims(
    proposals: list[Proposal],
    rows: BatchRows,
    now: datetime,
    allowed_states: tuple[str, ...],
) -> list[ClaimOutcome]:
    """What :func:`claim_one` would answer for each proposal in turn, from the rows as they
    were before the batch; ``rows`` is brought forward by every claim decided (a pure
    function of plain values: no database).

    1. The message must still be ``scheduled`` (an earlier claim of the batch may have taken
       it): else ``gone``.
    2. The mailbox must be in ``allowed_states`` on an ``active`` domain with its pacing slot
       free (an earlier claim of the batch moved it): else ``busy``.
    3. Every counter must exist and be under its cap: else ``full``, naming the counter
       :func:`claim_one` names (:func:`.counters.first_full`), or global when none is at its cap.
    """
    outcomes = []
    for p in proposals:
        if rows.messages.get(p.message_id) != Message.State.SCHEDULED:
            outcomes.append(GONE)
            continue
        mailbox = rows.mailboxes.get(p.mailbox_id)
        if mailbox is None:
            outcomes.append(BUSY)
            continue
        state, slot, domain_state = mailbox
        if (
            state not in allowed_states
            or domain_state != Domain.State.ACTIVE
            or (slot is not None and slot > now)
        ):
            outcomes.append(BUSY)
            continue
        keys = p.reservation.keys()
        free = len(set(keys)) == len(keys) and all(
            (scope, key) in rows.counters and (cap is None or rows.counters[(scope, key)] < cap)
            for scope, key, cap in p.reservation.units
        )
        if not free:
            outcomes.append(ClaimOutcome(False, "full", *first_full(p.reservation, rows.counters)))
            continue
        rows.messages[p.message_id] = Message.State.CLAIMED
        rows.mailboxes[p.mailbox_id] = (state, p.next_send_at, domain_state)
        for key in keys:
            rows.counters[key] += 1
        outcomes.append(CLAIMED)
    return outcomes


def _apply_claims(
    claims: list[Proposal],
    day: date,
    now: datetime,
    lease: timedelta,
    worker: str,
    allowed_states: tuple[str, ...],
) -> None:
    """Write the decided claims: one guarded statement per table (run for each row), each
    checked to have changed exactly the rows decided; :class:`_SetRefused` otherwise."""
    if not claims:
        return
    ops = connection.ops
    # The pacing slot a mailbox ends the batch with is its last claim's.
    slots = {p.mailbox_id: p.next_send_at for p in claims}
    # Units per counter, guarded by the lowest cap any claim carried for it.
    units: dict[tuple[str, str], tuple[int, int | None]] = {}
    for p in claims:
        for scope, key, cap in p.reservation.units:
            n, lowest = units.get((scope, key), (0, cap))
            if cap is not None:
                lowest = cap if lowest is None else min(cap, lowest)
            units[(scope, key)] = (n + 1, lowest)
    day_value = ops.adapt_datefield_value(day)
    now_value = ops.adapt_datetimefield_value(now)
    states = ", ".join(["%s"] * len(allowed_states))
    with connection.cursor() as cursor:
        # 1. The messages, each still scheduled.
        cursor.executemany(
            f"UPDATE {Message._meta.db_table} SET state = %s, mailbox_id = %s, "  # noqa: S608
            "provider_account_id = %s, claimed_by = %s, lease_expires_at = %s, "
            "quota_day = %s, updated_at = %s WHERE id = %s AND state = %s",
            [
                (
                    Message.State.CLAIMED,
                    p.mailbox_id,
                    p.provider_account_id,
                    worker[:128],
                    ops.adapt_datetimefield_value(now + lease),
                    day_value,
                    now_value,
                    p.message_id,
                    Message.State.SCHEDULED,
                )
                for p in claims
            ],
        )
        _expect(cursor, len(claims), "messages")
        # 2. The mailboxes' pacing slots, free while they and their domains may send.
        cursor.executemany(
            f"UPDATE {Mailbox._meta.db_table} SET next_send_at = %s "  # noqa: S608
            f"WHERE id = %s AND state IN ({states}) "
            "AND (next_send_at IS NULL OR next_send_at <= %s) "
            f"AND EXISTS (SELECT 1 FROM {Domain._meta.db_table} d "
            f"WHERE d.id = {Mailbox._meta.db_table}.domain_id AND d.state = %s)",
            [
                (
                    ops.adapt_datetimefield_value(slot),
                    mailbox_id,
                    *allowed_states,
                    now_value,
                    Domain.State.ACTIVE,
                )
                for mailbox_id, slot in slots.items()
            ],
        )
        _expect(cursor, len(slots), "mailboxes")
        # 3. n units on every counter, none past its cap.
        cursor.executemany(
            f"UPDATE {DailyCounter._meta.db_table} SET used = used + %s "  # noqa: S608
            'WHERE scope = %s AND "key" = %s AND day = %s AND (%s IS NULL OR used + %s <= %s)',
            [(n, scope, key, day_value, cap, n, cap) for (scope, key), (n, cap) in units.items()],
        )
        _expect(cursor, len(units), "counters")


def _expect(cursor: Any, rows: int, what: str) -> None:
    # sqlite3's executemany adds up the rows changed by each execution.
    if cursor.rowcount != rows:
        raise _SetRefused(f"{what}: {cursor.rowcount} rows changed, {rows} decided")


def _claim_batch_postgresql(
    proposals: list[Proposal],
    day: date,
    now: datetime,
    lease: timedelta,
    worker: str,
    allowed_states: tuple[str, ...],
) -> list[ClaimOutcome]:
    # A reservation's units travel as one flat list per field; unit_counts says how many
    # belong to each proposal, in order.
    scopes: list[str] = []
    keys: list[str] = []
    caps: list[int | None] = []
    for p in proposals:
        for scope, key, cap in p.reservation.units:
            scopes.append(scope)
            keys.append(key)
            caps.append(cap)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT outcome, full_scope, full_key FROM outreach_claim_batch_v1("
            "%s::bigint[], %s::bigint[], %s::bigint[], %s::timestamptz[], %s::integer[], "
            "%s::text[], %s::text[], %s::bigint[], %s::date, %s, %s, %s, %s::text[])",
            [
                [p.message_id for p in proposals],
                [p.mailbox_id for p in proposals],
                [p.provider_account_id for p in proposals],
                [p.next_send_at for p in proposals],
                [len(p.reservation.units) for p in proposals],
                scopes,
                keys,
                caps,
                day,
                now,
                now + lease,
                worker[:128],
                list(allowed_states),
            ],
        )
        rows = cursor.fetchall()
    by_reason = {"claimed": CLAIMED, "gone": GONE, "busy": BUSY}
    return [
        by_reason.get(reason) or ClaimOutcome(False, "full", scope, key)
        for reason, scope, key in rows
    ]


# The implementations of a claim batch, which must answer alike (the parity tests run them
# all): each claim's steps as savepoints; SQLite's set-wise claim (falling back to the
# first); PostgreSQL's claim function.
ClaimBatch = Callable[
    [list[Proposal], date, datetime, timedelta, str, tuple[str, ...]], list[ClaimOutcome]
]
IMPLEMENTATIONS: dict[str, ClaimBatch] = {
    "python": _claim_batch_python,
    "setwise": _claim_batch_setwise,
    "plpgsql": _claim_batch_postgresql,
}
