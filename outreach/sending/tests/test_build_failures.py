"""A message that cannot be built waits; repeated failures pause its campaign with one alert."""

from __future__ import annotations

import pytest

from outreach.alerts.models import Alert
from outreach.campaigns import lifecycle
from outreach.campaigns.models import Campaign, Message, Variant
from outreach.scheduler.counters import reservation_of
from outreach.scheduler.models import DailyCounter
from outreach.sending.engine import send_due
from outreach.sending.tests.helpers import claimed_campaign_messages, states
from outreach.testing import make_campaign, make_provider

pytestmark = pytest.mark.django_db


def broken_campaign() -> Campaign:
    campaign = make_campaign("broken", steps=1, state=Campaign.State.ACTIVE)
    Variant.objects.filter(step__campaign=campaign).update(body_html="<p>{{ 10 / 0 }}</p>")
    return campaign


def hold_units(message: Message) -> list[tuple[str, str]]:
    """The counters a real claim of ``message`` would have taken one unit of."""
    reservation = reservation_of(message)
    assert reservation is not None and message.quota_day is not None
    for scope, key in reservation.keys():
        DailyCounter.objects.update_or_create(
            scope=scope, key=key, day=message.quota_day, defaults={"used": 1}
        )
    return list(reservation.keys())


def test_it_puts_a_message_that_cannot_be_built_back_to_waiting_and_frees_its_units() -> None:
    campaign = broken_campaign()
    (message,) = claimed_campaign_messages(1, provider=make_provider(), campaign=campaign)
    keys = hold_units(message)

    send_due()

    message.refresh_from_db()
    assert message.state == Message.State.SCHEDULED
    assert message.mailbox_id is None and message.claimed_by == ""
    assert "step 1 variant A: ZeroDivisionError: division by zero" in message.last_error
    used = {(c.scope, c.key): c.used for c in DailyCounter.objects.all()}
    assert [used[k] for k in keys] == [0] * len(keys)
    campaign.refresh_from_db()
    assert (campaign.state, campaign.build_failures) == (Campaign.State.ACTIVE, 1)
    assert not Alert.objects.exists()


def test_it_pauses_the_campaign_after_five_failures_with_one_alert() -> None:
    campaign = broken_campaign()
    messages = claimed_campaign_messages(7, provider=make_provider(), campaign=campaign)

    send_due()

    assert states(messages) == [Message.State.SCHEDULED] * 7
    campaign.refresh_from_db()
    assert campaign.state == Campaign.State.PAUSED
    (alert,) = Alert.objects.all()
    assert alert.kind == "campaign_paused"
    assert "campaign broken paused" in alert.text
    assert "step 1 variant A: ZeroDivisionError: division by zero" in alert.text

    # Fixed and resumed: the count starts again and the waiting messages can go.
    Variant.objects.filter(step__campaign=campaign).update(body_html="<p>Fixed</p>")
    lifecycle.resume(campaign)
    campaign.refresh_from_db()
    assert (campaign.state, campaign.build_failures) == (Campaign.State.ACTIVE, 0)
