"""Storing normalized events, once each, and their effects in the same transaction.

Effects (docs/rules.md, Sequences and Suppression):

- hard bounce: the address is suppressed, its active enrollments stop;
- the third soft bounce to one address counts as a hard bounce;
- complaint: suppressed, enrollments stop. Pausing the sending mailbox is the health rule's
  (``outreach.metrics.health.mailbox_verdict``, with its ``complaint_pause_count``): it runs
  on ``events_recorded`` inside this same transaction, so once the complaint is stored the
  worker's conditional UPDATE (mailbox still active/warming) lets nothing more leave it;
- unsubscribe: suppressed, enrollments stop;
- reply: the thread's enrollment stops; with ``campaign.stop_on_company_reply`` every active
  enrollment of the campaign at the replier's company domain stops too;
- auto-reply, block, delivery, open, click: recorded only (the health rules read them).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import connection, models, transaction
from django.db.models import Count, Q

from outreach.campaigns.models import Campaign, Enrollment, Message, Suppression
from outreach.campaigns.suppression import Entry, suppress_many
from outreach.campaigns.suppression import normalize as normalize_address
from outreach.events import normalize as n
from outreach.events.models import Event
from outreach.events.signals import events_recorded
from outreach.lib import clock, sql
from outreach.pool.models import Mailbox
from outreach.providers.base import Outcome, SendError

if TYPE_CHECKING:
    from outreach.providers.simulated.sender import Notification

log = logging.getLogger(__name__)

# Soft bounces to one address before it is treated as a hard bounce: a mailbox full three
# times running is as good as dead, and each retry costs reputation.
SOFT_BOUNCES_AS_HARD = 3

# Free-mail domains are nobody's company: a reply from one Gmail user must not stop every
# other Gmail lead of the campaign.
FREEMAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "yahoo.com",
        "ymail.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "gmx.com",
        "gmx.de",
        "web.de",
        "mail.com",
        "yandex.com",
        "yandex.ru",
        "zoho.com",
        "fastmail.com",
    }
)


def record_simulated(notifications: Sequence[Notification]) -> int:
    """Store a batch of the simulated provider's notifications; returns how many were new."""
    stored = record_batch([n.from_simulated(notification) for notification in notifications])
    return sum(1 for event in stored if event is not None)


def record(incoming: n.Incoming) -> Event | None:
    """Store ``incoming`` and apply its effects atomically; None when it was already stored.

    A batch of one: see :func:`record_batch`.
    """
    return record_batch([incoming])[0]


# Events per round of statements: each round reads its messages, inserts its events and
# applies their effects in a constant number of statements. Bounded so a round stays under
# the databases' parameter limits (an event row binds 14 values; SQLite allows 32,766).
BATCH = 1000


def record_batch(incomings: Sequence[n.Incoming]) -> list[Event | None]:
    """Store ``incomings`` in their order and apply their effects atomically; for each one
    the stored event, or None when it was already stored (a repeat, in the database or
    earlier in the batch).

    What is decided is what storing them one at a time would decide: the message each is
    about, which are new, who is suppressed and whose enrollments stop with which reason
    (the first event in the batch to stop an enrollment names its reason). The work is done
    set-wise: one lookup of the messages, one INSERT of the events, one pass of effects, and
    ``events_recorded`` sent once with the new events, inside the transaction, so listeners'
    writes commit or roll back with them.
    """
    out: list[Event | None] = []
    # No savepoint of its own inside a caller's transaction (a webhook's batch): every
    # statement counts on the ingest path, and an error aborts the batch anyway.
    with transaction.atomic(savepoint=False):
        for start in range(0, len(incomings), BATCH):
            out += _record_round(incomings[start : start + BATCH])
    return out


