"""Routing and claiming: due messages get a mailbox and one unit of every cap, atomically.

A claim is one transaction that (1) moves the message ``scheduled`` → ``claimed``, (2) takes
the mailbox's pacing slot, (3) reserves one unit on every daily counter the message falls under
(global, domain, mailbox, campaign, recipient domain). Each step is a conditional UPDATE whose
affected row count is checked; if any of them finds nothing to change the whole transaction
rolls back, so a claim either holds every unit it needs or none. This is what makes a cap a
promise across processes and machines: the database, not a process's memory, decides.

The in-memory :class:`~outreach.scheduler.policy.Router` only *proposes* a mailbox; when its
view is stale (another process used the quota) the UPDATE refuses and the router is told.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import DatabaseError, connection, transaction
from django.db.models import Count, F, Q

from outreach.campaigns.models import Campaign, Enrollment, Message
from outreach.events.models import Event
from outreach.pool.models import Domain, Mailbox, PoolSettings, ProviderAccount
from outreach.pool.policy import Limits
from outreach.scheduler import policy
from outreach.scheduler.models import DailyCounter, RecipientDomain
from outreach.scheduler.recipients import CLASSES, providers_of
from outreach.sending.recovery import expire_sending

log = logging.getLogger(__name__)

Scope = DailyCounter.Scope
GLOBAL_KEY = "*"
# How many due messages one query fetches; a pass reads batch after batch.
BATCH = 200
# Claims committed together (claim_batch). Each claim is still all-or-nothing (its own
# savepoint, or exception block in PostgreSQL's claim function), but one round trip and one
# commit (a disk flush on PostgreSQL) serve them all.
CLAIMS_PER_TRANSACTION = 50
# Due messages are read in this order; pinned ones mailbox by mailbox (see _drain_pinned).
DUE_ORDER = ("not_before", "pk")
PINNED_ORDER = ("pinned_mailbox_id", "not_before", "pk")
# How many mailboxes one message is offered to in a pass before it waits for the next one.
ATTEMPTS = 5


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def pool_day(now: datetime, pool: PoolSettings) -> date:
    """The pool's calendar day at ``now``: the day every daily cap counts."""
    return now.astimezone(ZoneInfo(pool.timezone)).date()


# --- Counters --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reservation:
    """The counters one message's claim holds, each with its cap (None: counted, not capped)."""

    units: tuple[tuple[str, str, int | None], ...]

    def keys(self) -> list[tuple[str, str]]:
        return [(scope, key) for scope, key, _cap in self.units]


def reservation_for(
    *,
    kind: str,
    mailbox_id: int,
    domain_id: int,
    mailbox_cap: int,
    domain_cap: int,
    limits: Limits,
    campaign_id: int | None = None,
    campaign_cap: int | None = None,
    to_domain: str = "",
) -> Reservation:
    """Every cap a message falls under (BRIEF §3 Caps). Warm-up mail counts against the
    mailbox, its domain and the global cap, not against campaigns or the recipient's company.

    Uncapped scopes are still counted so a release always knows what to give back, whatever
    the configuration says by then.
    """
    units: list[tuple[str, str, int | None]] = [
        (Scope.GLOBAL, GLOBAL_KEY, limits.global_daily_cap),
        (Scope.DOMAIN, str(domain_id), domain_cap),
        (Scope.MAILBOX, str(mailbox_id), mailbox_cap),
    ]
    if kind == Message.Kind.CAMPAIGN and campaign_id is not None:
        units.append((Scope.CAMPAIGN, str(campaign_id), campaign_cap))
        if to_domain:
            units.append((Scope.RECIPIENT_DOMAIN, to_domain, limits.recipient_domain_daily_cap))
    return Reservation(tuple(sorted(units)))


def ensure_counters(day: date, keys: Iterable[tuple[str, str]]) -> None:
    """Create missing counter rows (used = 0), so reservations are plain conditional UPDATEs.

    ``ignore_conflicts`` makes this an INSERT ... ON CONFLICT DO NOTHING: two processes creating
    the same row at once both succeed and one row exists.
    """
    rows = [DailyCounter(scope=s, key=k, day=day, used=0) for s, k in set(keys)]
    if rows:
        DailyCounter.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)


def _reserve(cursor: Any, day: date, reservation: Reservation) -> bool:
    """One unit on every counter of ``reservation`` in ONE statement; True when all were free.

    The race prevented: two processes both read "39 of 40 used" and both send, making 41. Here
    the check and the increment are the same UPDATE (``used = used + 1 WHERE used < cap``); the
    database serializes it per row, so only one of them sees 39. It must change exactly one row
    per counter: fewer means some cap was full, and the caller rolls back the whole claim, so
    the units that did get incremented are given back too.
    """
    # Each term names a whole (scope, key, day) so every row is found through the unique
    # index, whatever the number of counters: the cost of a claim does not grow with the pool.
    terms: list[str] = []
    params: list[Any] = []
    day_value = connection.ops.adapt_datefield_value(day)
    for scope, key, cap in reservation.units:
        if cap is None:
            terms.append('(scope = %s AND "key" = %s AND day = %s)')
            params += [scope, key, day_value]
        else:
            terms.append('(scope = %s AND "key" = %s AND day = %s AND used < %s)')
            params += [scope, key, day_value, cap]
    cursor.execute(
        f"UPDATE {DailyCounter._meta.db_table} SET used = used + 1 "  # noqa: S608 (no user input)
        f"WHERE {' OR '.join(terms)}",
        params,
    )
    return cursor.rowcount == len(reservation.units)


