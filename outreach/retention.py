"""Retention: how long the bulky per-message columns are kept (docs/configuration.md).

At the mission's volume the providers' raw payloads and the inbox's bodies are most of what
the database gains each day (docs/scaling.md "Database size"). Each :class:`Rule` below
blanks such columns once a row is older than its setting; the row itself stays, with
everything that rules, caps, suppression, threading, deduplication, reconciliation and
``rollups.rebuild`` read:

- ``Event.raw`` → ``{}`` after ``OUTREACH_RETAIN_RAW_DAYS``. An open or click seen as a person
  keeps ``{"visitor": "human"}``: ``rollups.rebuild`` counts people from it. Type, bounce type,
  diagnostic, recipient, message and ``provider_event_id`` (the dedup key a provider's retry
  is matched on) stay.
- ``SendAttempt.response`` → ``""`` after the same days; outcome, code and time stay (the
  rollups' sent/refused/failed counts are rebuilt from them).
- ``WebhookDelivery.payload`` of a *delivered* outgoing webhook → ``{}``; its ``msg_id`` (the
  outbox's dedup key) stays; a pending or dead one keeps its payload for its retries.
- ``InboundMail`` text, HTML, visible text, signature, quoted history and headers → blank
  after ``OUTREACH_RETAIN_BODY_DAYS``; its Message-ID, In-Reply-To, References, sender,
  subject and label stay (threading, the inbox list, the lead's history).
- ``Answer.text`` (the operator's answer from the inbox) → ``""`` after the same days.

Whole rows go in one case: a recipient domain's cap counter of a day older than
:data:`COUNTER_DAYS` (claiming creates one per recipient domain and day; only the day's is
ever read).

Never touched: messages (their Message-ID threads future replies; one per enrollment and
step), suppressions, rollups, the other cap counters, the audit log, leads and enrollments. Dead
letters have their own retention (``DeadLetter.prune``, ``OUTREACH_DEAD_LETTER_DAYS``), run
here too so ``outreach prune`` reports them.

A rule walks its table in id order from its :class:`~outreach.models.RetentionMark`, in
batches of :data:`BATCH_ROWS` rows, each one short UPDATE in its own transaction, so SQLite's
write lock is never held for long, and stops at the first row still young. Ids rise with the
rule's insert-time column, so the walk never skips an old row for long and never reads the
pruned past again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q

from outreach.events.models import Answer, DeadLetter, Event, InboundMail, WebhookDelivery
from outreach.lib import clock
from outreach.models import RetentionMark
from outreach.pool.models import StateChange
from outreach.scheduler.models import DailyCounter
from outreach.sending.models import SendAttempt

log = logging.getLogger(__name__)

# Rows one batch looks at: one UPDATE over an id range of at most this many rows, a few
# milliseconds of write lock on SQLite.
BATCH_ROWS = 1000
# The background prune runs once a day; a run that hit RUN_SECONDS (a first run over years of
# history) is due again at the next health pass, so catching up never holds the alerts loop
# for long.
EVERY = timedelta(days=1)
RUN_SECONDS = 10.0
ACTOR = "system:retention"
# A recipient domain's cap counts the units of one pool day, and claiming creates a counter
# for every recipient domain of the day (about one per message in B2B mail): a past day's is
# never read again. A week is kept to look at; the other scopes' counters (a few dozen a day,
# read by warm-up graduation) stay.
COUNTER_DAYS = 7

_HUMAN = {"visitor": "human"}
_HUMAN_COUNTED = [Event.Type.OPENED, Event.Type.CLICKED]


@dataclass(frozen=True)
class Blank:
    """Set ``values`` on the rows of a batch that match ``where`` (rows already blank do not
    match, so counts tell what was removed)."""

    where: Q
    values: dict[str, Any]


@dataclass(frozen=True)
class Rule:
    name: str  # "table.column(s)", as printed by `outreach prune`
    model: type[models.Model]
    # The row's insert time: rises with its id.
    age_field: str
    days: Callable[[], int]  # 0: keep for ever
    blanks: tuple[Blank, ...]

    def limit(self, now: datetime) -> datetime | None:
        days = self.days()
        return now - timedelta(days=days) if days > 0 else None


def _raw_days() -> int:
    return int(settings.OUTREACH_RETAIN_RAW_DAYS)


def _body_days() -> int:
    return int(settings.OUTREACH_RETAIN_BODY_DAYS)


_BODY_BLANK = {
    "text_body": "",
    "html_body": "",
    "visible_text": "",
    "signature": "",
    "quoted_text": "",
    "headers": [],
}

RULES: tuple[Rule, ...] = (
    Rule(
        "events.raw",
        Event,
        "received_at",
        _raw_days,
        (
            # A person's open or click: keep what rollups.rebuild counts it by. Then every
            # other payload, the stub excepted (compared whole: a payload without the
            # "visitor" key makes a key lookup NULL, and NOT NULL matches nothing).
            Blank(
                Q(type__in=_HUMAN_COUNTED, raw__visitor="human") & ~Q(raw=_HUMAN),
                {"raw": _HUMAN},
            ),
            Blank(~Q(raw={}) & ~Q(raw=_HUMAN), {"raw": {}}),
        ),
    ),
    Rule(
        "send_attempts.response",
        SendAttempt,
        "at",
        _raw_days,
        (Blank(~Q(response=""), {"response": ""}),),
    ),
    Rule(
        "webhook_deliveries.payload",
        WebhookDelivery,
        "created_at",
        _raw_days,
        (
            Blank(
                Q(state=WebhookDelivery.State.DELIVERED) & ~Q(payload={}),
                {"payload": {}},
            ),
        ),
    ),
    Rule(
        "inbound_mails.bodies",
        InboundMail,
        "received_at",
        _body_days,
        (
            Blank(
                ~Q(text_body="", html_body="", visible_text="", signature="", quoted_text="")
                | ~Q(headers=[]),
                _BODY_BLANK,
            ),
        ),
    ),
    Rule("answers.text", Answer, "at", _body_days, (Blank(~Q(text=""), {"text": ""}),)),
)


@dataclass
class Report:
    """What one prune removed (or, dry, would remove): rows per rule."""

    counts: dict[str, int] = field(default_factory=dict)
    # Rules that stopped on their batch or time budget with old rows left.
    unfinished: set[str] = field(default_factory=set)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _mark(rule: Rule) -> int:
    found = RetentionMark.objects.filter(name=rule.name).values_list("last_id", flat=True)
    return next(iter(found), 0)


def _advance(rule: Rule, last_id: int, now: datetime) -> None:
    updated = RetentionMark.objects.filter(name=rule.name, last_id__lt=last_id).update(
        last_id=last_id, updated_at=now
    )
    if not updated:
        RetentionMark.objects.get_or_create(
            name=rule.name, defaults={"last_id": last_id, "updated_at": now}
        )


def prune_batch(rule: Rule, limit: datetime, now: datetime) -> tuple[int, bool]:
    """Blank the old rows among the next :data:`BATCH_ROWS` after the rule's mark.

    Returns (rows blanked, more old rows may follow). The walk stops at the first row whose
    insert time is not older than ``limit``: everything before it is old and done.
    """
    mark = _mark(rule)
    rows = list(
        rule.model.objects.filter(pk__gt=mark)  # type: ignore[attr-defined]
        .order_by("pk")
        .values_list("pk", rule.age_field)[:BATCH_ROWS]
    )
    last = mark
    for pk, at in rows:
        if at >= limit:
            break
        last = pk
    if last == mark:
        return 0, False
    blanked = 0
    with transaction.atomic():
        in_batch = rule.model.objects.filter(pk__gt=mark, pk__lte=last)  # type: ignore[attr-defined]
        for blank in rule.blanks:
            blanked += in_batch.filter(blank.where).update(**blank.values)
        _advance(rule, last, now)
    more = len(rows) == BATCH_ROWS and rows[-1][0] == last
    return blanked, more


def would_prune(rule: Rule, limit: datetime) -> int:
    """How many rows a prune would blank now (``--dry-run``)."""
    old = rule.model.objects.filter(  # type: ignore[attr-defined]
        pk__gt=_mark(rule), **{f"{rule.age_field}__lt": limit}
    )
    where = Q()
    for i, blank in enumerate(rule.blanks):
        where = blank.where if i == 0 else where | blank.where
    return int(old.filter(where).count())


def prune(
    now: datetime | None = None,
    *,
    dry_run: bool = False,
    max_batches: int | None = None,
    seconds: float | None = None,
) -> Report:
    """Apply every rule (and the dead letters' retention) once; audit what went.

    ``max_batches`` bounds the batches per rule, ``seconds`` the whole run; a rule cut short
    is listed in ``unfinished``. One audit-log entry sums a run that removed anything.
    """
    now = now or clock.now()
    started = time.monotonic()

    def stop_here(batches: int) -> bool:
        return (max_batches is not None and batches >= max_batches) or (
            seconds is not None and time.monotonic() - started >= seconds
        )

    report = Report()
    for rule in RULES:
        limit = rule.limit(now)
        if limit is None:
            continue
        if dry_run:
            report.counts[rule.name] = would_prune(rule, limit)
            continue
        removed, batches, more = 0, 0, True
        while more:
            if stop_here(batches):
                report.unfinished.add(rule.name)
                break
            blanked, more = prune_batch(rule, limit, now)
            removed += blanked
            batches += 1
        report.counts[rule.name] = removed
    counters, done = _prune_counters(now, dry_run=dry_run, stop_here=stop_here)
    report.counts[COUNTERS] = counters
    if not done:
        report.unfinished.add(COUNTERS)
    letters_limit = now - timedelta(days=settings.OUTREACH_DEAD_LETTER_DAYS)
    if dry_run:
        report.counts["dead_letters"] = DeadLetter.objects.filter(
            received_at__lt=letters_limit
        ).count()
    else:
        report.counts["dead_letters"] = DeadLetter.prune(now)
        if report.total:
            _audit(report, now)
    return report


COUNTERS = "daily_counters.recipient_domain"


def _prune_counters(
    now: datetime, *, dry_run: bool, stop_here: Callable[[int], bool]
) -> tuple[int, bool]:
    """Delete recipient-domain counters of days older than :data:`COUNTER_DAYS`, a batch of
    :data:`BATCH_ROWS` at a time (found through the counters' (day, scope) index); returns
    (rows deleted, all done)."""
    old = DailyCounter.objects.filter(
        scope=DailyCounter.Scope.RECIPIENT_DOMAIN,
        day__lt=(now - timedelta(days=COUNTER_DAYS)).date(),
    )
    if dry_run:
        return int(old.count()), True
    deleted, batches = 0, 0
    while not stop_here(batches):
        ids = list(old.order_by("pk").values_list("pk", flat=True)[:BATCH_ROWS])
        if not ids:
            return deleted, True
        deleted += DailyCounter.objects.filter(pk__in=ids).delete()[0]
        batches += 1
    return deleted, False


def _audit(report: Report, now: datetime) -> None:
    removed = ", ".join(f"{n} {name}" for name, n in report.counts.items() if n)
    StateChange.objects.create(
        from_state="",
        to_state="pruned",
        reason=f"retention: removed {removed}"[:500],
        figures={
            **{name: n for name, n in report.counts.items() if n},
            "raw_days": _raw_days(),
            "body_days": _body_days(),
            "dead_letter_days": settings.OUTREACH_DEAD_LETTER_DAYS,
        },
        actor=ACTOR,
        at=now,
    )


class _Due:
    """When this process's background prune is due (monotonic seconds)."""

    next_at = float("-inf")


def prune_if_due() -> Report | None:
    """The periodic pass's step: a time-bounded prune once a day, sooner while catching up."""
    if time.monotonic() < _Due.next_at:
        return None
    report = prune(seconds=RUN_SECONDS)
    _Due.next_at = time.monotonic() + (0 if report.unfinished else EVERY.total_seconds())
    if report.total:
        log.info("retention: %s", report.counts)
    return report
