"""Planning: due enrollment steps become scheduled messages at the right time, follow-ups
pinned to their thread's mailbox, waiting and then given up when it cannot send."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from outreach.campaigns.models import Enrollment, Message
from outreach.campaigns.suppression import suppress
from outreach.pool.models import Mailbox
from outreach.scheduler.planning import BATCH, plan_due
from outreach.scheduler.recovery import cancel_expired
from outreach.scheduler.routing_pass import claim_due
from outreach.scheduler.tests.conftest import NOON
from outreach.testing import enroll, make_campaign, make_leads, make_pool

pytestmark = pytest.mark.django_db
WEEKDAYS: dict[str, Any] = {
    "window_days": [1, 2, 3, 4, 5],
    "window_start": "09:00",
    "window_end": "17:00",
}


def test_it_plans_step_one_at_the_next_window_opening_in_the_leads_time_zone() -> None:
    make_pool(1, 1)
    campaign = make_campaign(**WEEKDAYS)
    lead = make_leads(1, timezone="America/New_York")[0]
    enrollment = enroll(campaign, [lead])[0]
    report = plan_due(NOON)  # 07:00 in New York
    message = Message.objects.get()
    enrollment.refresh_from_db()
    assert report.planned == 1
    assert message.state == Message.State.SCHEDULED
    assert message.not_before == datetime(2026, 3, 4, 14, 0, tzinfo=UTC)  # 09:00 EST
    assert message.step is not None and message.step.position == 1
    assert message.pinned_mailbox_id is None
    assert message.to_email == lead.email and message.to_domain == lead.email_domain
    assert enrollment.last_step == 1 and enrollment.next_due_at is None


def test_it_uses_the_campaigns_time_zone_when_the_lead_has_none() -> None:
    make_pool(1, 1)
    campaign = make_campaign(timezone="Asia/Tokyo", **WEEKDAYS)
    enroll(campaign, make_leads(1))
    plan_due(NOON)  # 21:00 on Wednesday in Tokyo
    assert Message.objects.get().not_before == datetime(2026, 3, 5, 0, 0, tzinfo=UTC)


def test_it_keeps_the_local_morning_across_a_dst_change() -> None:
    make_pool(1, 1)
    campaign = make_campaign(**WEEKDAYS)
    enroll(campaign, make_leads(1, timezone="Europe/Berlin"))
    friday_evening = datetime(2026, 3, 27, 17, 0, tzinfo=UTC)  # 18:00 in Berlin
    plan_due(friday_evening)
    # Monday after the spring change: 09:00 CEST is 07:00 UTC (it was 08:00 UTC a week before).
    assert Message.objects.get().not_before == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)


def test_it_plans_each_step_once() -> None:
    make_pool(1, 1)
    campaign = make_campaign(steps=2)
    enroll(campaign, make_leads(3))
    assert plan_due(NOON).planned == 3
    assert plan_due(NOON + timedelta(minutes=1)).planned == 0
    Enrollment.objects.update(next_due_at=NOON)  # a stale due date changes nothing either
    assert plan_due(NOON + timedelta(minutes=2)).planned == 0
    assert Message.objects.count() == 3


def test_it_plans_a_batch_in_one_insert_yet_skips_a_step_another_scheduler_planned() -> None:
    make_pool(1, 1)
    campaign = make_campaign(steps=2)
    enrollments = enroll(campaign, make_leads(3))
    # A second scheduler inserted step 1 of the middle enrollment and has not moved the
    # enrollment on yet: this planner still sees it due.
    step = campaign.steps.get(position=1)
    taken = enrollments[1]
    Message.objects.create(
        kind=Message.Kind.CAMPAIGN,
        enrollment=taken,
        step=step,
        campaign=campaign,
        to_email=taken.lead.email,
        to_domain=taken.lead.email_domain,
        state=Message.State.SCHEDULED,
        not_before=NOON,
    )
    report = plan_due(NOON)
    assert report.planned == 2
    assert Message.objects.filter(step=step).count() == 3
    assert sorted(Message.objects.values_list("enrollment_id", flat=True)) == sorted(
        e.pk for e in enrollments
    )
    for enrollment in Enrollment.objects.all():
        assert enrollment.last_step == 1 and enrollment.next_due_at is None


@pytest.mark.parametrize("step_one_sent", [False, True])
def test_it_never_moves_back_an_enrollment_another_scheduler_moved_on_meanwhile(
    monkeypatch: pytest.MonkeyPatch, step_one_sent: bool
) -> None:
    """Between this planner's read of the due enrollments and its write, another scheduler
    moved one of them to step 2 (with step 1's message in place, so the batch's INSERT
    conflicts and it is saved one at a time; or without it): it stays at step 2."""
    from outreach.scheduler import planning

    make_pool(1, 1)
    campaign = make_campaign(steps=3)
    enrollments = enroll(campaign, make_leads(3))
    moved = enrollments[1]
    read = planning.suppressed_among

    def meanwhile(emails: Any) -> set[str]:
        if step_one_sent:
            Message.objects.create(
                kind=Message.Kind.CAMPAIGN,
                enrollment=moved,
                step=campaign.steps.get(position=1),
                campaign=campaign,
                to_email=moved.lead.email,
                to_domain=moved.lead.email_domain,
                state=Message.State.SENT,
                not_before=NOON,
            )
        Enrollment.objects.filter(pk=moved.pk).update(last_step=2, next_due_at=None)
        return read(emails)

    monkeypatch.setattr(planning, "suppressed_among", meanwhile)
    plan_due(NOON)
    steps = dict(Enrollment.objects.values_list("pk", "last_step"))
    assert steps == {enrollments[0].pk: 1, moved.pk: 2, enrollments[2].pk: 1}


def test_it_stops_a_suppressed_leads_enrollment_and_plans_nothing() -> None:
    make_pool(1, 1)
    campaign = make_campaign()
    lead = make_leads(1)[0]
    enroll(campaign, [lead])
    suppress(lead.email, "unsubscribe")
    report = plan_due(NOON)
    enrollment = Enrollment.objects.get()
    assert report.suppressed == 1 and not Message.objects.exists()
    assert enrollment.state == Enrollment.State.STOPPED
    assert enrollment.stop_reason == Enrollment.StopReason.SUPPRESSED


def test_it_finishes_an_enrollment_after_its_last_step() -> None:
    make_pool(1, 1)
    campaign = make_campaign(steps=1)
    enrollment = enroll(campaign, make_leads(1))[0]
    Enrollment.objects.filter(pk=enrollment.pk).update(last_step=1, next_due_at=NOON)
    assert plan_due(NOON).finished == 1
    assert Enrollment.objects.get().state == Enrollment.State.FINISHED


def test_it_pins_a_follow_up_to_the_threads_mailbox_with_its_message_id() -> None:
    boxes = make_pool(1, 2)
    campaign = make_campaign(steps=2)
    enrollment = enroll(campaign, make_leads(1))[0]
    Enrollment.objects.filter(pk=enrollment.pk).update(
        last_step=1,
        next_due_at=NOON,
        thread_mailbox=boxes[1],
        thread_message_id="<first.1@send1.example.com>",
    )
    plan_due(NOON)
    follow_up = Message.objects.get()
    assert follow_up.step is not None and follow_up.step.position == 2
    assert follow_up.pinned_mailbox_id == boxes[1].pk
    assert follow_up.in_reply_to == "<first.1@send1.example.com>"
    assert follow_up.references == "<first.1@send1.example.com>"
    assert follow_up.expires_at == follow_up.not_before + timedelta(hours=72)


def test_a_later_follow_up_references_the_whole_thread() -> None:
    boxes = make_pool(1, 1)
    campaign = make_campaign(steps=3)
    enrollment = enroll(campaign, make_leads(1))[0]
    for position, message_id in (
        (1, "<first.1@send1.example.com>"),
        (2, "<second.2@send1.example.com>"),
    ):
        Message.objects.create(
            enrollment=enrollment,
            campaign=campaign,
            step=campaign.steps.get(position=position),
            to_email=enrollment.lead.email,
            to_domain=enrollment.lead.email_domain,
            state=Message.State.SENT,
            mailbox=boxes[0],
            message_id_header=message_id,
        )
    Enrollment.objects.filter(pk=enrollment.pk).update(
        last_step=2,
        next_due_at=NOON,
        thread_mailbox=boxes[0],
        thread_message_id="<first.1@send1.example.com>",
    )
    plan_due(NOON)
    third = Message.objects.get(step__position=3)
    assert third.in_reply_to == "<first.1@send1.example.com>"
    assert third.references == "<first.1@send1.example.com> <second.2@send1.example.com>"


def test_it_makes_a_follow_up_wait_for_an_unknown_thread_then_gives_up() -> None:
    make_pool(1, 1)
    campaign = make_campaign(steps=2)
    enrollment = enroll(campaign, make_leads(1))[0]
    Enrollment.objects.filter(pk=enrollment.pk).update(last_step=1, next_due_at=NOON)
    assert plan_due(NOON).waiting == 1
    assert plan_due(NOON + timedelta(hours=71)).waiting == 1
    assert plan_due(NOON + timedelta(hours=73)).gave_up == 1
    enrollment.refresh_from_db()
    assert not Message.objects.exists()
    assert enrollment.stop_reason == Enrollment.StopReason.MAILBOX_UNAVAILABLE


def test_it_plans_past_more_than_a_batch_of_follow_ups_that_wait_earliest_due_first() -> None:
    """A batch and a half of follow-ups due an hour ago wait for their thread; the ten first
    steps due now behind them are planned in the same call."""
    make_pool(1, 1)
    campaign = make_campaign(steps=2)
    waiting = enroll(campaign, make_leads(BATCH + BATCH // 2, domain="waiting.example"))
    Enrollment.objects.filter(pk__in=[e.pk for e in waiting]).update(
        last_step=1, next_due_at=NOON - timedelta(hours=1)
    )
    enroll(campaign, make_leads(10, domain="new.example"))
    Enrollment.objects.filter(last_step=0).update(next_due_at=NOON)
    report = plan_due(NOON)
    assert (report.waiting, report.planned) == (BATCH + BATCH // 2, 10)
    assert set(Message.objects.values_list("to_domain", flat=True)) == {"new.example"}


def test_it_never_moves_a_follow_up_and_cancels_it_after_the_wait_limit() -> None:
    boxes = make_pool(1, 2)
    campaign = make_campaign(steps=2)
    enrollment = enroll(campaign, make_leads(1))[0]
    Enrollment.objects.filter(pk=enrollment.pk).update(
        last_step=1, next_due_at=NOON, thread_mailbox=boxes[0], thread_message_id="<t@x>"
    )
    Mailbox.objects.filter(pk=boxes[0].pk).update(state=Mailbox.State.PAUSED)
    plan_due(NOON)
    for hours in (0, 24, 48, 71):
        assert claim_due(NOON + timedelta(hours=hours)).claimed == 0
    assert cancel_expired(NOON + timedelta(hours=71)) == 0
    assert cancel_expired(NOON + timedelta(hours=73)) == 1
    message = Message.objects.get()
    enrollment.refresh_from_db()
    assert message.state == Message.State.CANCELLED and message.mailbox_id is None
    assert enrollment.state == Enrollment.State.STOPPED
    assert enrollment.stop_reason == Enrollment.StopReason.MAILBOX_UNAVAILABLE


def test_it_sends_follow_ups_from_the_first_messages_mailbox() -> None:
    make_pool(3, 3, limits={"pacing_gap_seconds": 0, "pacing_jitter_seconds": 0})
    campaign = make_campaign(steps=3)
    enroll(campaign, make_leads(30))
    now = NOON
    first_mailbox: dict[int, int] = {}
    for step in (1, 2, 3):
        plan_due(now)
        claim_due(now)
        for message in Message.objects.filter(state=Message.State.CLAIMED):
            # What the sending engine does on success.
            message.state = Message.State.SENT
            message.sent_at = now
            message.message_id_header = f"<m{message.pk}@example.com>"
            message.save()
            enrollment = message.enrollment
            assert enrollment is not None
            if step == 1:
                first_mailbox[enrollment.pk] = message.mailbox_id  # type: ignore[assignment]
                enrollment.thread_mailbox_id = message.mailbox_id
                enrollment.thread_message_id = message.message_id_header
            else:
                assert message.mailbox_id == first_mailbox[enrollment.pk]
                assert message.in_reply_to == enrollment.thread_message_id
            enrollment.next_due_at = now + timedelta(days=3)
            enrollment.save()
        assert Message.objects.filter(step__position=step, state=Message.State.SENT).count() == 30
        now += timedelta(days=3)
    assert len(set(first_mailbox.values())) == 9  # step 1 was spread over the pool
