"""Stranded enrollments are found in bounded steps, whatever the number in flight."""

from __future__ import annotations

import pytest

from outreach.campaigns.models import Enrollment, Message
from outreach.lib import clock
from outreach.scheduler.planning import settle_stranded, stranded_enrollments
from outreach.testing import enroll, make_campaign, make_leads, make_pool

pytestmark = pytest.mark.django_db


def test_it_settles_every_stranded_enrollment_a_batch_per_pass() -> None:
    make_pool(1, 1)
    campaign = make_campaign()
    waiting, other, *stranded = enroll(campaign, make_leads(6))
    step = campaign.steps.get(position=1)
    now = clock.now()
    for enrollment in (waiting, other):  # in flight: their first message is on its way
        Message.objects.create(
            enrollment=enrollment,
            campaign=campaign,
            step=step,
            to_email=enrollment.lead.email,
            to_domain=enrollment.lead.email_domain,
            state=Message.State.SCHEDULED,
        )
    # Planned once, their messages since gone: nothing would ever happen to the other four.
    Enrollment.objects.update(next_due_at=None, last_step=1)

    settled = [settle_stranded(now, batch=2) for _ in range(3)]

    assert settled == [0, 2, 2]
    assert not stranded_enrollments().exists()
    # Step 1 is planned again for each.
    replanned = Enrollment.objects.filter(pk__in=[e.pk for e in stranded])
    assert set(replanned.values_list("last_step", "next_due_at")) == {(0, now)}