def _full_scope(day: date, reservation: Reservation) -> tuple[str, str]:
    """After a refused reservation: which counter was full (the first one found)."""
    used = {
        (s, k): u
        for s, k, u in DailyCounter.objects.filter(
            _keys_q(reservation.keys()), day=day
        ).values_list("scope", "key", "used")
    }
    for scope, key, cap in reservation.units:
        if cap is not None and used.get((scope, key), 0) >= cap:
            return scope, key
    return Scope.GLOBAL, GLOBAL_KEY  # a row was missing; treat it as "try later"


def _keys_q(keys: Iterable[tuple[str, str]]) -> Q:
    condition = Q()
    for scope, key in keys:
        condition |= Q(scope=scope, key=key)
    return condition


def release(day: date, keys: Iterable[tuple[str, str]]) -> None:
    """Give one unit back on each counter (never below zero). Only for a claim that never
    reached a provider: quota is never released after a provider call."""
    keys = list(keys)
    if keys:
        DailyCounter.objects.filter(_keys_q(keys), day=day, used__gt=0).update(used=F("used") - 1)


def reservation_of(message: Message, pool: PoolSettings | None = None) -> Reservation | None:
    """The counters a claimed message holds (for a release), rebuilt from the message."""
    if message.mailbox_id is None:
        return None
    pool = pool or PoolSettings.load()
    mailbox = Mailbox.objects.select_related("domain").get(pk=message.mailbox_id)
    return reservation_for(
        kind=message.kind,
        mailbox_id=mailbox.pk,
        domain_id=mailbox.domain_id,
        mailbox_cap=0,
        domain_cap=0,
        limits=pool.limits,
        campaign_id=message.campaign_id,
        to_domain=message.to_domain,
    )


def release_message(message: Message) -> None:
    """Release the units of a message that is being cancelled or failed *before* any provider
    call (the sending engine calls this inside the transaction that changes its state)."""
    reservation = reservation_of(message)
    if reservation is not None and message.quota_day is not None:
        release(message.quota_day, reservation.keys())


# --- One claim -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What became of one claim attempt."""

    claimed: bool
    # "gone" (someone else took the message), "busy" (mailbox paced/changed), "full" (a cap).
    reason: str = ""
    scope: str = ""
    key: str = ""


CLAIMED = Outcome(True)
GONE = Outcome(False, "gone")
BUSY = Outcome(False, "busy")


class _Refused(Exception):
    def __init__(self, outcome: Outcome):
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
    allowed_states: tuple[str, ...] = policy.SENDING_STATES,
) -> Outcome:
    """Claim ``message_id`` for ``mailbox_id`` in one transaction, or change nothing.

    Inside an outer transaction (the routing pass commits claims in groups) it is a savepoint:
    all-or-nothing all the same, and nothing is visible to others before the outer commit.

    Steps, each a conditional UPDATE that must change exactly one row (or one per counter):

    1. the message is still ``scheduled`` (another process may have claimed it a moment ago;
       on PostgreSQL a row being claimed right now is skipped, not waited for);
    2. the mailbox is still in a sending state, on a sending domain, and its pacing slot is
       free (``next_send_at <= now``): two processes routing to the same mailbox at once
       cannot both send inside the gap; the slot moves to ``next_send_at``;
    3. every cap of ``reservation`` has a unit left (see :func:`_reserve`).

    Locks are taken in that order (message, mailbox, counters) by every claim. Claims grouped
    in one transaction (:func:`claim_batch`) can still wait on another group's rows in a
    cycle; the database then aborts one claim (a deadlock error), which comes back ``busy``.
    """
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
    states = ", ".join(["%s"] * len(allowed_states))
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            # 1. The message, still scheduled.
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
            if cursor.rowcount != 1:
                raise _Refused(GONE)
            # 2. The mailbox's pacing slot, while it and its domain may still send.
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
            if cursor.rowcount != 1:
                raise _Refused(BUSY)
            # 3. One unit of every cap.
            if not _reserve(cursor, day, reservation):
                scope, key = _full_scope(day, reservation)
                raise _Refused(Outcome(False, "full", scope, key))
    except _Refused as refused:
        return refused.outcome
    except DatabaseError as exc:
        # A serialization failure or deadlock on PostgreSQL, a busy timeout on SQLite: the
        # transaction rolled back entirely; the message stays scheduled for the next pass.
        log.warning("claim of message %s rolled back: %s", message_id, exc)
        return BUSY
    return CLAIMED


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
    allowed_states: tuple[str, ...] = policy.SENDING_STATES,
) -> list[Outcome]:
    """Claim every proposal, in order, each all-or-nothing, in one transaction: an
    :class:`Outcome` per proposal.

    On PostgreSQL the whole batch is one call of the ``outreach_claim_batch_v1`` function
    (created by a migration), which runs :func:`claim_one`'s steps server-side: a claim costs
    no round trip of its own. Elsewhere each proposal is a :func:`claim_one` savepoint.
    """
    if not proposals:
        return []
    with transaction.atomic():
        if connection.vendor == "postgresql":
            return _claim_batch_postgresql(proposals, day, now, lease, worker, allowed_states)
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
) -> list[Outcome]:
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
        by_reason.get(reason) or Outcome(False, "full", scope, key) for reason, scope, key in rows
    ]


