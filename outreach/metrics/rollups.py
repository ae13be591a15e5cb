"""Daily rollups kept current from the engine's signals, and rebuilt from the raw tables on demand.

Every stored event and every provider call adds to one :class:`DailyRollup` row (the pool day it
happened on x mailbox x campaign x step x variant x provider). Rates over a window are sums of a
handful of rows, so health rules and the dashboard never scan raw events. :func:`rebuild`
recomputes one day from ``Event`` and ``SendAttempt`` (repair after a bug or a restore).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.db.models import Count, Q, Sum

from outreach.campaigns.models import Message
from outreach.events.models import Event
from outreach.lib import clock
from outreach.metrics.figures import COUNTERS, Figures
from outreach.metrics.models import DailyRollup
from outreach.pool.models import Mailbox, PoolSettings
from outreach.sending.models import SendAttempt

# What a provider call's outcome adds. A synchronous 5.1.x rejection or 5.7.x policy block
# is a failed send and an attempt refused by the recipient's server (``refused``: the
# denominator of the bounce rate is sent + refused). The bounce or the block itself is added
# once, by the ``bounced``/``blocked`` event the sending engine records for it (source "smtp").
ATTEMPT_COUNTERS: dict[str, dict[str, int]] = {
    SendAttempt.Outcome.SENT: {"sent": 1},
    SendAttempt.Outcome.TRANSIENT: {"transient": 1},
    SendAttempt.Outcome.PERMANENT: {"failed": 1},
    SendAttempt.Outcome.HARD_BOUNCE: {"failed": 1, "refused": 1},
    SendAttempt.Outcome.BLOCKED: {"failed": 1, "refused": 1},
    SendAttempt.Outcome.AUTH_FAILED: {"failed": 1},
}

_EVENT_COUNTER: dict[str, str] = {
    Event.Type.DELIVERED: "delivered",
    Event.Type.DEFERRED: "deferred",
    Event.Type.COMPLAINED: "complained",
    Event.Type.UNSUBSCRIBED: "unsubscribed",
    Event.Type.OPENED: "opened",
    Event.Type.CLICKED: "clicked",
    Event.Type.REPLIED: "replied",
    Event.Type.AUTO_REPLIED: "auto_replied",
    Event.Type.BLOCKED: "blocked",
}


def event_counter(event_type: str, bounce_type: str) -> str | None:
    """The rollup counter an event adds to; a bounce without a type counts as soft."""
    if event_type == Event.Type.BOUNCED:
        return "bounced_hard" if bounce_type == Event.BounceType.HARD else "bounced_soft"
    return _EVENT_COUNTER.get(event_type)


# What an open or click classified as a person adds beside "opened"/"clicked" (its visitor is
# in the event's raw payload: outreach.events.tracking).
_HUMAN_COUNTER: dict[str, str] = {
    Event.Type.OPENED: "opened_human",
    Event.Type.CLICKED: "clicked_human",
}


def human_counter(event_type: str, raw: Any) -> str | None:
    """The estimate counter an event also adds to, or None."""
    visitor = raw.get("visitor") if isinstance(raw, dict) else None
    return _HUMAN_COUNTER.get(event_type) if visitor == "human" else None


@dataclass(frozen=True)
class Dims:
    """The dimensions of a rollup row; 0 = none."""

    mailbox_id: int = 0
    domain_id: int = 0
    campaign_id: int = 0
    step_id: int = 0
    variant_id: int = 0
    provider_id: int = 0

    def values(self) -> tuple[int, int, int, int, int, int]:
        """The dimensions in field order (``dataclasses.astuple`` copies each value deeply:
        too slow for a sort key over thousands of rows)."""
        return (
            self.mailbox_id,
            self.domain_id,
            self.campaign_id,
            self.step_id,
            self.variant_id,
            self.provider_id,
        )

    def key(self) -> dict[str, int]:
        """The columns of the unique constraint (the domain follows from the mailbox)."""
        data = asdict(self)
        data.pop("domain_id")
        return data


def pool_timezone() -> ZoneInfo:
    # One column by primary key, without building a query or a model instance: this runs
    # for every event stored.
    with connection.cursor() as cursor:
        cursor.execute(_POOL_TIMEZONE_SQL, [1])
        row = cursor.fetchone()
    return ZoneInfo(row[0] if row else PoolSettings.load().timezone)


_POOL_TIMEZONE_SQL = "SELECT {} FROM {} WHERE {} = %s".format(  # noqa: S608
    PoolSettings._meta.get_field("timezone").column,
    PoolSettings._meta.db_table,
    PoolSettings._meta.pk.column,
)


def day_of(at: datetime, tz: ZoneInfo) -> date:
    return at.astimezone(tz).date()


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of a pool day as aware datetimes."""
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return start, end


