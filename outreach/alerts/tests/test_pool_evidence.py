"""The pool pass reads every mailbox's evidence in a constant number of grouped queries, and
those grouped figures are the ones a mailbox judged alone gets."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from outreach.alerts import rules
from outreach.alerts.tests.conftest import NOON, Pool, record, send
from outreach.lib import clock
from outreach.metrics import rollups
from outreach.metrics.figures import Figures
from outreach.metrics.mailbox_evidence import (
    MAILBOX_FAILURES,
    NOT_ABOUT_THE_MAILBOX,
    OUT_OF_SERVICE,
    mailbox_evidence,
)
from outreach.pool.models import Domain, Mailbox, PoolSettings, StateChange
from outreach.pool.policy import SENDING_STATES, Thresholds
from outreach.pool.states import transition_mailbox
from outreach.sending.models import SendAttempt

pytestmark = pytest.mark.django_db


def _pass_queries() -> int:
    with CaptureQueriesContext(connection) as queries:
        rules.evaluate_pool()
    return len(queries)


def test_the_pool_pass_reads_as_many_queries_for_30_mailboxes_as_for_3(
    pool: Pool,
) -> None:
    domain = pool.mailboxes[0].domain
    Mailbox.objects.exclude(domain=domain).delete()
    boxes = list(Mailbox.objects.filter(domain=domain))
    boxes.append(Mailbox.objects.create(address="rep3@" + domain.name, domain=domain))
    for mailbox in boxes:
        send(mailbox, 2)
    assert Mailbox.objects.filter(state__in=SENDING_STATES).count() == 3
    three = _pass_queries()

    # 27 more, three to a domain: neither mailboxes nor domains add queries.
    for d in range(9):
        more = Domain.objects.create(name=f"more{d}.example.com", provider=domain.provider)
        for n in range(3):
            mailbox = Mailbox.objects.create(address=f"rep{n}@{more.name}", domain=more)
            send(mailbox, 2)
    assert Mailbox.objects.filter(state__in=SENDING_STATES).count() == 30

    assert _pass_queries() == three


# -- the per-mailbox reading the grouped one replaced, kept as the reference ------------------


def _back_in_service_at(mailbox: Mailbox) -> datetime | None:
    return (
        StateChange.objects.filter(
            mailbox=mailbox, from_state__in=OUT_OF_SERVICE, to_state__in=SENDING_STATES
        )
        .order_by("-at", "-id")
        .values_list("at", flat=True)
        .first()
    )


def _one_by_one(mailbox: Mailbox, t: Thresholds) -> tuple[Figures, datetime | None, int, bool]:
    tz = rollups.pool_timezone()
    first, last = rollups.window_days(t.window_days, clock.today(tz))
    since = _back_in_service_at(mailbox)
    if since is None or since <= rollups.day_bounds(first, tz)[0]:
        figures = rollups.window_figures(days=t.window_days, today=last, mailbox_id=mailbox.pk)
        since = None
    else:
        figures = rollups.figures_since(mailbox.pk, since)
    attempts = SendAttempt.objects.filter(mailbox=mailbox)
    if since is not None:
        attempts = attempts.filter(at__gt=since)
    outcomes = list(
        attempts.exclude(outcome__in=NOT_ABOUT_THE_MAILBOX)
        .order_by("-at", "-id")
        .values_list("outcome", flat=True)[: t.failure_streak_pause]
    )
    streak = 0
    for outcome in outcomes:
        if outcome not in MAILBOX_FAILURES:
            break
        streak += 1
    return figures, since, streak, bool(outcomes) and outcomes[0] == "auth_failed"


OUTCOMES = ["sent"] * 6 + ["transient", "permanent", "auth_failed", "hard_bounce", "blocked"]
EVENTS = [
    ("delivered", ""),
    ("bounced", "hard"),
    ("bounced", "soft"),
    ("complained", ""),
    ("opened", ""),
    ("replied", ""),
    ("blocked", ""),
]


def _random_history(rng: random.Random, boxes: list[Mailbox]) -> None:
    """Ten days of sends, failed calls, events and resumes, some before the window."""
    for day in range(10, -1, -1):
        for mailbox in boxes:
            clock.set_now(NOON - timedelta(days=day, hours=rng.randint(0, 10)))
            if rng.random() < 0.15:
                mailbox.refresh_from_db()
                if mailbox.state not in OUT_OF_SERVICE:
                    transition_mailbox(mailbox, "paused", reason="checking", actor="user:ops")
                transition_mailbox(mailbox, "active", reason="checked", actor="user:ops")
                clock.set_now(clock.now() + timedelta(minutes=1))
            for _ in range(rng.randint(0, 3)):
                [message] = send(mailbox, outcome=rng.choice(OUTCOMES))
                if rng.random() < 0.5:
                    kind, bounce = rng.choice(EVENTS)
                    record(message, kind, bounce_type=bounce)
    clock.set_now(NOON)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_grouped_evidence_equals_each_mailboxs_own_reading(pool: Pool, seed: int) -> None:
    domain = pool.mailboxes[0].domain
    boxes = pool.mailboxes + [
        Mailbox.objects.create(address=f"extra{n}@{domain.name}", domain=domain) for n in (1, 2)
    ]
    _random_history(random.Random(seed), boxes)
    thresholds = PoolSettings.load().thresholds

    grouped = mailbox_evidence(Mailbox.objects.all(), thresholds)

    resumed_inside = 0
    for mailbox in boxes:
        figures, since, streak, auth_failed = _one_by_one(mailbox, thresholds)
        found = grouped.get(mailbox.pk)
        got = (
            (found.figures, found.since, found.failure_streak, found.auth_failed)
            if found
            else (Figures(), None, 0, False)
        )
        assert got == (figures, since, streak, auth_failed), mailbox.address
        own = rules.evidence_of(mailbox, thresholds)
        assert (own.figures, own.since, own.failure_streak, own.auth_failed) == got
        resumed_inside += since is not None
    # The mix covers both readings: the rollup window and the raw rows after a resume.
    assert 0 < resumed_inside < len(boxes)
