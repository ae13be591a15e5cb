"""Claiming: one unit of every cap per message, atomically; leases recovered, never resent."""

from __future__ import annotations

import itertools
import random
from datetime import timedelta

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase as HypothesisTestCase

from outreach.campaigns.models import Campaign, Message
from outreach.pool.models import Domain, Mailbox, PoolSettings
from outreach.pool.policy import SENDING_STATES
from outreach.scheduler import routing_pass
from outreach.scheduler.claim import IMPLEMENTATIONS, ClaimOutcome, Proposal
from outreach.scheduler.counters import Reservation, ensure_counters
from outreach.scheduler.models import DailyCounter
from outreach.scheduler.recovery import recover_leases
from outreach.scheduler.routing_pass import BATCH, claim_due
from outreach.scheduler.tests.conftest import NOON, deliver_claimed, schedule, used
from outreach.testing import make_campaign, make_pool

pytestmark = pytest.mark.django_db
DAY = NOON.date()
NO_PACING = {"pacing_gap_seconds": 0, "pacing_jitter_seconds": 0}


def claimed() -> int:
    return Message.objects.filter(state=Message.State.CLAIMED).count()


def test_it_reaches_the_seed_arithmetic_30_mailboxes_x_40_and_never_more() -> None:
    boxes = make_pool(10, 3, limits=NO_PACING)
    campaign = make_campaign()
    schedule(campaign, 1300)
    first = claim_due(NOON, rng=random.Random(1))
    second = claim_due(NOON + timedelta(hours=1))
    assert first.claimed == 1200 and second.claimed == 0
    assert all(n == 40 for n in first.by_mailbox.values()) and len(first.by_mailbox) == 30
    assert used("global", "*", DAY) == 1200
    assert all(used("mailbox", str(b.pk), DAY) == 40 for b in boxes)
    assert Message.objects.filter(state=Message.State.SCHEDULED).count() == 100


def test_it_lets_the_domain_cap_bind_when_lower() -> None:
    make_pool(10, 3, limits={**NO_PACING, "domain_daily_cap": 100})
    campaign = make_campaign()
    schedule(campaign, 1300)
    assert claim_due(NOON).claimed == 1000
    for domain in Domain.objects.all():
        assert used("domain", str(domain.pk), DAY) == 100


def test_it_lets_the_global_cap_bind_when_lower() -> None:
    make_pool(10, 3, limits={**NO_PACING, "global_daily_cap": 900})
    campaign = make_campaign()
    schedule(campaign, 1300)
    assert claim_due(NOON).claimed == 900
    assert used("global", "*", DAY) == 900


def test_it_applies_the_campaign_and_recipient_domain_caps() -> None:
    make_pool(2, 3, limits={**NO_PACING, "recipient_domain_daily_cap": 3})
    small = make_campaign("small", daily_cap=5)
    big = make_campaign("big")
    schedule(small, 20, domains=20)
    schedule(big, 40, domains=4, start=100, prefix="big")
    claim_due(NOON)
    assert Message.objects.filter(campaign=small, state=Message.State.CLAIMED).count() == 5
    assert Message.objects.filter(campaign=big, state=Message.State.CLAIMED).count() == 12
    per_domain = DailyCounter.objects.filter(scope="recipient_domain", day=DAY)
    assert max(c.used for c in per_domain) == 3


def test_it_starts_a_new_day_with_fresh_counters_in_the_pool_time_zone() -> None:
    make_pool(1, 1, limits=NO_PACING, timezone="America/New_York")
    campaign = make_campaign()
    schedule(campaign, 100)
    # 03:30 UTC on the 5th is still the 4th in New York.
    late = NOON.replace(day=5, hour=3, minute=30)
    assert claim_due(NOON).claimed == 40
    deliver_claimed(NOON)
    assert claim_due(late).claimed == 0
    assert claim_due(late + timedelta(hours=2)).claimed == 40


def test_it_keeps_the_pacing_gap_between_two_claims_of_a_mailbox() -> None:
    make_pool(1, 1, limits={"pacing_gap_seconds": 120, "pacing_jitter_seconds": 60})
    campaign = make_campaign()
    schedule(campaign, 10)
    claims = []
    now = NOON
    for _ in range(60):  # every 30 s for half an hour
        if claim_due(now).claimed:
            claims.append(now)
        now += timedelta(seconds=30)
    gaps = [b - a for a, b in itertools.pairwise(claims)]
    assert len(claims) >= 9
    assert all(timedelta(seconds=120) <= g <= timedelta(seconds=210) for g in gaps)


