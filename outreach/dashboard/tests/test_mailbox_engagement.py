"""The mailbox page's open and click rates: the human estimate from the rollups over the
rates' window, after the reply rate, and only for a mailbox a tracking campaign sent from."""

from __future__ import annotations

import re
from datetime import timedelta

from django.db.models import Sum
from django.test import Client
from django.urls import reverse

from outreach.dashboard.tests.conftest import Activity
from outreach.lib import clock
from outreach.metrics.figures import Figures
from outreach.metrics.models import DailyRollup
from outreach.pool.models import PoolSettings


def _page(client: Client, pk: int) -> str:
    return client.get(reverse("dashboard:mailbox", args=[pk])).content.decode()


def test_it_shows_the_human_open_and_click_rates_of_a_tracked_mailbox(
    staff_client: Client, activity: Activity
) -> None:
    today = clock.today("UTC")
    box = activity.mailboxes[0]
    activity.campaign.track_opens = True
    activity.campaign.save()
    DailyRollup.objects.create(
        day=today - timedelta(days=1),
        mailbox_id=box.pk,
        campaign_id=activity.campaign.pk,
        sent=80,
        opened=50,
        opened_human=20,
        clicked=9,
        clicked_human=3,
    )
    # Older than the rates' window: not in the rates.
    DailyRollup.objects.create(day=today - timedelta(days=90), mailbox_id=box.pk, sent=500)
    window = PoolSettings.load().thresholds.window_days
    expected = Figures.from_mapping(
        DailyRollup.objects.filter(
            mailbox_id=box.pk, day__gt=today - timedelta(days=window)
        ).aggregate(**{n: Sum(n) for n in ("sent", "refused", "opened_human", "clicked_human")})
    )
    page = _page(staff_client, box.pk)
    shown = re.search(
        r'id="mailbox-engagement"[^>]*>opens \(human, estimated\) ([\d.]+)% · '
        r"clicks \(human, estimated\) ([\d.]+)%",
        page,
    )
    assert shown
    assert shown[1] == f"{100 * expected.open_rate:.1f}"
    assert shown[2] == f"{100 * expected.click_rate:.1f}"
    assert expected.open_rate > 0 and expected.click_rate > 0
    # Replies stay the headline: the open and click rates come after the reply rate.
    assert page.index("replies ") < page.index('id="mailbox-engagement"')


def test_it_shows_no_open_rate_where_no_tracking_campaign_sent(
    staff_client: Client, activity: Activity
) -> None:
    today = clock.today("UTC")
    box = activity.mailboxes[0]
    DailyRollup.objects.create(
        day=today - timedelta(days=1),
        mailbox_id=box.pk,
        campaign_id=activity.campaign.pk,  # does not track
        sent=80,
    )
    assert 'id="mailbox-engagement"' not in _page(staff_client, box.pk)
    activity.campaign.track_clicks = True
    activity.campaign.save()
    assert 'id="mailbox-engagement"' in _page(staff_client, box.pk)
    assert 'id="mailbox-engagement"' not in _page(staff_client, activity.mailboxes[1].pk)