def bump(day: date, dims: Dims, counters: dict[str, int]) -> None:
    """Add ``counters`` to the row of (day, dims), creating it when it does not exist yet."""
    bump_many({(day, dims): Counter(counters)})


def bump_many(increments: dict[tuple[date, Dims], Counter[str]]) -> None:
    """Add each group's counters to its row, in one INSERT ... ON CONFLICT DO UPDATE.

    ``used = used + n`` happens in the database, so concurrent writers never lose a count,
    and a row that does not exist yet is created by whichever writer comes first (SQLite
    3.24+ and PostgreSQL alike). Rows are written in key order: two writers with overlapping
    batches lock them in the same order and cannot deadlock each other.
    """
    groups = sorted(
        ((day, dims, counts) for (day, dims), counts in increments.items() if +counts),
        key=lambda g: (g[0], *g[1].values()),
    )
    if not groups:
        return
    names = sorted({name for _, _, counts in groups for name in +counts})
    unknown = set(names) - set(COUNTERS)
    if unknown:
        raise ValueError(f"unknown rollup counters: {sorted(unknown)}")
    table = connection.ops.quote_name(DailyRollup._meta.db_table)
    # Every counter on insert (their defaults live in the model, not in the table).
    columns = [*_DIM_COLUMNS, *COUNTERS]
    # A row of zeros filled in with the group's few counters (looking up every counter in
    # each group's Counter cost more than the statement).
    zeros = [0] * len(COUNTERS)
    # Looked up once: each use of the ``connection`` proxy finds the thread's connection again.
    adapt_day = connection.ops.adapt_datefield_value
    rows = []
    for day, dims, counts in groups:
        values = zeros.copy()
        for name, n in counts.items():
            values[_COUNTER_INDEX[name]] = n
        rows.append([adapt_day(day), *dims.values(), *values])
    params: list[Any]
    if connection.vendor == "postgresql":
        # One array per column: a statement with a parameter per value is parsed again, in
        # Python, by psycopg every time it runs (its cache skips more than 50 parameters).
        arrays = ", ".join(["%s::date[]"] + ["%s::bigint[]"] * (len(columns) - 1))
        source = f"SELECT * FROM unnest({arrays})"  # noqa: S608
        params = [list(values) for values in zip(*rows, strict=True)]
    else:
        row = "(" + ", ".join(["%s"] * len(columns)) + ")"
        source = "VALUES " + ", ".join([row] * len(groups))
        params = [value for values in rows for value in values]
    q = connection.ops.quote_name
    key = ", ".join(q(c) for c in _KEY_COLUMNS)
    updates = ", ".join(f"{q(c)} = {table}.{q(c)} + EXCLUDED.{q(c)}" for c in names)
    # Identifiers are the model's own columns and counters checked against COUNTERS above.
    sql = "INSERT INTO {} ({}) {} ON CONFLICT ({}) DO UPDATE SET {}".format(
        table,
        ", ".join(q(c) for c in columns),
        source,
        key,
        updates,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


# Where each counter goes in a row of bump_many.
_COUNTER_INDEX = {name: i for i, name in enumerate(COUNTERS)}
# The unique constraint ``daily_rollup_unique``, and the columns a new row is created with.
_KEY_COLUMNS = ("day", "mailbox_id", "campaign_id", "step_id", "variant_id", "provider_id")
_DIM_COLUMNS = (
    "day",
    "mailbox_id",
    "domain_id",
    "campaign_id",
    "step_id",
    "variant_id",
    "provider_id",
)
assert _DIM_COLUMNS[1:] == tuple(f.name for f in fields(Dims))  # the order of Dims.values()


def _mailbox_domains(mailbox_ids: set[int]) -> dict[int, int]:
    ids = {i for i in mailbox_ids if i}
    if not ids:
        return {}
    return dict(Mailbox.objects.filter(pk__in=ids).values_list("pk", "domain_id"))


def record_events(events: list[Event], tz: ZoneInfo | None = None) -> None:
    """Count stored events on the days they occurred: one UPSERT for the whole batch.

    Each event's message is read from the event when it is already in hand (the events
    collector loads the columns needed here), otherwise with the others in one query; the
    domains of mailboxes not in hand likewise.
    """
    counted = [(e, c) for e in events if (c := event_counter(e.type, e.bounce_type)) is not None]
    if not counted:
        return
    in_hand: dict[int, dict[str, Any]] = {}
    wanted: set[int] = set()
    for event, _ in counted:
        if not event.message_id:
            continue
        if Event.message.is_cached(event) and all(
            f in event.message.__dict__ for f in _ROLLUP_MESSAGE_FIELDS
        ):
            in_hand[id(event)] = {f: getattr(event.message, f) for f in _ROLLUP_MESSAGE_FIELDS}
        else:
            wanted.add(event.message_id)
    read = (
        {
            row.pop("pk"): row
            for row in Message.objects.filter(pk__in=wanted).values("pk", *_ROLLUP_MESSAGE_FIELDS)
        }
        if wanted
        else {}
    )
    rows: list[tuple[Event, str, dict[str, Any], int]] = []
    for event, counter in counted:
        msg = in_hand.get(id(event)) or (read.get(event.message_id, {}) if event.message_id else {})
        rows.append((event, counter, msg, event.mailbox_id or msg.get("mailbox_id") or 0))
    cached_domains = {
        id(event): _cached_domain_id(event, mailbox_id)
        for event, _, _, mailbox_id in rows
        if mailbox_id
    }
    domains = _mailbox_domains(
        {m for event, _, _, m in rows if m and cached_domains.get(id(event)) is None}
    )
    tz = tz or pool_timezone()
    increments: dict[tuple[date, Dims], Counter[str]] = defaultdict(Counter)
    for event, counter, msg, mailbox_id in rows:
        cached = cached_domains.get(id(event))
        dims = Dims(
            mailbox_id=mailbox_id,
            domain_id=(cached if cached is not None else domains.get(mailbox_id, 0))
            if mailbox_id
            else 0,
            campaign_id=event.campaign_id or msg.get("campaign_id") or 0,
            step_id=msg.get("step_id") or 0,
            variant_id=msg.get("variant_id") or 0,
            provider_id=msg.get("provider_account_id") or 0,
        )
        counts = increments[(day_of(event.occurred_at, tz), dims)]
        counts[counter] += 1
        human = human_counter(event.type, event.raw)
        if human:
            counts[human] += 1
    bump_many(increments)


_ROLLUP_MESSAGE_FIELDS = (
    "mailbox_id",
    "campaign_id",
    "step_id",
    "variant_id",
    "provider_account_id",
)


def _cached_domain_id(event: Event, mailbox_id: int) -> int | None:
    """The domain of the event's mailbox when the message's mailbox row is already loaded."""
    if not Event.message.is_cached(event):
        return None
    message = event.message
    if message is None or message.mailbox_id != mailbox_id:
        return None
    if not Message.mailbox.is_cached(message):
        return None
    mailbox = message.mailbox
    return mailbox.domain_id if mailbox is not None else None


def record_attempts(attempts: list[SendAttempt]) -> None:
    """Count provider calls on the days they were made: one UPSERT for the whole batch.

    The message and mailbox of each attempt are taken from the attempt when they are already
    loaded (the sending engine hands them over), otherwise read in one query each.
    """
    if not attempts:
        return
    uncached = [a.message_id for a in attempts if not SendAttempt.message.is_cached(a)]
    messages = (
        {
            row["pk"]: row
            for row in Message.objects.filter(pk__in=uncached).values(
                "pk", "campaign_id", "step_id", "variant_id"
            )
        }
        if uncached
        else {}
    )
    missing_boxes = {a.mailbox_id for a in attempts if not SendAttempt.mailbox.is_cached(a)}
    domains = _mailbox_domains(missing_boxes)
    tz = pool_timezone()
    # Calls counted per row first, outcome by outcome, and turned into counters once per
    # row: a batch is a few hundred calls over far fewer rows, made at one instant.
    outcomes: dict[tuple[Any, ...], Counter[str]] = defaultdict(Counter)
    days: dict[datetime, date] = {}
    message_cached, mailbox_cached = SendAttempt.message.is_cached, SendAttempt.mailbox.is_cached
    for attempt in attempts:
        if message_cached(attempt):
            m = attempt.message
            campaign_id, step_id, variant_id = m.campaign_id, m.step_id, m.variant_id
        else:
            row: Mapping[str, Any] = messages.get(attempt.message_id, {})
            campaign_id, step_id, variant_id = (
                row.get("campaign_id"),
                row.get("step_id"),
                row.get("variant_id"),
            )
        if mailbox_cached(attempt):
            domain_id = attempt.mailbox.domain_id
        else:
            domain_id = domains.get(attempt.mailbox_id, 0)
        day = days.get(attempt.at)
        if day is None:
            day = days[attempt.at] = day_of(attempt.at, tz)
        key = (
            day,
            attempt.mailbox_id,
            domain_id,
            campaign_id or 0,
            step_id or 0,
            variant_id or 0,
            attempt.provider_account_id,
        )
        outcomes[key][attempt.outcome] += 1
    increments: dict[tuple[date, Dims], Counter[str]] = {}
    for (day, *dims), calls in outcomes.items():
        counts: Counter[str] = Counter()
        for outcome, n in calls.items():
            for name, each in ATTEMPT_COUNTERS.get(outcome, {}).items():
                counts[name] += each * n
        increments[(day, Dims(*dims))] = counts
    bump_many(increments)


def rebuild(day: date) -> int:
    """Recompute every rollup row of ``day`` from the raw tables; returns the rows written.

    1. Count provider calls of the day by dimensions and outcome.
    2. Count events that occurred that day by dimensions and type.
    3. Replace the day's rows in one transaction (readers see the old or the new day).
    """
    start, end = day_bounds(day, pool_timezone())
    totals: _Totals = defaultdict(Counter)
    _count_attempts(totals, start, end)
    _count_events(totals, start, end)
    domains = _mailbox_domains({key[0] for key in totals})
    rows = [
        DailyRollup(
            day=day,
            mailbox_id=key[0],
            domain_id=domains.get(key[0], 0),
            campaign_id=key[1],
            step_id=key[2],
            variant_id=key[3],
            provider_id=key[4],
            **counts,
        )
        for key, counts in totals.items()
    ]
    with transaction.atomic():
        DailyRollup.objects.filter(day=day).delete()
        DailyRollup.objects.bulk_create(rows)
    return len(rows)


# (mailbox, campaign, step, variant, provider account) -> counter -> n
_Totals = dict[tuple[int, int, int, int, int], Counter[str]]


def _count_attempts(totals: _Totals, start: datetime, end: datetime) -> None:
    attempts = (
        SendAttempt.objects.filter(at__gte=start, at__lt=end)
        .values(
            "mailbox_id",
            "provider_account_id",
            "outcome",
            "message__campaign_id",
            "message__step_id",
            "message__variant_id",
        )
        .annotate(n=Count("id"))
    )
    for row in attempts:
        key = (
            row["mailbox_id"] or 0,
            row["message__campaign_id"] or 0,
            row["message__step_id"] or 0,
            row["message__variant_id"] or 0,
            row["provider_account_id"] or 0,
        )
        for name, n in ATTEMPT_COUNTERS.get(row["outcome"], {}).items():
            totals[key][name] += n * row["n"]


def _count_events(totals: _Totals, start: datetime, end: datetime) -> None:
    events = (
        Event.objects.filter(occurred_at__gte=start, occurred_at__lt=end)
        .values("type", "bounce_type", *_EVENT_DIMS)
        .annotate(n=Count("id"))
    )
    for row in events:
        counter = event_counter(row["type"], row["bounce_type"])
        if counter is None:
            continue
        totals[_event_key(row)][counter] += row["n"]
    humans = (
        Event.objects.filter(occurred_at__gte=start, occurred_at__lt=end)
        .filter(type__in=list(_HUMAN_COUNTER), raw__visitor="human")
        .values("type", *_EVENT_DIMS)
        .annotate(n=Count("id"))
    )
    for row in humans:
        totals[_event_key(row)][_HUMAN_COUNTER[row["type"]]] += row["n"]


# The columns an event's rollup row is found by (the event's own, else its message's).
_EVENT_DIMS = (
    "mailbox_id",
    "campaign_id",
    "message__mailbox_id",
    "message__campaign_id",
    "message__step_id",
    "message__variant_id",
    "message__provider_account_id",
)


def _event_key(row: dict[str, Any]) -> tuple[int, int, int, int, int]:
    return (
        row["mailbox_id"] or row["message__mailbox_id"] or 0,
        row["campaign_id"] or row["message__campaign_id"] or 0,
        row["message__step_id"] or 0,
        row["message__variant_id"] or 0,
        row["message__provider_account_id"] or 0,
    )


def window_days(days: int, today: date | None = None) -> tuple[date, date]:
    """The first and last pool day of a window of ``days`` days ending today (inclusive)."""
    last = today or clock.today(PoolSettings.load().timezone)
    return last - timedelta(days=days - 1), last


def _sums(queryset: Any) -> dict[str, Any]:
    return dict(queryset.aggregate(**{name: Sum(name) for name in COUNTERS}))


def window_figures(
    *,
    days: int = 7,
    today: date | None = None,
    mailbox_id: int | None = None,
    domain_id: int | None = None,
    campaign_id: int | None = None,
    provider_id: int | None = None,
) -> Figures:
    """Sums over the last ``days`` pool days, for one subject or (no filter) the whole pool."""
    first, last = window_days(days, today)
    rows = DailyRollup.objects.filter(day__gte=first, day__lte=last)
    for field, value in (
        ("mailbox_id", mailbox_id),
        ("domain_id", domain_id),
        ("campaign_id", campaign_id),
        ("provider_id", provider_id),
    ):
        if value is not None:
            rows = rows.filter(**{field: value})
    return Figures.from_mapping(_sums(rows))


def figures_by(
    dimension: str,
    *,
    first: date,
    last: date,
    counters: Sequence[str] = COUNTERS,
    **filters: int,
) -> dict[int, Figures]:
    """Sums per value of ``dimension`` ("mailbox_id", "domain_id", ...) over [first, last];
    only ``counters`` are summed (the others read 0)."""
    rows = (
        DailyRollup.objects.filter(day__gte=first, day__lte=last, **filters)
        .values(dimension)
        .annotate(**{name: Sum(name) for name in counters})
    )
    return {row[dimension]: Figures.from_mapping(row) for row in rows}


def figures_since(mailbox_id: int, since: datetime) -> Figures:
    """A mailbox's figures from the raw tables for what happened after ``since``.

    Used when a mailbox was put back into service inside the window: evidence from before
    that moment was already acted on, and a day's rollup cannot tell before from after. The
    scan is bounded by one mailbox and at most one window of days.
    """
    totals: Counter[str] = Counter()
    attempts = (
        SendAttempt.objects.filter(mailbox_id=mailbox_id, at__gt=since)
        .values("outcome")
        .annotate(n=Count("id"))
    )
    for row in attempts:
        for name, n in ATTEMPT_COUNTERS.get(row["outcome"], {}).items():
            totals[name] += n * row["n"]
    events = (
        Event.objects.filter(Q(mailbox_id=mailbox_id) | Q(message__mailbox_id=mailbox_id))
        .filter(occurred_at__gt=since)
        .values("type", "bounce_type")
        .annotate(n=Count("id", distinct=True))
    )
    for row in events:
        counter = event_counter(row["type"], row["bounce_type"])
        if counter is not None:
            totals[counter] += row["n"]
    return Figures.from_mapping(dict(totals))