def test_it_only_routes_to_allowed_mailboxes_and_skips_warming_ones_unless_allowed() -> None:
    boxes = make_pool(2, 2, limits=NO_PACING)
    warming = boxes[3]
    warming.state = Mailbox.State.WARMING
    warming.warmup_started_on = DAY
    warming.save()
    only_first = make_campaign("only-first")
    only_first.allowed_mailboxes.set([boxes[0]])
    schedule(only_first, 50)
    anywhere = make_campaign("anywhere")
    schedule(anywhere, 200, start=100)
    claim_due(NOON)
    restricted = Message.objects.filter(campaign=only_first, state=Message.State.CLAIMED)
    assert {m.mailbox_id for m in restricted} == {boxes[0].pk}
    assert not Message.objects.filter(mailbox=warming).exists()
    targeted = make_campaign("targeted", allow_warming_mailboxes=True)
    schedule(targeted, 20, start=500)
    claim_due(NOON)
    # Within its warm-up cap: day 1 is 5 sends.
    assert Message.objects.filter(mailbox=warming).count() == 5


def test_it_does_not_use_a_domain_in_cooldown_or_a_paused_mailbox() -> None:
    boxes = make_pool(2, 1, limits=NO_PACING)
    Domain.objects.filter(pk=boxes[0].domain_id).update(state=Domain.State.COOLDOWN)
    Mailbox.objects.filter(pk=boxes[1].pk).update(state=Mailbox.State.PAUSED)
    schedule(make_campaign(), 10)
    assert claim_due(NOON).claimed == 0


def test_it_sets_everything_the_sending_worker_needs_on_a_claim() -> None:
    boxes = make_pool(1, 1)
    schedule(make_campaign(), 1)
    claim_due(NOON, worker="host:1")
    message = Message.objects.get()
    assert message.state == Message.State.CLAIMED
    assert message.mailbox_id == boxes[0].pk
    assert message.provider_account_id == boxes[0].provider_account.pk
    assert message.claimed_by == "host:1"
    assert message.quota_day == DAY
    assert message.lease_expires_at == NOON + timedelta(seconds=600)
    boxes[0].refresh_from_db()
    assert boxes[0].next_send_at is not None
    assert NOON + timedelta(seconds=120) <= boxes[0].next_send_at <= NOON + timedelta(seconds=180)


def test_it_defers_a_message_whose_window_is_closed_in_the_recipients_zone() -> None:
    make_pool(1, 1)
    campaign = make_campaign(window_days=[1, 2, 3, 4, 5], window_start="09:00", window_end="17:00")
    message = schedule(campaign, 1)[0]
    Campaign.objects.filter(pk=campaign.pk).update(timezone="Asia/Tokyo")  # 21:00 there
    report = claim_due(NOON)
    message.refresh_from_db()
    assert report.claimed == 0 and report.deferred == 1
    assert message.state == Message.State.SCHEDULED
    assert message.not_before == NOON.replace(day=5, hour=0)  # 09:00 in Tokyo


