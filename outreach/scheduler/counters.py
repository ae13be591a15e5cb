"""Daily counters: the units of every cap, reserved and released in the database.

Every cap (global, domain, mailbox, campaign, recipient domain) is a row per pool day whose
``used`` only moves through a conditional UPDATE (:func:`reserve`): the database, not a
process's memory, decides whether a unit is left. See :mod:`outreach.scheduler.claim`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import F, Q

from outreach.campaigns.models import Message
from outreach.lib import bulk
from outreach.pool.models import Mailbox, PoolSettings
from outreach.pool.policy import Limits
from outreach.scheduler.models import DailyCounter

Scope = DailyCounter.Scope
GLOBAL_KEY = "*"


def pool_day(now: datetime, pool: PoolSettings) -> date:
    """The pool's calendar day at ``now``: the day every daily cap counts."""
    return now.astimezone(ZoneInfo(pool.timezone)).date()


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
    """Every cap a message falls under (docs/rules.md, Caps). Warm-up mail counts against the
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
    rows = [{"scope": s, "key": k, "day": day, "used": 0} for s, k in set(keys)]
    # Plain rows (lib.bulk): the routing pass asks for the company domains of every batch
    # it reads.
    bulk.insert(DailyCounter, rows, ignore_conflicts=True)


def reserve(cursor: Any, day: date, reservation: Reservation) -> bool:
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


def full_scope(day: date, reservation: Reservation) -> tuple[str, str]:
    """After a refused reservation: which counter was full (the first one found)."""
    used = {
        (s, k): u
        for s, k, u in DailyCounter.objects.filter(
            _keys_q(reservation.keys()), day=day
        ).values_list("scope", "key", "used")
    }
    return first_full(reservation, used)


def first_full(reservation: Reservation, used: Mapping[tuple[str, str], int]) -> tuple[str, str]:
    """The first of ``reservation``'s counters at its cap given what each has ``used``; the
    global counter when none is (a row was missing: treat it as "try later")."""
    for scope, key, cap in reservation.units:
        if cap is not None and used.get((scope, key), 0) >= cap:
            return scope, key
    return Scope.GLOBAL, GLOBAL_KEY


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


def held_reservation(message: Message, domain_id: int, limits: Limits) -> Reservation:
    """The counters a claimed message holds, rebuilt from the message and its mailbox's
    domain (for a release: caps do not matter, only which counters)."""
    assert message.mailbox_id is not None
    return reservation_for(
        kind=message.kind,
        mailbox_id=message.mailbox_id,
        domain_id=domain_id,
        mailbox_cap=0,
        domain_cap=0,
        limits=limits,
        campaign_id=message.campaign_id,
        to_domain=message.to_domain,
    )


def reservation_of(message: Message, pool: PoolSettings | None = None) -> Reservation | None:
    """The counters a claimed message holds (for a release), rebuilt from the message."""
    if message.mailbox_id is None:
        return None
    pool = pool or PoolSettings.load()
    domain_id = Mailbox.objects.values_list("domain_id", flat=True).get(pk=message.mailbox_id)
    return held_reservation(message, domain_id, pool.limits)


def release_message(message: Message) -> None:
    """Release the units of a message that is being cancelled or failed *before* any provider
    call (the sending engine calls this inside the transaction that changes its state)."""
    reservation = reservation_of(message)
    if reservation is not None and message.quota_day is not None:
        release(message.quota_day, reservation.keys())
