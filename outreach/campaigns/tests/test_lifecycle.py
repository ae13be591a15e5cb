"""Campaign lifecycle and enrollment: suppression, shared mailboxes, stop cancels unsent mail."""

from __future__ import annotations

from datetime import timedelta

import pytest

from outreach.campaigns import lifecycle
from outreach.campaigns.models import Campaign, Enrollment, Message, Suppression
from outreach.campaigns.suppression import suppress
from outreach.lib import clock
from outreach.pool.models import Mailbox
from outreach.scheduler.models import DailyCounter
from outreach.testing import make_campaign, make_leads

pytestmark = pytest.mark.django_db


def test_it_enrolls_leads_due_after_the_first_step_delay(campaign: Campaign) -> None:
    campaign.steps.filter(position=1).update(delay_hours=2)
    leads = make_leads(3)
    report = lifecycle.enroll(campaign, leads)
    assert report.enrolled == 3
    due = {e.next_due_at for e in Enrollment.objects.all()}
    assert due == {clock.now() + timedelta(hours=2)}
    assert lifecycle.enroll(campaign, leads).already_enrolled == 3
    assert Enrollment.objects.count() == 3


def test_it_never_enrolls_a_suppressed_address_or_domain(campaign: Campaign) -> None:
    leads = make_leads(3)
    suppress(leads[0].email, Suppression.Source.COMPLAINT)
    report = lifecycle.enroll(campaign, leads)
    assert (report.enrolled, report.suppressed) == (2, 1)
    suppress("prospect.example.org", Suppression.Source.MANUAL, kind=Suppression.Kind.DOMAIN)
    other = make_campaign("other", state=Campaign.State.DRAFT, allow_shared_leads=True)
    assert lifecycle.enroll(other, leads).suppressed == 3


def test_it_keeps_a_lead_out_of_two_active_campaigns_sharing_mailboxes(
    pool: list[Mailbox], campaign: Campaign
) -> None:
    leads = make_leads(2)
    lifecycle.enroll(campaign, leads[:1])
    whole_pool = make_campaign("second", state=Campaign.State.DRAFT)
    report = lifecycle.enroll(whole_pool, leads)
    assert (report.enrolled, report.in_other_campaign) == (1, 1)
    # Disjoint senders: no conflict.
    domain_a, domain_b = pool[0].domain, pool[-1].domain
    campaign.allowed_domains.set([domain_a])
    disjoint = make_campaign("third", state=Campaign.State.DRAFT)
    disjoint.allowed_domains.set([domain_b])
    assert lifecycle.enroll(disjoint, leads[:1]).enrolled == 1
    # Overlapping senders, but the operator allows it.
    shared = make_campaign("fourth", state=Campaign.State.DRAFT, allow_shared_leads=True)
    assert lifecycle.enroll(shared, leads[:1]).enrolled == 1
    # Finished enrollments no longer block.
    Enrollment.objects.exclude(campaign=whole_pool).update(state=Enrollment.State.FINISHED)
    assert lifecycle.enroll(whole_pool, leads[:1]).enrolled == 1


def test_it_starts_only_a_valid_campaign(campaign: Campaign) -> None:
    lifecycle.enroll(campaign, make_leads(1))
    campaign.postal_address = ""
    campaign.save()
    with pytest.raises(lifecycle.CampaignInvalid) as info:
        lifecycle.start(campaign)
    assert "postal address" in info.value.problems[0]
    assert Campaign.objects.get().state == Campaign.State.DRAFT
    campaign.postal_address = "1 Main St"
    campaign.save()
    lifecycle.start(campaign)
    campaign.refresh_from_db()
    assert campaign.state == Campaign.State.ACTIVE and campaign.started_at == clock.now()


def test_it_pauses_resumes_and_refuses_illegal_moves(campaign: Campaign) -> None:
    with pytest.raises(lifecycle.CampaignError):
        lifecycle.pause(campaign)
    lifecycle.start(campaign)
    lifecycle.pause(campaign)
    assert Campaign.objects.get().state == Campaign.State.PAUSED
    lifecycle.resume(campaign)
    assert Campaign.objects.get().state == Campaign.State.ACTIVE
    lifecycle.stop(campaign)
    with pytest.raises(lifecycle.CampaignError, match="stopped"):
        lifecycle.resume(campaign)


def test_it_refuses_a_transition_from_a_stale_state(campaign: Campaign) -> None:
    stale = Campaign.objects.get(pk=campaign.pk)
    lifecycle.start(campaign)
    lifecycle.stop(campaign)
    with pytest.raises(lifecycle.CampaignError, match="changed meanwhile"):
        lifecycle.start(stale)
    assert Campaign.objects.get().state == Campaign.State.STOPPED


def test_stopping_cancels_unsent_messages_and_releases_claimed_units(
    pool: list[Mailbox], campaign: Campaign
) -> None:
    lifecycle.start(campaign)
    leads = make_leads(4)
    lifecycle.enroll(campaign, leads)
    step = campaign.steps.get(position=1)
    variant = step.variants.get()
    mailbox = pool[0]
    day = clock.today()
    states = [
        Message.State.SCHEDULED,
        Message.State.RETRY,
        Message.State.CLAIMED,
        Message.State.SENDING,
    ]
    for enrollment, state in zip(Enrollment.objects.order_by("pk"), states, strict=True):
        Message.objects.create(
            enrollment=enrollment,
            step=step,
            variant=variant,
            campaign=campaign,
            to_email=enrollment.lead.email,
            to_domain=enrollment.lead.email_domain,
            state=state,
            mailbox=mailbox if state != Message.State.SCHEDULED else None,
            quota_day=day if state != Message.State.SCHEDULED else None,
        )
    for scope, key in [
        (DailyCounter.Scope.GLOBAL, "*"),
        (DailyCounter.Scope.MAILBOX, str(mailbox.pk)),
        (DailyCounter.Scope.DOMAIN, str(mailbox.domain_id)),
    ]:
        DailyCounter.objects.create(scope=scope, key=key, day=day, used=3)
    assert lifecycle.stop(campaign) == 3
    by_state = dict(Message.objects.values_list("state", "to_email"))
    assert set(by_state) == {Message.State.CANCELLED, Message.State.SENDING}
    assert Message.objects.filter(state=Message.State.CANCELLED).count() == 3
    # Only the claimed message gave its units back (retry and sending reached a provider).
    assert set(DailyCounter.objects.values_list("used", flat=True)) == {2}
    assert set(Enrollment.objects.values_list("state", "stop_reason")) == {
        (Enrollment.State.STOPPED, Enrollment.StopReason.CAMPAIGN_STOPPED)
    }


def test_stopping_one_enrollment_records_reason_and_time(campaign: Campaign) -> None:
    lifecycle.enroll(campaign, make_leads(1))
    enrollment = Enrollment.objects.get()
    assert lifecycle.stop_enrollment(enrollment, Enrollment.StopReason.MANUAL)
    assert (enrollment.state, enrollment.stop_reason) == ("stopped", "manual")
    assert enrollment.stopped_at == clock.now() and enrollment.next_due_at is None
    assert not lifecycle.stop_enrollment(enrollment, Enrollment.StopReason.REPLY)