def _record_round(incomings: Sequence[n.Incoming]) -> list[Event | None]:
    messages = find_messages(incomings)
    received_at = clock.now()
    events: list[Event] = []
    for incoming, found in zip(incomings, messages, strict=True):
        message = found
        if message is not None and not same_recipient(incoming, message):
            # An id echoed back for another address (a forwarded copy, a provider mixing up
            # batches, a forged id): the event is kept, unmatched, and touches neither that
            # message's mailbox nor its lead.
            message = None
        events.append(
            Event(
                source=incoming.source,
                provider_event_id=incoming.provider_event_id,
                type=incoming.type,
                bounce_type=incoming.bounce_type,
                diagnostic=incoming.diagnostic,
                recipient=incoming.recipient,
                message=message,
                mailbox_id=(message.mailbox_id or incoming.mailbox_id) if message else None,
                campaign_id=message.campaign_id if message else None,
                provider_message_id=incoming.provider_message_id,
                unmatched=message is None,
                occurred_at=incoming.occurred_at,
                received_at=received_at,
                raw=incoming.raw,
            )
        )
    new = _insert_new(events)
    if new:
        apply_effects(new)
        events_recorded.send(sender=Event, events=new)
    stored = {id(event) for event in new}
    return [event if id(event) in stored else None for event in events]


def on_send_refused(
    sender: Any, message: Message, error: SendError, attempt: Any, at: Any, **kwargs: Any
) -> Event | None:
    """A hard bounce or a block at send time (``sending.signals.send_refused``) becomes an
    event like a webhook's: it suppresses and stops enrollments, and the health rules count
    it."""
    is_bounce = error.kind == Outcome.HARD_BOUNCE
    return record(
        n.Incoming(
            source="smtp",
            type="bounced" if is_bounce else "blocked",
            bounce_type="hard" if is_bounce else "",
            recipient=message.to_email,
            occurred_at=at,
            provider_event_id=f"attempt-{attempt.pk}" if attempt else None,
            outreach_message_id=message.pk,
            # A blocked message is routed again: its row no longer names the mailbox the
            # receiver refused, the event does.
            mailbox_id=message.mailbox_id,
            diagnostic=str(error)[:2000],
            raw={"code": error.code, "response": error.message, "kind": error.kind.value},
        )
    )


def find_message(incoming: n.Incoming) -> Message | None:
    """The message an event is about: our id echoed back, the provider's id, or Message-IDs.

    The message comes with the columns the effects and the rollups read and its mailbox's
    domain id: nothing downstream reads the message again.
    """
    return find_messages([incoming])[0]


def find_messages(incomings: Sequence[n.Incoming]) -> list[Message | None]:
    """:func:`find_message` for each of ``incomings``, in at most three queries: our ids,
    then the provider's ids of those still unmatched, then their referenced Message-IDs.
    Each one finds the newest message that matches, as one query per event would."""
    found: list[Message | None] = [None] * len(incomings)
    ours = {i.outreach_message_id for i in incomings if i.outreach_message_id}
    if ours:
        by_pk = {m.pk: m for m, _ in _messages(_col("id"), sorted(ours))}
        for k, incoming in enumerate(incomings):
            if incoming.outreach_message_id:
                found[k] = by_pk.get(incoming.outreach_message_id)
    wanted = {
        k: set(_id_variants(incoming.provider_message_id))
        for k, incoming in enumerate(incomings)
        if found[k] is None and incoming.provider_message_id
    }
    wanted = {k: ids for k, ids in wanted.items() if ids}
    if wanted:
        rows = _messages(
            _col("provider_message_id"),
            sorted(set().union(*wanted.values())),
            _col("message_id_header"),
        )
        for k, ids in wanted.items():
            found[k] = next((m for m, keys in rows if keys & ids), None)
    wanted = {
        k: {v for ref in incoming.referenced_message_ids for v in _id_variants(ref)}
        for k, incoming in enumerate(incomings)
        if found[k] is None and incoming.referenced_message_ids
    }
    wanted = {k: ids for k, ids in wanted.items() if ids}
    if wanted:
        rows = _messages(None, sorted(set().union(*wanted.values())), _col("message_id_header"))
        for k, ids in wanted.items():
            found[k] = next((m for m, keys in rows if keys & ids), None)
    return found


# Types whose sender may rightly differ from the message's recipient: a colleague answers,
# a forwarded copy auto-replies. They are matched by the thread's Message-IDs.
_ANY_SENDER_TYPES = frozenset({n.REPLIED, n.AUTO_REPLIED})


def same_recipient(incoming: n.Incoming, message: Message) -> bool:
    """Is ``incoming`` about the address ``message`` was sent to (replies: always)."""
    if incoming.type in _ANY_SENDER_TYPES or not incoming.recipient:
        return True
    if incoming.source == "imap" and incoming.type == n.UNSUBSCRIBED:
        return True  # a reply in the thread asking to be removed is a reply too
    return incoming.recipient.strip().lower() == message.to_email.strip().lower()