# --- Lease recovery and expiry ---------------------------------------------------------------


@dataclass
class RecoveryReport:
    released: int = 0
    unknown: int = 0
    cancelled: int = 0
    stranded: int = 0


def recover_leases(now: datetime, *, limit: int = 1000) -> RecoveryReport:
    """Expired leases, as BRIEF §3 Messages says.

    A ``claimed`` message whose lease expired never reached a provider (the worker moves it to
    ``sending`` and commits before any call): it goes back to ``scheduled`` and its units are
    released, in one transaction, conditional on it still being ``claimed`` with that lease, so
    a worker taking it at the same moment and this recovery cannot both win.

    A ``sending`` message whose lease expired is settled by the sending engine
    (:func:`outreach.sending.engine.expire_sending`): ``sent`` if the provider accepted it,
    an expired claim (handled here) if its provider call never began, else ``unknown``, never
    resent without reconciliation (a duplicate cold email is worse than a missing one).
    Quota stays used once a provider was called.

    A ``retry`` message whose mailbox can no longer send is stranded: see
    :func:`return_stranded_retries`.
    """
    report = RecoveryReport()
    # First, so that a killed worker's messages whose call never began are expired claims
    # below: back to routing in this same pass.
    report.unknown = expire_sending(now, limit=limit)
    pool = PoolSettings.load()
    limits = pool.limits
    expired = list(
        Message.objects.filter(state=Message.State.CLAIMED, lease_expires_at__lt=now)
        .select_related("mailbox")
        .order_by("lease_expires_at")[:limit]
    )
    for message in expired:
        reservation = None
        if message.mailbox is not None:
            reservation = reservation_for(
                kind=message.kind,
                mailbox_id=message.mailbox.pk,
                domain_id=message.mailbox.domain_id,
                mailbox_cap=0,
                domain_cap=0,
                limits=limits,
                campaign_id=message.campaign_id,
                to_domain=message.to_domain,
            )
        with transaction.atomic():
            back = Message.objects.filter(
                pk=message.pk,
                state=Message.State.CLAIMED,
                lease_expires_at=message.lease_expires_at,
            ).update(
                state=Message.State.SCHEDULED,
                mailbox=None,
                provider_account=None,
                claimed_by="",
                lease_expires_at=None,
                quota_day=None,
                updated_at=now,
            )
            if back == 1 and reservation is not None and message.quota_day is not None:
                release(message.quota_day, reservation.keys())
        report.released += back
    if report.released or report.unknown:
        log.warning(
            "leases: %d claimed message(s) back to scheduled, %d sending message(s) unknown",
            report.released,
            report.unknown,
        )
    report.stranded = return_stranded_retries(now, limit=limit)
    return report


def return_stranded_retries(now: datetime, *, limit: int = 1000) -> int:
    """``retry`` messages whose mailbox can no longer send (paused, in cooldown, retired, or
    its domain not active) go back to ``scheduled``, to wait as every unclaimed message does.

    Left in ``retry`` they would wait for that mailbox with no limit. Back in ``scheduled``
    (mailbox and claim cleared, backoff kept) a first message is routed to another mailbox,
    and a follow-up keeps waiting for its thread's mailbox until its wait limit, then is
    cancelled (BRIEF §3 Routing: never silently moved). Their units stay used: a provider
    was called. Conditional on the message still being ``retry``: a worker taking it at the
    same moment and this pass cannot both win.
    """
    stranded = list(
        Message.objects.filter(state=Message.State.RETRY, mailbox__isnull=False)
        .exclude(
            mailbox__state__in=(Mailbox.State.ACTIVE, Mailbox.State.WARMING),
            mailbox__domain__state=Domain.State.ACTIVE,
        )
        .values_list("pk", flat=True)[:limit]
    )
    if not stranded:
        return 0
    back_to_router = {
        "state": Message.State.SCHEDULED,
        "mailbox": None,
        "provider_account": None,
        "claimed_by": "",
        "lease_expires_at": None,
        "quota_day": None,
        "updated_at": now,
    }
    waiting = Message.objects.filter(pk__in=stranded, state=Message.State.RETRY)
    back = waiting.filter(pinned_mailbox__isnull=False).update(**back_to_router)
    # A first message may leave from another domain: its Message-ID, named after the old
    # domain, would tie the two together. Its next take gives it one on the new domain.
    back += waiting.filter(pinned_mailbox__isnull=True).update(
        **back_to_router, message_id_header=None
    )
    if back:
        log.warning("%d retry message(s) of mailboxes that cannot send back to scheduled", back)
    return back


