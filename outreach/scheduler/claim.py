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
from datetime import date, datetime, timedelta
from typing import Any

from django.db import DatabaseError, connection, transaction

from outreach.campaigns.models import Message
from outreach.pool.models import Domain, Mailbox
from outreach.pool.policy import SENDING_STATES
from outreach.scheduler.counters import Reservation, full_scope, reserve

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
                scope, key = full_scope(day, reservation)
                raise _Refused(ClaimOutcome(False, "full", scope, key))
    except _Refused as refused:
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
    no round trip of its own. Elsewhere each proposal is a :func:`claim_one` savepoint.
    """
    if not proposals:
        return []
    implementation = "plpgsql" if connection.vendor == "postgresql" else "python"
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


# The two implementations of a claim batch, which must answer alike (the parity tests run
# both on PostgreSQL): each claim's steps as savepoints, or PostgreSQL's claim function.
ClaimBatch = Callable[
    [list[Proposal], date, datetime, timedelta, str, tuple[str, ...]], list[ClaimOutcome]
]
IMPLEMENTATIONS: dict[str, ClaimBatch] = {
    "python": _claim_batch_python,
    "plpgsql": _claim_batch_postgresql,
}