# The columns of a found message (attnames), in the model's order as ``Model.from_db`` wants.
_MESSAGE_FIELDS = tuple(
    f.attname
    for f in Message._meta.concrete_fields
    if f.attname
    in {
        "id",
        "mailbox_id",
        "campaign_id",
        "enrollment_id",
        "step_id",
        "variant_id",
        "provider_account_id",
        "to_email",
        "state",
    }
)


_MAILBOX_FIELDS = [
    f.attname for f in Mailbox._meta.concrete_fields if f.attname in ("id", "domain_id")
]
assert _MAILBOX_FIELDS == ["id", "domain_id"]


def _col(attname: str) -> str:
    for column in Message._meta.concrete_fields:
        if column.attname == attname:
            return connection.ops.quote_name(column.column)
    raise LookupError(attname)


def _messages(
    column: str | None, values: list[Any], header: str | None = None
) -> list[tuple[Message, set[Any]]]:
    """The messages whose ``column`` or ``header`` column (over alias ``m``) is one of
    ``values``, newest first, each with its mailbox (id and domain id) attached and the set
    of its values in those columns (what it was matched by). Plain SQL: this runs for every
    batch of webhook events, and building the ORM query cost more than the query itself."""
    keys = [c for c in (column, header) if c is not None]
    rows: dict[int, tuple[Any, ...]] = {}
    # In parts, under the databases' parameter limits (a batch of replies may reference
    # many Message-IDs each); a message found by two parts is the same row.
    for start in range(0, len(values), _LOOKUP_CHUNK):
        part = values[start : start + _LOOKUP_CHUNK]
        with connection.cursor() as cursor:
            cursor.execute(_messages_sql(keys, len(part)), part * len(keys))
            rows.update((row[0], row) for row in cursor.fetchall())
    width = len(_MESSAGE_FIELDS)
    out = []
    for _, row in sorted(rows.items(), reverse=True):
        values_, domain_id, matched = list(row[:width]), row[width], set(row[width + 1 :])
        # Built as from_db builds them, without Model.__init__ (sql.build): every event of a
        # webhook batch or a simulated day's notifications.
        message = sql.build(Message, _MESSAGE_FIELDS, values_, connection.alias)
        if message.mailbox_id is not None:
            mailbox = [message.mailbox_id, domain_id]
            Message.mailbox.field.set_cached_value(
                message, sql.build(Mailbox, _MAILBOX_FIELDS, mailbox, connection.alias)
            )
        out.append((message, matched))
    return out


# Values per lookup statement (each bound once per column searched).
_LOOKUP_CHUNK = 5000
assert _MESSAGE_FIELDS[0] == "id"  # rows are told apart by their first column


def _messages_sql(keys: list[str], count: int) -> str:
    q = connection.ops.quote_name
    mailbox = Mailbox._meta
    marks = ", ".join(["%s"] * count)
    where = " OR ".join(f"m.{c} IN ({marks})" for c in keys)
    # Identifiers come from the models; values are parameters.
    sql = (  # noqa: S608
        "SELECT {columns}, b.{domain}, {keys} FROM {messages} m "
        "LEFT OUTER JOIN {mailboxes} b ON m.{mailbox_id} = b.{mailbox_pk} "
        "WHERE {where}"
    ).format(
        columns=", ".join(f"m.{_col(f)}" for f in _MESSAGE_FIELDS),
        domain=q(mailbox.get_field("domain").column),
        keys=", ".join(f"m.{c}" for c in keys),
        messages=q(Message._meta.db_table),
        mailboxes=q(mailbox.db_table),
        mailbox_id=_col("mailbox_id"),
        mailbox_pk=q(mailbox.pk.column),
        where=where,
    )
    return sql