def cancel_expired(now: datetime, *, limit: int = 1000) -> int:
    """Scheduled messages past ``expires_at`` are cancelled (a follow-up that waited too long
    for its thread's mailbox); their enrollments stop with ``mailbox_unavailable``."""
    cancelled = 0
    expired = list(
        Message.objects.filter(state=Message.State.SCHEDULED, expires_at__lt=now).values_list(
            "pk", "enrollment_id"
        )[:limit]
    )
    for message_id, enrollment_id in expired:
        with transaction.atomic():
            done = Message.objects.filter(pk=message_id, state=Message.State.SCHEDULED).update(
                state=Message.State.CANCELLED,
                last_error="its thread's mailbox could not send before the wait limit",
                updated_at=now,
            )
            if done and enrollment_id is not None:
                Enrollment.objects.filter(pk=enrollment_id, state=Enrollment.State.ACTIVE).update(
                    state=Enrollment.State.STOPPED,
                    stop_reason=Enrollment.StopReason.MAILBOX_UNAVAILABLE,
                    stopped_at=now,
                    next_due_at=None,
                )
        cancelled += done
    return cancelled


# --- The routing pass ------------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignRules:
    id: int
    allowed: frozenset[int] | None  # None: every mailbox of the pool
    allow_warming: bool
    cap: int | None
    window: policy.Window
    timezone: str


@dataclass
class ClaimReport:
    claimed: int = 0
    deferred: int = 0  # outside their window: not_before moved to the next opening
    refused: int = 0  # a claim the database refused (stale view, another process, full cap)
    load_seconds: float = 0.0  # reading the pool, campaigns and counters at the pass's start
    by_mailbox: dict[int, int] = field(default_factory=dict)


# What routing reads of a mailbox and its domain (a pool of thousands is read every pass).
_ROUTING_FIELDS = (
    "state",
    "daily_cap",
    "warmup_started_on",
    "warmup_start_day",
    "next_send_at",
    "pacing_gap_seconds",
    "provider",
    "domain__state",
    "domain__daily_cap",
    "domain__provider",
)


@dataclass(frozen=True)
class _Proposed:
    """A proposal the pass made and holds in memory until the database answers."""

    row: dict[str, Any]
    attempt: int
    campaign: CampaignRules | None  # the campaign whose cap it counts against, if any
    paced_until: datetime | None  # the mailbox's pacing slot before the hold
    proposal: Proposal


@dataclass
class _MailboxInfo:
    domain_id: int
    provider_account_id: int
    cap: int
    domain_cap: int
    gap: int | None


