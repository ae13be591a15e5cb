"""What the health rules judge a mailbox on, read for many mailboxes at once.

One owner for a mailbox's evidence: the rules' single-mailbox path (right after an event) and
the periodic pass over the pool both call :func:`mailbox_evidence`, the first with a queryset
of one mailbox. A constant number of grouped queries, whatever the pool size:

1. each mailbox's last return to service (``paused``/``cooldown`` → ``active``/``warming``);
2. rollup sums grouped by mailbox over the thresholds' window of pool days;
3. for the mailboxes that came back inside the window, the raw provider calls and events
   after that moment (a day's rollup cannot tell before from after; two queries, only when
   such a mailbox exists);
4. the last ``failure_streak_pause`` provider calls per mailbox (``ROW_NUMBER``), for the
   failure streak and whether the latest call was an authentication failure.

The decision itself stays pure (:func:`outreach.metrics.health.mailbox_verdict`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import F, Max, Q, QuerySet, Window
from django.db.models.functions import RowNumber

from outreach.events.models import Event
from outreach.lib import clock
from outreach.metrics import rollups
from outreach.metrics.figures import Figures
from outreach.pool.models import Mailbox, StateChange
from outreach.pool.policy import SENDING_STATES, Thresholds
from outreach.sending.models import SendAttempt

OUT_OF_SERVICE = (Mailbox.State.PAUSED, Mailbox.State.COOLDOWN)
# Outcomes that say something about the mailbox itself (a hard bounce or a block says
# something about one recipient or its provider, and is counted by the rollups instead).
MAILBOX_FAILURES = (
    SendAttempt.Outcome.TRANSIENT,
    SendAttempt.Outcome.PERMANENT,
    SendAttempt.Outcome.AUTH_FAILED,
)
NOT_ABOUT_THE_MAILBOX = (SendAttempt.Outcome.HARD_BOUNCE, SendAttempt.Outcome.BLOCKED)


@dataclass(frozen=True)
class Evidence:
    """A mailbox's figures over the window and its latest provider calls.

    ``since``: the return to service that cut the window short, if one did."""

    figures: Figures
    since: datetime | None = None
    failure_streak: int = 0
    auth_failed: bool = False


NONE = Evidence(Figures())


def mailbox_evidence(mailboxes: QuerySet[Mailbox], thresholds: Thresholds) -> dict[int, Evidence]:
    """Evidence per mailbox of ``mailboxes`` (a mailbox with none at all is left out: it is
    :data:`NONE`)."""
    # Their ids as a subquery: the SQL has the same size for one mailbox or the whole pool.
    # (``Any``: ``figures_by`` types its filters as plain ids.)
    ids: Any = mailboxes.values("pk")
    tz = rollups.pool_timezone()
    first, last = rollups.window_days(thresholds.window_days, clock.today(tz))
    window_start = rollups.day_bounds(first, tz)[0]
    back = back_in_service(ids)
    resumed = {m: at for m, at in back.items() if at > window_start}
    figures = {
        m: f
        for m, f in rollups.figures_by(
            "mailbox_id", first=first, last=last, mailbox_id__in=ids
        ).items()
        if m not in resumed
    }
    figures.update(figures_since(resumed))
    streaks = failure_states(ids, resumed, thresholds.failure_streak_pause, window_start)
    return {
        m: Evidence(
            figures.get(m, Figures()),
            resumed.get(m),
            *streaks.get(m, (0, False)),
        )
        for m in figures.keys() | streaks.keys() | resumed.keys()
    }


def back_in_service(ids: QuerySet[Mailbox, Any]) -> dict[int, datetime]:
    """When each mailbox last came back from ``paused`` or ``cooldown`` (those that ever did)."""
    rows = (
        StateChange.objects.filter(
            mailbox_id__in=ids, from_state__in=OUT_OF_SERVICE, to_state__in=SENDING_STATES
        )
        .values("mailbox_id")
        .annotate(at=Max("at"))
    )
    return {row["mailbox_id"]: row["at"] for row in rows}


def figures_since(since: dict[int, datetime]) -> dict[int, Figures]:
    """Each mailbox's figures from the raw tables for what happened after its own moment.

    The rows are those of the given mailboxes after the earliest of the moments (at most one
    window of days); each is counted for a mailbox only when it is newer than that mailbox's
    moment. An event counts for its own mailbox and its message's (once when they agree).
    """
    if not since:
        return {}
    earliest = min(since.values())
    ids = list(since)
    totals: dict[int, Counter[str]] = defaultdict(Counter)
    attempts = SendAttempt.objects.filter(mailbox_id__in=ids, at__gt=earliest).values_list(
        "mailbox_id", "outcome", "at"
    )
    for mailbox_id, outcome, at in attempts:
        if at > since[mailbox_id]:
            totals[mailbox_id].update(rollups.ATTEMPT_COUNTERS.get(outcome, {}))
    events = (
        Event.objects.filter(Q(mailbox_id__in=ids) | Q(message__mailbox_id__in=ids))
        .filter(occurred_at__gt=earliest)
        .values_list("mailbox_id", "message__mailbox_id", "type", "bounce_type", "occurred_at")
    )
    for own, of_message, kind, bounce_type, at in events:
        counter = rollups.event_counter(kind, bounce_type)
        if counter is None:
            continue
        for mailbox_id in {own, of_message}:
            if mailbox_id in since and at > since[mailbox_id]:
                totals[mailbox_id][counter] += 1
    return {m: Figures.from_mapping(dict(totals.get(m, {}))) for m in since}


def failure_states(
    ids: QuerySet[Mailbox, Any], since: dict[int, datetime], depth: int, window_start: datetime
) -> dict[int, tuple[int, bool]]:
    """Per mailbox: (failed calls in a row, whether the latest call was an authentication
    failure), over its last ``depth`` calls newer than its moment in ``since`` (if any) and
    inside the thresholds' window: ranking every call ever recorded would read the whole
    table on each pass, and a streak is the latest calls of a mailbox that is sending.

    The last ``depth`` calls of every mailbox come in one query; those at or before the
    mailbox's moment are dropped after: newer calls come first, so what remains is exactly
    the mailbox's last calls after that moment, up to ``depth``."""
    rows = (
        SendAttempt.objects.filter(mailbox_id__in=ids, at__gte=window_start)
        .exclude(outcome__in=NOT_ABOUT_THE_MAILBOX)
        .annotate(
            rank=Window(
                RowNumber(),
                partition_by=[F("mailbox_id")],
                order_by=[F("at").desc(), F("id").desc()],
            )
        )
        .filter(rank__lte=depth)
        .order_by("mailbox_id", "rank")
        .values_list("mailbox_id", "outcome", "at")
    )
    outcomes: dict[int, list[str]] = defaultdict(list)
    for mailbox_id, outcome, at in rows:
        moment = since.get(mailbox_id)
        if moment is None or at > moment:
            outcomes[mailbox_id].append(outcome)
    states = {}
    for mailbox_id, latest in outcomes.items():
        streak = 0
        for outcome in latest:
            if outcome not in MAILBOX_FAILURES:
                break
            streak += 1
        states[mailbox_id] = (streak, latest[0] == SendAttempt.Outcome.AUTH_FAILED)
    return states