def _insert_new(events: list[Event]) -> list[Event]:
    """INSERT those of ``events`` whose (source, provider event id) is not stored yet, nor
    earlier in the list; returns them, in order, with their primary keys.

    ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` (SQLite 3.35+, PostgreSQL): a repeat (a
    provider's retry, or two deliveries racing) inserts nothing and leaves the transaction
    usable, with no savepoint around it. Events with a provider id go in one statement and
    are told apart by that id in what it returns; one without (never a conflict) is
    inserted on its own, so its key is not left to the order of a RETURNING.
    """
    keyed: dict[tuple[str, str], Event] = {}
    alone: list[Event] = []
    for event in events:
        if event.provider_event_id is None:
            alone.append(event)
        else:
            keyed.setdefault((event.source, event.provider_event_id), event)
    stored: set[int] = set()
    for group in ([*keyed.values()], *([e] for e in alone)):
        if not group:
            continue
        for event, pk in _insert_rows(group):
            event.pk = pk
            event._state.adding = False
            event._state.db = connection.alias
            stored.add(id(event))
    return [event for event in events if id(event) in stored]


# The columns of an event row, each with how its value goes to the database. Asking every
# field to prepare its value (``get_db_prep_save``) for every row of a batch was the
# INSERT's largest cost; text needs only ``to_python`` (what its preparation does: a
# provider's numeric id becomes text), booleans and ids nothing, dates and JSON the full
# preparation.
_EVENT_FIELDS = [f for f in Event._meta.local_concrete_fields if not f.primary_key]


def _preparer(f: Any) -> Callable[[Event], Any]:
    if type(f) in (models.CharField, models.TextField):
        return lambda event: f.to_python(getattr(event, f.attname))
    if type(f) is models.BooleanField or isinstance(f, models.ForeignKey):
        return lambda event: getattr(event, f.attname)
    return lambda event: f.get_db_prep_save(f.pre_save(event, True), connection)


_EVENT_PREPARERS = [_preparer(f) for f in _EVENT_FIELDS]


def _insert_rows(events: list[Event]) -> list[tuple[Event, int]]:
    fields = _EVENT_FIELDS
    q = connection.ops.quote_name
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    source = q(Event._meta.get_field("source").column)
    provider_event_id = q(Event._meta.get_field("provider_event_id").column)
    sql = (
        "INSERT INTO {} ({}) VALUES {} ON CONFLICT ({}, {}) DO NOTHING RETURNING {}, {}, {}".format(  # noqa: S608
            q(Event._meta.db_table),
            ", ".join(q(f.column) for f in fields),
            ", ".join([row] * len(events)),
            source,
            provider_event_id,
            q(Event._meta.pk.column),
            source,
            provider_event_id,
        )
    )
    params = [prepare(event) for event in events for prepare in _EVENT_PREPARERS]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        returned = cursor.fetchall()
    if len(events) == 1:
        return [(events[0], returned[0][0])] if returned else []
    by_key = {(e.source, e.provider_event_id): e for e in events}
    return [(by_key[(src, pid)], pk) for pk, src, pid in returned]


def _id_variants(value: str) -> list[str]:
    # Providers disagree on angle brackets around ids (Mailgun drops them, SES has none).
    bare = value.strip().strip("<>").strip()
    return [bare, f"<{bare}>"] if bare else []


def apply_effects(events: Sequence[Event]) -> None:
    """The effects of newly stored ``events``, as applying them one after another would
    leave them, in a constant number of statements.

    Each event's rule (:func:`_effects_of`) says what it suppresses and whose enrollments it
    stops; the suppressions are then written in one go (the first entry for an address
    stays) and every enrollment stops with the reason of the first event in the batch that
    stops it (:func:`_stop_in_order`).
    """
    effects = _Effects(
        soft_before=_soft_bounces_before(events),
        campaigns=_reply_campaigns(events),
    )
    for event in events:
        _effects_of(event, event.message, effects)
    if effects.suppress:
        suppress_many(effects.suppress, created_by="events")
    if effects.stops:
        _stop_in_order(effects.stops)


@dataclass
class _Effects:
    """What a batch of events does, gathered in the events' order."""

    # Per address bounced softly (or untyped) in the batch: its soft bounces stored before
    # the batch; ``seen`` counts those of the batch up to the current event.
    soft_before: Counter[str]
    campaigns: dict[int, Campaign]
    seen_soft: Counter[str] = field(default_factory=Counter)
    suppress: list[Entry] = field(default_factory=list)
    stops: list[_Stop] = field(default_factory=list)

    def soft_bounces(self, event: Event) -> int:
        """Soft bounces to the event's address stored up to and including this event (what
        counting them in the database right after storing it alone would find)."""
        if event.bounce_type == Event.BounceType.SOFT:
            self.seen_soft[event.recipient] += 1
        return self.soft_before[event.recipient] + self.seen_soft[event.recipient]