def test_it_defers_the_messages_waiting_for_one_opening_in_one_statement() -> None:
    """Leads in Tokyo (21:00) and Sydney (23:00) wait for two openings; Berlin's (13:00) is
    open: five messages deferred with one UPDATE per opening, Berlin's claimed."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from outreach.testing import enroll, make_leads

    make_pool(1, 1, limits=NO_PACING)
    campaign = make_campaign(window_days=[1, 2, 3, 4, 5], window_start="09:00", window_end="17:00")
    zones = ["Asia/Tokyo"] * 3 + ["Australia/Sydney"] * 2 + ["Europe/Berlin"]
    for i, zone in enumerate(zones):
        (enrollment,) = enroll(campaign, make_leads(1, domain=f"c{i}.example", timezone=zone))
        schedule(campaign, 1, start=i, enrollment=enrollment)
    with CaptureQueriesContext(connection) as queries:
        report = claim_due(NOON)
    deferrals = [q for q in queries if q["sql"].startswith("UPDATE") and "not_before" in q["sql"]]
    assert (report.claimed, report.deferred, len(deferrals)) == (1, 5, 2)
    waiting = Message.objects.filter(state=Message.State.SCHEDULED)
    assert sorted(waiting.values_list("enrollment__lead__timezone", "not_before")) == [
        ("Asia/Tokyo", NOON.replace(day=5, hour=0)),  # 09:00 Thursday in Tokyo
        ("Asia/Tokyo", NOON.replace(day=5, hour=0)),
        ("Asia/Tokyo", NOON.replace(day=5, hour=0)),
        ("Australia/Sydney", NOON.replace(hour=22)),  # 09:00 Thursday in Sydney (AEDT)
        ("Australia/Sydney", NOON.replace(hour=22)),
    ]


def test_it_moves_a_backlog_outside_its_window_without_reading_it_row_by_row() -> None:
    """450 due messages in a closed window (21:00 in Tokyo), more than two reads' worth:
    the first read finds the group closed and one UPDATE moves all 450 to the opening; the
    next read (two seeks: the rest of the first read's instant, then later ones) finds
    nothing left due."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    make_pool(1, 1)
    campaign = make_campaign(window_days=[1, 2, 3, 4, 5], window_start="09:00", window_end="17:00")
    Campaign.objects.filter(pk=campaign.pk).update(timezone="Asia/Tokyo")
    schedule(campaign, 450)
    with CaptureQueriesContext(connection) as queries:
        report = claim_due(NOON)
    reads = [
        q["sql"]
        for q in queries
        if q["sql"].startswith("SELECT")
        and f"LIMIT {BATCH}" in q["sql"]
        and '"pinned_mailbox_id" IS NULL' in q["sql"]
    ]
    deferrals = [q for q in queries if q["sql"].startswith("UPDATE") and "not_before" in q["sql"]]
    assert (report.claimed, report.deferred, len(deferrals)) == (0, 450, 1)
    assert len(reads) == 3
    assert set(Message.objects.values_list("state", "not_before")) == {
        (Message.State.SCHEDULED, NOON.replace(day=5, hour=0))
    }


def test_a_pass_reads_a_backlog_batch_after_batch_each_row_once_in_order() -> None:
    # 450 due messages at three instants (ties of 150): batches of 200 cross the ties, and
    # each read after the first seeks to its place (no OR, which no index seeks to).
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    make_pool(1, 1)
    campaign = make_campaign()
    for k in range(3):
        schedule(campaign, 150, start=150 * k, now=NOON - timedelta(minutes=3 - k))
    expected = list(Message.objects.order_by("not_before", "pk").values_list("not_before", "pk"))
    pass_ = routing_pass._Pass(NOON, "reader", random.Random(1), None)
    query = pass_._due().filter(campaign_id=campaign.pk, pinned_mailbox__isnull=True)
    seen: list[tuple[object, int]] = []
    after = None
    with CaptureQueriesContext(connection) as queries:
        while True:
            rows = pass_._rows(query, after)
            seen += [(r["not_before"], r["pk"]) for r in rows]
            if len(rows) < BATCH:
                break
            after = (rows[-1]["not_before"], rows[-1]["pk"])
    assert seen == expected
    reads = [q["sql"] for q in queries if q["sql"].startswith("SELECT") and "LIMIT" in q["sql"]]
    # The one OR left is the enrollment's (no enrollment, or an active one).
    assert [sql.count(" OR ") for sql in reads] == [1] * len(reads)


def test_it_puts_an_expired_claim_back_and_releases_its_units() -> None:
    boxes = make_pool(1, 1)
    schedule(make_campaign(), 1)
    claim_due(NOON)
    assert used("mailbox", str(boxes[0].pk), DAY) == 1
    assert recover_leases(NOON + timedelta(seconds=599)).released == 0
    report = recover_leases(NOON + timedelta(seconds=601))
    message = Message.objects.get()
    assert report.released == 1
    assert message.state == Message.State.SCHEDULED and message.mailbox_id is None
    assert used("mailbox", str(boxes[0].pk), DAY) == 0
    assert used("global", "*", DAY) == 0
    assert used("campaign", str(message.campaign_id), DAY) == 0


def test_it_marks_an_expired_sending_lease_unknown_and_never_resends_it() -> None:
    boxes = make_pool(1, 1)
    schedule(make_campaign(), 1)
    claim_due(NOON)
    # The worker's provider call began, and hangs.
    Message.objects.update(state=Message.State.SENDING, call_started_at=NOON)
    later = NOON + timedelta(hours=1)
    assert recover_leases(later).unknown == 1
    assert claim_due(later).claimed == 0
    assert Message.objects.get().state == Message.State.UNKNOWN
    assert used("mailbox", str(boxes[0].pk), DAY) == 1  # never released after a provider call


def test_it_reroutes_a_retry_stranded_on_a_mailbox_that_cannot_send() -> None:
    boxes = make_pool(1, 2, limits=NO_PACING)
    schedule(make_campaign(), 2)
    claim_due(NOON)
    retry_at = NOON + timedelta(minutes=5)
    # Both first messages met a 451; then one of the two mailboxes was paused.
    Message.objects.update(state=Message.State.RETRY, attempts=1, not_before=retry_at)
    for i, pk in enumerate(Message.objects.values_list("pk", flat=True)):
        Message.objects.filter(pk=pk).update(message_id_header=f"<first-{i}@send1.example.com>")
    paused, working = boxes
    Mailbox.objects.filter(pk=paused.pk).update(state=Mailbox.State.PAUSED)
    units_before = used("mailbox", str(paused.pk), DAY)

    report = recover_leases(NOON + timedelta(minutes=1))

    assert report.stranded == 1
    stranded = Message.objects.get(state=Message.State.SCHEDULED)
    assert stranded.mailbox_id is None and stranded.quota_day is None
    assert stranded.attempts == 1 and stranded.not_before == retry_at  # backoff kept
    assert stranded.message_id_header is None  # a new one on the domain it will leave from
    assert Message.objects.get(state=Message.State.RETRY).mailbox_id == working.pk
    assert used("mailbox", str(paused.pk), DAY) == units_before  # a provider was called
    # Routed again, to the mailbox that can send, once its retry time comes.
    assert claim_due(retry_at).claimed == 1
    assert Message.objects.get(pk=stranded.pk).mailbox_id == working.pk


def test_a_stranded_follow_up_waits_for_its_thread_mailbox_then_is_cancelled() -> None:
    from outreach.scheduler.recovery import cancel_expired

    (box,) = make_pool(1, 1, limits=NO_PACING)
    schedule(make_campaign(), 1)
    claim_due(NOON)
    Message.objects.update(
        state=Message.State.RETRY,
        pinned_mailbox=box,
        expires_at=NOON + timedelta(days=3),
        not_before=NOON + timedelta(minutes=5),
        message_id_header="<thread-2@send1.example.com>",
    )
    Domain.objects.update(state=Domain.State.COOLDOWN)  # the whole domain stops

    assert recover_leases(NOON + timedelta(minutes=1)).stranded == 1
    follow_up = Message.objects.get()
    assert follow_up.state == Message.State.SCHEDULED and follow_up.pinned_mailbox_id == box.pk
    assert follow_up.message_id_header == "<thread-2@send1.example.com>"  # same mailbox
    assert claim_due(NOON + timedelta(hours=1)).claimed == 0  # never moved to another mailbox
    assert cancel_expired(NOON + timedelta(days=3, seconds=1)) == 1
    assert Message.objects.get().state == Message.State.CANCELLED


def test_it_never_claims_a_message_twice_when_two_routers_race() -> None:
    make_pool(3, 3, limits=NO_PACING)
    schedule(make_campaign(), 200)
    # Two passes built from the same snapshot moment: the second one's view is stale.
    a = claim_due(NOON, worker="a")
    b = claim_due(NOON, worker="b")
    assert a.claimed + b.claimed == 200
    assert claimed() == 200
    assert sum(c.used for c in DailyCounter.objects.filter(scope="mailbox")) == 200


class TestInvariants(HypothesisTestCase):
    """Random pools, caps, loads and clocks: no cap is ever exceeded, nothing claimed twice."""

    @given(
        domains=st.integers(1, 4),
        per_domain=st.integers(1, 3),
        mailbox_cap=st.integers(1, 15),
        domain_cap=st.integers(1, 40),
        global_cap=st.integers(1, 80),
        campaign_cap=st.none() | st.integers(1, 30),
        recipient_cap=st.none() | st.integers(1, 10),
        load=st.integers(0, 120),
        warming=st.integers(0, 2),
        clocks=st.lists(st.integers(0, 36 * 60), min_size=1, max_size=6),
        expire=st.booleans(),
    )
    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    def test_it_never_exceeds_a_cap_nor_claims_twice(
        self,
        domains: int,
        per_domain: int,
        mailbox_cap: int,
        domain_cap: int,
        global_cap: int,
        campaign_cap: int | None,
        recipient_cap: int | None,
        load: int,
        warming: int,
        clocks: list[int],
        expire: bool,
    ) -> None:
        limits = {
            "mailbox_daily_cap": mailbox_cap,
            "domain_daily_cap": domain_cap,
            "global_daily_cap": global_cap,
            "recipient_domain_daily_cap": recipient_cap,
            "pacing_gap_seconds": 30,
            "pacing_jitter_seconds": 30,
        }
        boxes = make_pool(domains, per_domain, limits=limits)
        for box in boxes[:warming]:
            Mailbox.objects.filter(pk=box.pk).update(
                state=Mailbox.State.WARMING, warmup_started_on=DAY - timedelta(days=3)
            )
        campaign = make_campaign(daily_cap=campaign_cap, allow_warming_mailboxes=True)
        schedule(campaign, load, domains=7)
        pool = PoolSettings.load()
        for minute in sorted(clocks):
            now = NOON + timedelta(minutes=minute)
            claim_due(now, rng=random.Random(minute))
            if expire:
                recover_leases(now + timedelta(minutes=11))
            else:
                deliver_claimed(now)
        # Every message is in exactly one state; a message holds a unit only while claimed
        # or once handed over (sent).
        held = Message.objects.filter(state__in=[Message.State.CLAIMED, Message.State.SENT])
        assert Message.objects.count() == load
        for counter in DailyCounter.objects.all():
            day_held = held.filter(quota_day=counter.day)
            if counter.scope == "global":
                assert counter.used == day_held.count() <= global_cap
            elif counter.scope == "domain":
                n = day_held.filter(mailbox__domain_id=int(counter.key)).count()
                assert counter.used == n <= domain_cap
            elif counter.scope == "mailbox":
                box = Mailbox.objects.get(pk=int(counter.key))
                n = day_held.filter(mailbox=box).count()
                assert counter.used == n <= box.cap_today(pool, counter.day)
            elif counter.scope == "campaign":
                n = day_held.count()
                assert counter.used == n
                assert campaign_cap is None or n <= campaign_cap
            elif counter.scope == "recipient_domain":
                n = day_held.filter(to_domain=counter.key).count()
                assert counter.used == n
                assert recipient_cap is None or n <= recipient_cap


def test_it_never_claims_a_message_whose_enrollment_stopped_meanwhile() -> None:
    from outreach.campaigns.models import Enrollment
    from outreach.testing import enroll, make_leads

    make_pool(1, 1, limits=NO_PACING)
    campaign = make_campaign()
    live, replied = enroll(campaign, make_leads(2))
    for i, enrollment in enumerate((live, replied)):
        schedule(campaign, 1, start=i, enrollment=enrollment)
    Enrollment.objects.filter(pk=replied.pk).update(state=Enrollment.State.STOPPED)
    assert claim_due(NOON).claimed == 1
    assert Message.objects.get(state=Message.State.CLAIMED).enrollment_id == live.pk
    assert Message.objects.get(enrollment=replied).state == Message.State.SCHEDULED


def test_it_reads_pinned_messages_mailbox_by_mailbox_past_a_batch() -> None:
    # 300 follow-ups pinned to the first mailbox fill more than one read (BATCH = 200): the
    # second mailbox's are only reached when the read continues after the first's.
    first, second = make_pool(1, 2, limits=NO_PACING)
    campaign = make_campaign()
    schedule(campaign, 300, pinned_mailbox=first)
    schedule(campaign, 30, start=300, pinned_mailbox=second)
    report = claim_due(NOON)
    assert report.by_mailbox == {first.pk: 40, second.pk: 30}
    assert (
        not Message.objects.filter(state=Message.State.CLAIMED, pinned_mailbox=first)
        .exclude(mailbox=first)
        .exists()
    )


def test_a_paced_mailbox_is_read_its_oldest_follow_up_not_its_backlog(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Paced, each mailbox takes one message a pass: its oldest due follow-up that can go.
    # The first mailbox's three oldest belong to a campaign whose cap is used up today, so
    # the pass reads on, row by row, to its fourth.
    first, second = make_pool(1, 2)
    full = make_campaign("full", daily_cap=1)
    ensure_counters(DAY, [("campaign", str(full.pk))])
    DailyCounter.objects.filter(scope="campaign", key=str(full.pk)).update(used=1)
    campaign = make_campaign()
    schedule(full, 3, now=NOON - timedelta(hours=2), pinned_mailbox=first, prefix="full")
    oldest = schedule(campaign, 300, now=NOON - timedelta(hours=1), pinned_mailbox=first)[0]
    mine = schedule(campaign, 300, start=300, pinned_mailbox=second)
    read: list[int] = []
    rows = routing_pass._Pass._rows

    def counted(self: routing_pass._Pass, *args: object, **kwargs: object) -> object:
        found = rows(self, *args, **kwargs)  # type: ignore[arg-type]
        read.append(len(found))
        return found

    monkeypatch.setattr(routing_pass._Pass, "_rows", counted)
    report = claim_due(NOON)
    assert report.by_mailbox == {first.pk: 1, second.pk: 1}
    taken = Message.objects.filter(state=Message.State.CLAIMED)
    assert {m.pk for m in taken} == {oldest.pk, mine[0].pk}
    # Two heads, then the first mailbox's next three: not 603 rows.
    assert sum(read) == 5


def test_a_stale_pass_cannot_claim_over_a_mailbox_cap_another_pass_used() -> None:
    """The database's mailbox cap is the promise: a pass whose view of the pool was read before
    another pass used the mailbox's whole cap still claims nothing over it. No pacing and
    no other cap in the way, so only the mailbox counter's ``used < cap`` refuses."""
    (box,) = make_pool(1, 1, limits={**NO_PACING, "mailbox_daily_cap": 3})
    schedule(make_campaign(), 8)
    stale = routing_pass._Pass(NOON, "stale", random.Random(1), None)
    assert stale.router.mailboxes[box.pk].remaining == 3
    assert claim_due(NOON, worker="fresh").claimed == 3
    report = stale.run()
    assert report.claimed == 0 and report.refused >= 1
    assert claimed() == 3
    assert used("mailbox", str(box.pk), DAY) == 3


@pytest.fixture(params=["python", "setwise", "plpgsql"])
def claim_implementation(request: pytest.FixtureRequest) -> str:
    """One savepoint per claim everywhere, and each database's own: SQLite's set-wise claim,
    PostgreSQL's claim function."""
    if request.param == "plpgsql" and connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's claim function")
    if request.param == "setwise" and connection.vendor != "sqlite":
        pytest.skip("SQLite's set-wise claim (one writer)")
    return str(request.param)


class TestClaimBatch:
    """A claim batch directly: each proposal all-or-nothing, in order, with the reason of a
    refusal; the parity suite of the implementations (savepoints, SQLite's set-wise claim,
    PostgreSQL's claim function), which must answer alike."""

    @pytest.fixture(autouse=True)
    def implementation(self, claim_implementation: str) -> None:
        self.batch = IMPLEMENTATIONS[claim_implementation]

    def setup_method(self) -> None:
        self.boxes = make_pool(1, 2, limits=NO_PACING)
        self.campaign = make_campaign()
        self.messages = schedule(self.campaign, 4, domains=1)
        self.to_domain = self.messages[0].to_domain
        ensure_counters(DAY, [("recipient_domain", self.to_domain)])

    def proposal(self, message: Message, box: Mailbox, recipient_cap: int = 10) -> Proposal:
        return Proposal(
            message_id=message.pk,
            mailbox_id=box.pk,
            provider_account_id=box.provider_account.pk,
            reservation=Reservation(
                (
                    ("global", "*", None),
                    ("mailbox", str(box.pk), 40),
                    ("recipient_domain", self.to_domain, recipient_cap),
                )
            ),
            next_send_at=NOON + timedelta(minutes=2),
        )

    def claim(self, proposals: list[Proposal]) -> list[ClaimOutcome]:
        ensure_counters(DAY, [k for p in proposals for k in p.reservation.keys()])
        return self.run(proposals, "host:7")

    def run(self, proposals: list[Proposal], worker: str) -> list[ClaimOutcome]:
        with transaction.atomic():
            return self.batch(proposals, DAY, NOON, timedelta(minutes=10), worker, SENDING_STATES)

    def test_it_claims_in_order_and_refuses_the_paced_mailbox_and_the_taken_message(
        self,
    ) -> None:
        first, second, third, _ = self.messages
        a, b = self.boxes
        outcomes = self.claim(
            [
                self.proposal(first, a),
                self.proposal(second, a),  # a's pacing slot moved to 12:02 by the first
                self.proposal(first, b),  # already claimed a moment ago
                self.proposal(third, b),
            ]
        )
        assert [(o.claimed, o.reason) for o in outcomes] == [
            (True, ""),
            (False, "busy"),
            (False, "gone"),
            (True, ""),
        ]
        states = dict(Message.objects.values_list("pk", "state"))
        assert states[second.pk] == Message.State.SCHEDULED
        assert Message.objects.get(pk=third.pk).mailbox_id == b.pk
        assert Message.objects.get(pk=first.pk).claimed_by == "host:7"
        assert used("global", "*", DAY) == 2
        assert used("mailbox", str(a.pk), DAY) == 1

    def test_a_full_cap_names_itself_and_rolls_the_whole_claim_back(self) -> None:
        first, second, *_ = self.messages
        a, b = self.boxes
        outcomes = self.claim(
            [self.proposal(first, a, recipient_cap=1), self.proposal(second, b, recipient_cap=1)]
        )
        assert outcomes[0].claimed
        assert (outcomes[1].reason, outcomes[1].scope, outcomes[1].key) == (
            "full",
            "recipient_domain",
            self.to_domain,
        )
        # Nothing of the refused claim stays: message, pacing slot, counters before the full one.
        assert Message.objects.get(pk=second.pk).state == Message.State.SCHEDULED
        assert Mailbox.objects.get(pk=b.pk).next_send_at is None
        assert used("global", "*", DAY) == 1
        assert used("mailbox", str(b.pk), DAY) == 0

    def test_the_counter_named_full_is_the_one_without_a_unit_left(self) -> None:
        # The mailbox has one unit left, the recipient domain none: the refusal names the
        # recipient domain (a mailbox named full would be dropped for the rest of the pass).
        first, second, *_ = self.messages
        a, b = self.boxes
        proposals = [
            self.proposal(first, a, recipient_cap=1),
            self.proposal(second, b, recipient_cap=1),
        ]
        ensure_counters(DAY, [k for p in proposals for k in p.reservation.keys()])
        DailyCounter.objects.filter(scope="mailbox", key=str(b.pk), day=DAY).update(used=39)
        outcomes = self.run(proposals, "w")
        assert outcomes[0].claimed
        assert (outcomes[1].reason, outcomes[1].scope) == ("full", "recipient_domain")
        assert used("mailbox", str(b.pk), DAY) == 39

    def test_a_missing_counter_row_refuses_as_try_later(self) -> None:
        first = self.messages[0]
        proposal = self.proposal(first, self.boxes[0])
        outcomes = self.run([proposal], "w")
        assert (outcomes[0].reason, outcomes[0].scope) == ("full", "global")
        assert Message.objects.get(pk=first.pk).state == Message.State.SCHEDULED


def test_a_lead_whose_zone_is_unknown_is_sent_in_its_campaigns_window() -> None:
    # Planning reads such a lead's window in the campaign's zone; so must the claim.
    from outreach.testing import enroll, make_leads

    make_pool(1, 1)
    campaign = make_campaign(window_days=[1, 2, 3, 4, 5], window_start="09:00", window_end="17:00")
    Campaign.objects.filter(pk=campaign.pk).update(timezone="Asia/Tokyo")  # 21:00 there
    (enrollment,) = enroll(campaign, make_leads(1, timezone="Mars/Olympus_Mons"))
    message = schedule(campaign, 1, enrollment=enrollment)[0]

    report = claim_due(NOON)  # 12:00 in UTC: inside the window there

    message.refresh_from_db()
    assert report.claimed == 0 and report.deferred == 1
    assert message.not_before == NOON.replace(day=5, hour=0)  # 09:00 in Tokyo