class _Pass:
    """The state of one routing pass: the pool read once, then claims until nothing fits."""

    def __init__(self, now: datetime, worker: str, rng: random.Random, limit: int | None):
        started = time.perf_counter()
        self.now = now
        self.worker = worker
        self.rng = rng
        self.pool = PoolSettings.load()
        self.limits = self.pool.limits
        self.thresholds = self.pool.thresholds
        self.day = pool_day(now, self.pool)
        self.lease = timedelta(seconds=self.limits.claim_lease_seconds)
        self.report = ClaimReport()
        self.info: dict[int, _MailboxInfo] = {}
        self.existing: set[tuple[str, str]] = set()
        self.router = policy.Router(self._load_pool(), now, self.thresholds)
        self.campaigns = self._load_campaigns()
        used = self._used(Scope.CAMPAIGN)
        global_used = self._used(Scope.GLOBAL).get(GLOBAL_KEY, 0)
        ensure_counters(self.day, self._pool_keys())
        self.campaign_left: dict[int, int | None] = {
            c.id: None if c.cap is None else c.cap - used.get(str(c.id), 0)
            for c in self.campaigns.values()
        }
        self.global_left = self.limits.global_daily_cap - global_used
        if limit is not None:
            # The pass stops when either runs out; the database still checks the real cap.
            self.global_left = min(self.global_left, limit)
        self.full_recipient_domains: set[str] = set()
        self.known_recipient_domains: set[str] = set()
        # Recipient domain -> its mail provider, read when routing looks at them at all.
        self.by_provider = self.limits.prefer_same_provider or bool(
            self.limits.recipient_provider_hourly_cap
        )
        self.recipient_providers: dict[str, str] = {}
        if self.limits.recipient_provider_hourly_cap:
            self.router.recipient_provider_left = _recipient_provider_left(now, self.limits)
        self.cursors: dict[int, tuple[Any, ...]] = {}
        self.report.load_seconds = time.perf_counter() - started

    def _used(self, scope: str) -> dict[str, int]:
        used = dict(
            DailyCounter.objects.filter(day=self.day, scope=scope).values_list("key", "used")
        )
        self.existing.update((scope, key) for key in used)
        return used

    def _pool_keys(self) -> list[tuple[str, str]]:
        """Today's counter rows of the pool that do not exist yet (usually none after the
        day's first pass)."""
        keys: list[tuple[str, str]] = [(Scope.GLOBAL, GLOBAL_KEY)]
        for mailbox_id, info in self.info.items():
            keys += [(Scope.MAILBOX, str(mailbox_id)), (Scope.DOMAIN, str(info.domain_id))]
        keys += [(Scope.CAMPAIGN, str(c)) for c in self.campaigns]
        return [k for k in keys if k not in self.existing]

    def _load_pool(self) -> list[policy.MailboxView]:
        mailbox_used = self._used(Scope.MAILBOX)
        domain_used = self._used(Scope.DOMAIN)
        stats = mailbox_stats(self.now, self.thresholds)
        blocked = _dns_blocked_domain_ids()
        kinds = dict(
            ProviderAccount.objects.filter(kind__in=MAILBOX_PROVIDERS).values_list("pk", "kind")
        )
        views = []
        warmup = self.pool.warmup
        mailboxes = (
            Mailbox.objects.filter(
                state__in=policy.SENDING_STATES, domain__state=Domain.State.ACTIVE
            )
            .select_related("domain")
            .only(*_ROUTING_FIELDS)
        )
        for mb in mailboxes:
            domain = mb.domain
            cap = mb.cap_on(self.day, self.limits, warmup)
            domain_cap = domain.cap(self.limits)
            self.info[mb.pk] = _MailboxInfo(
                domain_id=domain.pk,
                provider_account_id=mb.provider_id or domain.provider_id,
                cap=cap,
                domain_cap=domain_cap,
                gap=mb.pacing_gap_seconds,
            )
            bounce_rate, complaint_rate, spike = stats.get(mb.pk, (0.0, 0.0, False))
            views.append(
                policy.MailboxView(
                    id=mb.pk,
                    domain_id=domain.pk,
                    state=mb.state,
                    remaining=cap - mailbox_used.get(str(mb.pk), 0),
                    domain_remaining=domain_cap - domain_used.get(str(domain.pk), 0),
                    next_send_at=mb.next_send_at,
                    domain_sendable=domain.pk not in blocked,
                    bounce_rate=bounce_rate,
                    complaint_rate=complaint_rate,
                    recent_spike=spike,
                    provider=kinds.get(self.info[mb.pk].provider_account_id, ""),
                )
            )
        return views

    def _load_campaigns(self) -> dict[int, CampaignRules]:
        campaigns = Campaign.objects.filter(state=Campaign.State.ACTIVE).prefetch_related(
            "allowed_domains", "allowed_mailboxes"
        )
        rules = {}
        for c in campaigns:
            allowed: set[int] | None = None
            domain_ids = {d.pk for d in c.allowed_domains.all()}
            mailbox_ids = {m.pk for m in c.allowed_mailboxes.all()}
            if domain_ids or mailbox_ids:
                allowed = set(mailbox_ids)
                allowed |= {i for i, info in self.info.items() if info.domain_id in domain_ids}
            rules[c.pk] = CampaignRules(
                id=c.pk,
                allowed=None if allowed is None else frozenset(allowed),
                allow_warming=c.allow_warming_mailboxes,
                cap=c.daily_cap if c.daily_cap is not None else self.limits.campaign_daily_cap,
                window=policy.Window.of(c.window_days, c.window_start, c.window_end),
                timezone=c.timezone,
            )
        return rules

    # -- candidates --

    def _due(self) -> Any:
        # A message of a stopped enrollment (a reply came in) is never claimed, even when the
        # stop happened between its planning and now.
        return Message.objects.filter(
            Q(enrollment__isnull=True) | Q(enrollment__state=Enrollment.State.ACTIVE),
            state=Message.State.SCHEDULED,
            not_before__lte=self.now,
        )

    def _rows(
        self, query: Any, after: tuple[Any, ...] | None, order: tuple[str, ...] = DUE_ORDER
    ) -> list[dict[str, Any]]:
        """The next batch of due messages in ``order`` after the row whose ``order`` values
        are ``after`` (keyset pagination: rows this pass already looked at and left are not
        read again)."""
        if after is not None:
            query = query.filter(_after(order, after))
        rows = list(
            query.order_by(*order).values(
                "pk",
                "kind",
                "campaign_id",
                "to_domain",
                "not_before",
                "pinned_mailbox_id",
                "enrollment__lead__timezone",
            )[:BATCH]
        )
        self._ensure_recipient_counters(rows)
        if self.by_provider:
            new = {r["to_domain"] for r in rows} - self.recipient_providers.keys()
            self.recipient_providers.update(providers_of(new, now=self.now))
        return rows

    def run(self) -> ClaimReport:
        # Pinned messages first (follow-ups, warm-up): they can only go one way. Then the
        # campaigns in turn, one batch each, so a big backlog does not starve a small campaign.
        sendable = [i for i in self.router.mailboxes if self.router.can_send(i, allow_warming=True)]
        for chunk in _chunks(sendable, 500):
            self._drain_pinned(chunk)
        # Most constrained first: a campaign restricted to a few mailboxes has nowhere else to
        # go, while an unrestricted one can use the rest of the pool.
        queues = sorted(
            self.campaigns.values(),
            key=lambda c: (c.allowed is None, len(c.allowed or ()), c.id),
        )
        while queues and self.global_left > 0:
            queues = [c for c in queues if self._campaign_batch(c)]
        return self.report

    def _drain_pinned(self, mailbox_ids: list[int]) -> None:
        """The due messages pinned to ``mailbox_ids``, mailbox by mailbox (the order the
        pinned index reads them in), oldest first within a mailbox."""
        query = self._due().filter(pinned_mailbox_id__in=mailbox_ids)
        after: tuple[Any, ...] | None = None
        for _batch in range(50):  # bounds the work of one pass
            rows = self._rows(query, after, PINNED_ORDER)
            self._claim_rows(rows)
            if len(rows) < BATCH or self.global_left <= 0:
                return
            after = tuple(rows[-1][f] for f in PINNED_ORDER)

    def _campaign_batch(self, campaign: CampaignRules) -> bool:
        """Claim one batch of the campaign's unpinned due messages; False when it is done
        for this pass (nothing more due, no mailbox left for it, or its cap is full)."""
        if not self._campaign_open(campaign):
            return False
        if self.router.choose(campaign.allowed, allow_warming=campaign.allow_warming) is None:
            return False
        query = self._due().filter(campaign_id=campaign.id, pinned_mailbox__isnull=True)
        rows = self._rows(query, self.cursors.get(campaign.id))
        self._claim_rows(rows)
        if len(rows) < BATCH or not self._campaign_open(campaign) or self.global_left <= 0:
            return False
        self.cursors[campaign.id] = tuple(rows[-1][f] for f in DUE_ORDER)
        return True

    def _campaign_open(self, campaign: CampaignRules) -> bool:
        left = self.campaign_left.get(campaign.id)
        return left is None or left > 0

    def _claim_rows(self, rows: list[dict[str, Any]]) -> None:
        """Route and claim ``rows``, :data:`CLAIMS_PER_TRANSACTION` at a time.

        Each group is proposed in full first (the router reserving in memory as it goes, so
        the group spreads over the pool as one-by-one claims would), then claimed in one
        :func:`claim_batch`. A refused claim is learned from and its message proposed again,
        to another mailbox, in the next group (up to :data:`ATTEMPTS` times).
        """
        pending = [(row, 0) for row in rows]
        while pending and self.global_left > 0:
            group = pending[:CLAIMS_PER_TRANSACTION]
            pending = self._claim_group(group) + pending[CLAIMS_PER_TRANSACTION:]

    def _claim_group(self, group: list[tuple[dict[str, Any], int]]) -> list[tuple[dict, int]]:
        """Propose and claim one group; returns the rows worth another attempt."""
        proposed: list[_Proposed] = []
        for row, attempt in group:
            if self.global_left <= 0:
                break
            item = self._propose(row, attempt)
            if item is not None:
                proposed.append(item)
        outcomes = claim_batch(
            [item.proposal for item in proposed],
            day=self.day,
            now=self.now,
            lease=self.lease,
            worker=self.worker,
        )
        again = []
        for item, outcome in zip(proposed, outcomes, strict=True):
            if outcome.claimed:
                mailbox_id = item.proposal.mailbox_id
                self.report.claimed += 1
                self.report.by_mailbox[mailbox_id] = self.report.by_mailbox.get(mailbox_id, 0) + 1
                continue
            self._give_back(item)
            if outcome.reason == "gone":
                continue
            self.report.refused += 1
            self._learn(outcome, item.proposal.mailbox_id, item.campaign, item.row["to_domain"])
            final = outcome.scope in (Scope.GLOBAL, Scope.CAMPAIGN, Scope.RECIPIENT_DOMAIN)
            if not final and item.attempt + 1 < ATTEMPTS:
                again.append((item.row, item.attempt + 1))
        return again

    def _propose(self, row: dict[str, Any], attempt: int) -> _Proposed | None:
        """Choose a mailbox for ``row`` and hold its units in memory (None: not now)."""
        campaign = self.campaigns.get(row["campaign_id"]) if row["campaign_id"] else None
        is_campaign = row["kind"] == Message.Kind.CAMPAIGN
        if is_campaign:
            if campaign is None or not self._campaign_open(campaign):
                return None
            if attempt == 0 and self._defer_outside_window(row, campaign):
                return None
            if row["to_domain"] in self.full_recipient_domains:
                return None
        allow_warming = not is_campaign or (campaign is not None and campaign.allow_warming)
        pinned = row["pinned_mailbox_id"]
        recipient_provider = self.recipient_providers.get(row["to_domain"], "")
        if pinned is not None:
            if not self.router.can_send(pinned, allow_warming=allow_warming):
                return None
            if self.router.recipient_provider_left.get(recipient_provider, 1) <= 0:
                return None
            mailbox_id = pinned
        else:
            assert campaign is not None
            choice = self.router.choose_for(
                campaign.allowed,
                recipient_provider,
                allow_warming=allow_warming,
                prefer_same_provider=self.limits.prefer_same_provider,
            )
            if choice is None:
                return None
            mailbox_id = choice.id
        info = self.info[mailbox_id]
        counts_for_campaign = campaign is not None and is_campaign
        reservation = reservation_for(
            kind=row["kind"],
            mailbox_id=mailbox_id,
            domain_id=info.domain_id,
            mailbox_cap=info.cap,
            domain_cap=info.domain_cap,
            limits=self.limits,
            campaign_id=row["campaign_id"],
            campaign_cap=campaign.cap if campaign else None,
            to_domain=row["to_domain"],
        )
        next_send_at = self.now + policy.pacing_gap(self.limits, self.rng, mailbox_gap=info.gap)
        item = _Proposed(
            row=row,
            attempt=attempt,
            campaign=campaign if counts_for_campaign else None,
            paced_until=self.router.mailboxes[mailbox_id].next_send_at,
            proposal=Proposal(
                message_id=row["pk"],
                mailbox_id=mailbox_id,
                provider_account_id=info.provider_account_id,
                reservation=reservation,
                next_send_at=next_send_at,
            ),
        )
        # Held in memory until the database answers, so the rest of the group sees it.
        self.router.used(mailbox_id, next_send_at)
        self.router.recipient_provider_used(recipient_provider)
        self.global_left -= 1
        if item.campaign is not None:
            left = self.campaign_left.get(item.campaign.id)
            if left is not None:
                self.campaign_left[item.campaign.id] = left - 1
        return item

    def _give_back(self, item: _Proposed) -> None:
        """Undo :meth:`_propose`'s in-memory hold of a claim the database refused."""
        self.router.unused(item.proposal.mailbox_id, item.paced_until)
        self.router.recipient_provider_used(
            self.recipient_providers.get(item.row["to_domain"], ""), -1
        )
        self.global_left += 1
        if item.campaign is not None:
            left = self.campaign_left.get(item.campaign.id)
            if left is not None:
                self.campaign_left[item.campaign.id] = left + 1

    def _learn(
        self, outcome: Outcome, mailbox_id: int, campaign: CampaignRules | None, to_domain: str
    ) -> None:
        """The database refused: bring the in-memory view in line with it."""
        if outcome.reason == "busy" or outcome.scope == Scope.MAILBOX:
            self.router.exhausted(mailbox_id)
        elif outcome.scope == Scope.DOMAIN:
            self.router.domain_exhausted(self.info[mailbox_id].domain_id)
        elif outcome.scope == Scope.GLOBAL:
            self.global_left = 0
        elif outcome.scope == Scope.CAMPAIGN and campaign is not None:
            self.campaign_left[campaign.id] = 0
        elif outcome.scope == Scope.RECIPIENT_DOMAIN:
            self.full_recipient_domains.add(to_domain)

    def _ensure_recipient_counters(self, rows: list[dict[str, Any]]) -> None:
        """Counter rows for the batch's company domains, in one INSERT for the batch."""
        new = {
            r["to_domain"] for r in rows if r["kind"] == Message.Kind.CAMPAIGN and r["to_domain"]
        } - self.known_recipient_domains
        if new:
            ensure_counters(self.day, [(Scope.RECIPIENT_DOMAIN, d) for d in new])
            self.known_recipient_domains |= new

    def _defer_outside_window(self, row: dict[str, Any], campaign: CampaignRules) -> bool:
        """A message whose window closed (or has not opened) waits for the next opening."""
        tz = _zone(row["enrollment__lead__timezone"] or campaign.timezone)
        if policy.in_window(self.now, campaign.window, tz):
            return False
        opening = policy.next_window_start(self.now, campaign.window, tz)
        if opening is None:
            return False
        Message.objects.filter(pk=row["pk"], state=Message.State.SCHEDULED).update(
            not_before=opening, updated_at=self.now
        )
        self.report.deferred += 1
        return True