def _effects_of(event: Event, message: Message | None, effects: _Effects) -> None:
    """Docs/rules.md, Sequences and Suppression: what one event suppresses and stops."""
    address = event.recipient
    if event.type == Event.Type.BOUNCED and address:
        if event.bounce_type == Event.BounceType.HARD:
            _suppress_and_stop(
                address, Suppression.Source.HARD_BOUNCE, event, "hard bounce", effects
            )
        elif effects.soft_bounces(event) >= SOFT_BOUNCES_AS_HARD:
            _suppress_and_stop(
                address,
                Suppression.Source.HARD_BOUNCE,
                event,
                f"{SOFT_BOUNCES_AS_HARD} soft bounces",
                effects,
            )
    elif event.type == Event.Type.COMPLAINED:
        if address:
            _suppress_and_stop(
                address, Suppression.Source.COMPLAINT, event, "spam complaint", effects
            )
    elif event.type == Event.Type.UNSUBSCRIBED and address:
        _suppress_and_stop(address, Suppression.Source.UNSUBSCRIBE, event, "unsubscribed", effects)
        if event.source == "imap" and message is not None:
            _stop_on_reply(event, message, effects)  # a reply asking to be removed is a reply too
    elif event.type == Event.Type.REPLIED and message is not None:
        _stop_on_reply(event, message, effects)


def _soft_bounces_before(events: Sequence[Event]) -> Counter[str]:
    """For each address that ``events`` bounce without a hard bounce type: its soft bounces
    stored before them (one query: all stored, minus the batch's own)."""
    bounced = [
        e
        for e in events
        if e.type == Event.Type.BOUNCED and e.bounce_type != Event.BounceType.HARD and e.recipient
    ]
    if not bounced:
        return Counter()
    stored = dict(
        Event.objects.filter(
            recipient__in={e.recipient for e in bounced},
            type=Event.Type.BOUNCED,
            bounce_type=Event.BounceType.SOFT,
        )
        .values("recipient")
        .annotate(n=Count("id"))
        .values_list("recipient", "n")
    )
    in_batch = Counter(e.recipient for e in bounced if e.bounce_type == Event.BounceType.SOFT)
    return Counter(
        {e.recipient: stored.get(e.recipient, 0) - in_batch[e.recipient] for e in bounced}
    )


_REPLY_TYPES = frozenset({Event.Type.REPLIED, Event.Type.UNSUBSCRIBED})


def _reply_campaigns(events: Sequence[Event]) -> dict[int, Campaign]:
    """The campaigns of the messages replied to, read once for the batch."""
    ids = {
        e.message.campaign_id
        for e in events
        if e.type in _REPLY_TYPES and e.message is not None and e.message.campaign_id
    }
    return Campaign.objects.in_bulk(ids) if ids else {}


_STOP_REASONS: dict[str, str] = {
    Suppression.Source.HARD_BOUNCE: Enrollment.StopReason.BOUNCE,
    Suppression.Source.COMPLAINT: Enrollment.StopReason.COMPLAINT,
    Suppression.Source.UNSUBSCRIBE: Enrollment.StopReason.UNSUBSCRIBE,
}


@dataclass(frozen=True)
class _Stop:
    """Stop the active enrollments of a lead's address, of one enrollment, or of a campaign
    at a company domain, with ``reason``."""

    reason: str
    address: str = ""
    enrollment_id: int | None = None
    campaign_id: int | None = None
    company_domain: str = ""

    def matches(self, row: _EnrollmentRow) -> bool:
        if self.address:
            return row.email.lower() == self.address.lower()
        if self.enrollment_id is not None:
            return row.pk == self.enrollment_id
        return row.campaign_id == self.campaign_id and (
            row.email_domain.lower() == self.company_domain.lower()
        )


@dataclass(frozen=True)
class _EnrollmentRow:
    pk: int
    email: str
    email_domain: str
    campaign_id: int


def _suppress_and_stop(
    address: str, source: str, event: Event, why: str, effects: _Effects
) -> None:
    effects.suppress.append(Entry(address, source, reason=f"{why} ({event.source} event)"))
    effects.stops.append(_Stop(_STOP_REASONS[source], address=address))


