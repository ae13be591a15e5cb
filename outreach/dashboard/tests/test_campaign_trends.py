"""The campaign page's trends: a 30-day daily series of this campaign alone, and its funnel
sent → delivered → replied → interested with each stage's share of sent, as in the database."""

from __future__ import annotations

import re
from datetime import timedelta

from django.db.models import Sum
from django.test import Client
from django.urls import reverse

from outreach.campaigns.models import Lead
from outreach.dashboard import trends
from outreach.dashboard.tests.conftest import Activity
from outreach.lib import clock
from outreach.metrics.models import DailyRollup
from outreach.testing import make_campaign


def _page(client: Client, activity: Activity) -> str:
    url = reverse("dashboard:campaign", args=[activity.campaign.slug])
    return client.get(url).content.decode()


def test_it_charts_the_campaigns_own_last_30_days(staff_client: Client, activity: Activity) -> None:
    today = clock.today("UTC")
    other = make_campaign("other", steps=1)
    c = activity.campaign.pk
    DailyRollup.objects.create(day=today - timedelta(days=2), campaign_id=c, sent=143, replied=7)
    DailyRollup.objects.create(day=today - timedelta(days=2), campaign_id=other.pk, sent=999)
    DailyRollup.objects.create(day=today - timedelta(days=40), campaign_id=c, sent=417)
    page = _page(staff_client, activity)
    section = page[page.index('id="campaign-daily"') : page.index('id="funnel"')]
    assert "<svg" in section
    day = (today - timedelta(days=2)).strftime("%d %b")
    expected = DailyRollup.objects.filter(campaign_id=c, day=today - timedelta(days=2)).aggregate(
        sent=Sum("sent"), replied=Sum("replied")
    )
    assert f"<title>{day}: {expected['sent']} sent</title>" in section
    assert f"<title>{day}: {expected['replied']} replied</title>" in section
    assert ": 999 sent" not in section  # another campaign's sends
    assert ": 417 sent" not in section  # 40 days ago


def test_its_funnel_matches_the_database(staff_client: Client, activity: Activity) -> None:
    today = clock.today("UTC")
    c = activity.campaign.pk
    DailyRollup.objects.create(
        day=today - timedelta(days=1), campaign_id=c, sent=40, delivered=38, replied=6
    )
    DailyRollup.objects.create(
        day=today - timedelta(days=60), campaign_id=c, sent=60, delivered=57, replied=4
    )
    leads = list(Lead.objects.filter(enrollments__campaign_id=c).order_by("pk")[:2])
    Lead.objects.filter(pk__in=[lead.pk for lead in leads]).update(interested_at=clock.now())
    outsider = Lead.objects.create(email="x@elsewhere.test", email_domain="elsewhere.test")
    Lead.objects.filter(pk=outsider.pk).update(interested_at=clock.now())  # not enrolled here

    totals = DailyRollup.objects.filter(campaign_id=c).aggregate(
        sent=Sum("sent"), delivered=Sum("delivered"), replied=Sum("replied")
    )
    interested = (
        Lead.objects.filter(enrollments__campaign_id=c, interested_at__isnull=False)
        .distinct()
        .count()
    )
    assert interested == 2
    page = _page(staff_client, activity)
    funnel = page[page.index('id="funnel"') :]
    sent = totals["sent"]
    for name, count in [
        ("sent", sent),
        ("delivered", totals["delivered"]),
        ("replied", totals["replied"]),
        ("interested", interested),
    ]:
        row = re.search(
            rf'<tr class="funnel-{name}"><td>\w+</td><td class="num">(\d+)</td>'
            rf'<td class="num">([\d.]+)%</td>',
            funnel,
        )
        assert row, name
        assert int(row[1]) == count
        assert float(row[2]) == round(100 * count / sent, 1)


def test_a_funnel_with_nothing_sent_has_no_shares() -> None:
    stages = trends.funnel_stages(0, 0, 0, 0)
    assert [s.name for s in stages] == ["sent", "delivered", "replied", "interested"]
    assert all(s.percent_of_sent is None for s in stages)
    assert trends.funnel_stages(200, 190, 9, 3)[3].percent_of_sent == 1.5