def claim_due(
    now: datetime,
    *,
    worker: str | None = None,
    rng: random.Random | None = None,
    limit: int | None = None,
) -> ClaimReport:
    """Route and claim every due message that fits at ``now`` (one pass), or at most
    ``limit`` of them.

    Reads the pool once (O(pool) queries: a constant number, whatever the pool size), then
    costs a few statements per claim. Several processes may run it at once on PostgreSQL: they
    compete only through the conditional UPDATEs.
    """
    return _Pass(now, worker or worker_name(), rng or random.Random(), limit).run()


# --- Helpers ---------------------------------------------------------------------------------


def mailbox_stats(now: datetime, thresholds: Any) -> dict[int, tuple[float, float, bool]]:
    """Per mailbox: hard-bounce rate and complaint rate over the thresholds' window, and
    whether the last day shows a spike (any complaint, or bounces above the warning rate).

    Read from the raw events and messages for now; a constant number of grouped queries.
    """
    since = now - timedelta(days=thresholds.window_days)
    day_ago = now - timedelta(days=1)
    sent = _count_by_mailbox(
        Message.objects.filter(state=Message.State.SENT, sent_at__gte=since, mailbox__isnull=False)
    )
    sent_day = _count_by_mailbox(
        Message.objects.filter(
            state=Message.State.SENT, sent_at__gte=day_ago, mailbox__isnull=False
        )
    )
    events = Event.objects.filter(occurred_at__gte=since, mailbox__isnull=False)
    hard = events.filter(type=Event.Type.BOUNCED, bounce_type=Event.BounceType.HARD)
    bounces = _count_by_mailbox(hard)
    # Messages refused at send time (one "smtp" event each) are attempts too: rates are per
    # attempt, or a mailbox whose every message is refused would look clean.
    refused = _count_by_mailbox(
        events.filter(source="smtp", type__in=(Event.Type.BOUNCED, Event.Type.BLOCKED))
    )
    complaints = _count_by_mailbox(events.filter(type=Event.Type.COMPLAINED))
    bounces_day = _count_by_mailbox(hard.filter(occurred_at__gte=day_ago))
    complaints_day = _count_by_mailbox(
        events.filter(type=Event.Type.COMPLAINED, occurred_at__gte=day_ago)
    )
    stats = {}
    for mailbox_id in set(sent) | set(bounces) | set(complaints):
        n = sent.get(mailbox_id, 0) + refused.get(mailbox_id, 0)
        bounce_rate = bounces.get(mailbox_id, 0) / n if n else 0.0
        complaint_rate = complaints.get(mailbox_id, 0) / n if n else 0.0
        n_day = sent_day.get(mailbox_id, 0)
        spike = complaints_day.get(mailbox_id, 0) > 0 or (
            bounces_day.get(mailbox_id, 0) > 1
            and bounces_day.get(mailbox_id, 0) > thresholds.bounce_warning_rate * max(n_day, 1)
        )
        stats[mailbox_id] = (bounce_rate, complaint_rate, spike)
    return stats