def _stop_on_reply(event: Event, message: Message, effects: _Effects) -> None:
    if message.enrollment_id is not None:
        effects.stops.append(_Stop("reply", enrollment_id=message.enrollment_id))
    campaign = effects.campaigns.get(message.campaign_id) if message.campaign_id else None
    domain = event.recipient.rpartition("@")[2]
    if campaign is None or not campaign.stop_on_company_reply or not domain:
        return
    if domain in FREEMAIL_DOMAINS:
        return
    effects.stops.append(
        _Stop(Enrollment.StopReason.COMPANY_REPLY, campaign_id=campaign.pk, company_domain=domain)
    )


def _stop_in_order(stops: list[_Stop]) -> None:
    """Stop the active enrollments ``stops`` name, each with the reason of the first stop
    that names it (as stopping them one after another would: a stopped enrollment is not
    stopped again). :func:`_named` reads them; :func:`_stop` writes them by reason."""
    left = _named(stops)
    by_reason: dict[str, list[int]] = defaultdict(list)
    for stop in stops:
        taken = [row for row in left if stop.matches(row)]
        if taken:
            by_reason[stop.reason] += [row.pk for row in taken]
            left = [row for row in left if not stop.matches(row)]
    _stop(by_reason)


def _named(stops: list[_Stop]) -> list[_EnrollmentRow]:
    """The active enrollments any of ``stops`` names, each once: one query for the
    addresses, one for the enrollments, one per company domain, each on its own index (an
    OR across the lead and enrollment tables would read every active enrollment). A lead's
    address and domain are stored normalized (lower case, as the suppression list compares
    them), so they are matched exactly."""
    addresses = {normalize_address(s.address) for s in stops if s.address}
    enrollment_ids = {s.enrollment_id for s in stops if not s.address and s.enrollment_id}
    wheres = [Q(lead__email__in=addresses)] if addresses else []
    wheres += [Q(pk__in=enrollment_ids)] if enrollment_ids else []
    wheres += [
        Q(campaign_id=campaign_id, lead__email_domain=domain)
        for campaign_id, domain in {
            (s.campaign_id, normalize_address(s.company_domain))
            for s in stops
            if not s.address and s.enrollment_id is None
        }
    ]
    rows: dict[int, _EnrollmentRow] = {}
    for where in wheres:
        for values in Enrollment.objects.filter(where, state=Enrollment.State.ACTIVE).values_list(
            "pk", "lead__email", "lead__email_domain", "campaign_id"
        ):
            rows.setdefault(values[0], _EnrollmentRow(*values))
    return sorted(rows.values(), key=lambda row: row.pk)


def stop_enrollments(enrollments: object, reason: str) -> int:
    """Stop the active ones among ``enrollments`` and cancel their unsent messages."""
    active = Enrollment.objects.filter(
        pk__in=enrollments.values("pk"),  # type: ignore[attr-defined]
        state=Enrollment.State.ACTIVE,
    )
    return _stop({reason: list(active.values_list("pk", flat=True))})


def _stop(ids_by_reason: dict[str, list[int]]) -> int:
    """Stop the enrollments ``ids_by_reason`` names, still active, with their reason, and
    cancel their unsent messages; returns how many were named.

    ``scheduled`` messages hold no quota yet; a ``retry`` one's units were used by its
    provider call and stay used. Both changes are conditional on the state, so a worker
    taking a retry at the same moment and this stop cannot both win. A claimed or sending
    message is the engine's: the live-sequence and suppression checks at send time stop it.
    """
    now = clock.now()
    unsent = (Message.State.SCHEDULED, Message.State.RETRY)
    named = 0
    for reason, ids in ids_by_reason.items():
        if not ids:
            continue
        Enrollment.objects.filter(pk__in=ids, state=Enrollment.State.ACTIVE).update(
            state=Enrollment.State.STOPPED, stop_reason=reason, stopped_at=now, next_due_at=None
        )
        Message.objects.filter(enrollment_id__in=ids, state__in=unsent).update(
            state=Message.State.CANCELLED,
            last_error=f"enrollment stopped: {reason}",
            updated_at=now,
        )
        named += len(ids)
    return named