def _count_by_mailbox(query: Any) -> dict[int, int]:
    return dict(query.values("mailbox_id").annotate(n=Count("pk")).values_list("mailbox_id", "n"))


def _dns_blocked_domain_ids() -> set[int]:
    """Domains whose failing DNS check blocks sending (one query), when DNS checks exist."""
    try:
        from outreach.pool import dns
    except ImportError:
        return set()
    blocked = getattr(dns, "blocked_domain_ids", None)
    return set(blocked()) if callable(blocked) else set()


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):  # ZoneInfoNotFoundError is a KeyError
        return ZoneInfo("UTC")


def _after(order: tuple[str, ...], values: tuple[Any, ...]) -> Q:
    """Rows strictly after ``values`` in ``order`` (all ascending): the keyset condition."""
    condition = Q()
    for i, name in enumerate(order):
        step = Q(**{f"{name}__gt": values[i]})
        for earlier, value in zip(order[:i], values[:i], strict=True):
            step &= Q(**{earlier: value})
        condition |= step
    return condition


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# Sending providers the router tells apart, to match a recipient's own provider.
MAILBOX_PROVIDERS = ("google", "microsoft")


def _recipient_provider_left(now: datetime, limits: Limits) -> dict[str, int]:
    """Messages each recipient provider may still take in the hour up to ``now``: the cap
    less what the pool sent or holds claimed for it in that hour. (A bound for each pass,
    not a counter reserved in the database like the daily caps.)"""
    cap = limits.recipient_provider_hourly_cap or 0
    recent = (
        Message.objects.filter(
            Q(sent_at__gt=now - timedelta(hours=1))
            | Q(state__in=[Message.State.CLAIMED, Message.State.SENDING])
        )
        .values("to_domain")
        .annotate(n=Count("pk"))
    )
    counts = {row["to_domain"]: row["n"] for row in recent}
    providers = dict(
        RecipientDomain.objects.filter(domain__in=counts).values_list("domain", "provider")
    )
    left = dict.fromkeys(CLASSES, cap)
    for domain, n in counts.items():
        provider = providers.get(domain)
        if provider in left:
            left[provider] -= n
    return left
