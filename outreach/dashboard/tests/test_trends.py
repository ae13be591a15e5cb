"""The overview's 30/90-day trends: the charts carry the rollups' figures, and the count of
mailboxes not sending is replayed from the audit log day by day."""

from __future__ import annotations

import re
from datetime import date, timedelta

from django.test import Client
from django.urls import reverse

from outreach.dashboard import trends
from outreach.dashboard.tests.conftest import Activity
from outreach.lib import clock
from outreach.metrics.models import DailyRollup


def test_it_replays_the_mailboxes_not_sending_at_each_days_end() -> None:
    d1, d2, d3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)
    # Mailbox 1 paused on d2 and still paused; mailbox 2 paused on d1, resumed on d3.
    changes = [(2, "paused", d3), (1, "active", d2), (2, "active", d1)]
    got = trends.not_sending_on({1: "paused", 2: "active"}, changes, [d1, d2, d3])
    assert got == {d1: 1, d2: 2, d3: 1}


def test_the_overview_charts_the_rollups_over_30_and_90_days(
    staff_client: Client, activity: Activity
) -> None:
    today = clock.today("UTC")
    DailyRollup.objects.create(day=today - timedelta(days=40), sent=417, replied=9)
    DailyRollup.objects.create(day=today - timedelta(days=2), sent=123, bounced_hard=4)
    page = staff_client.get(reverse("dashboard:overview")).content.decode()
    section = page[page.index('id="trends"') :]
    assert "<svg" in section
    day = (today - timedelta(days=2)).strftime("%d %b")
    assert re.search(rf"<title>{day}: 123 sent</title>", section)
    assert ": 417 sent" not in section  # 40 days ago: outside the 30 days
    page = staff_client.get(reverse("dashboard:overview"), {"trend": "90"}).content.decode()
    assert "<title>" + (today - timedelta(days=40)).strftime("%d %b") + ": 417 sent" in page


def test_it_refuses_another_span(staff_client: Client, activity: Activity) -> None:
    response = staff_client.get(reverse("dashboard:overview"), {"trend": "365"})
    assert response.status_code == 400


def test_the_planner_page_answers_as_the_command_does(
    staff_client: Client, activity: Activity
) -> None:
    from outreach.scheduler import plan

    response = staff_client.get(reverse("dashboard:plan"), {"target": "400"})
    assert response.status_code == 200
    expected = plan.describe(plan.make_plan(plan.load_pool(), 400, days=90))
    body = response.content.decode()
    for line in expected:
        assert line.strip().replace("'", "&#x27;") in body
    assert "<svg" in body
    for bad in ({"target": "0"}, {"target": "x"}, {"target": "10", "by": "2020-01-01"}):
        assert staff_client.get(reverse("dashboard:plan"), bad).status_code == 400, bad


def test_the_campaign_page_names_the_ab_test_and_its_verdict(
    staff_client: Client, activity: Activity
) -> None:
    page = staff_client.get(reverse("dashboard:campaign", args=[activity.campaign.slug]))
    body = page.content.decode()
    # The seeded step has a handful of sends per variant: too few for a verdict.
    assert 'id="ab-verdict-1"' in body
    assert "no verdict yet" in body and "two-proportion z-test" in body


def test_the_campaign_list_shows_reply_and_bounce_rates_and_progress(
    staff_client: Client, activity: Activity
) -> None:
    from outreach.dashboard import campaign_rows

    row = next(r for r in campaign_rows.campaign_rows() if r.campaign.pk == activity.campaign.pk)
    assert row.sent and row.reply_rate == row.replied / row.sent
    body = staff_client.get(reverse("dashboard:campaigns")).content.decode()
    assert f'<td class="num reply-rate">{100 * row.replied / row.sent:.1f}%</td>' in body
    assert f'<td class="num bounce-rate">{100 * row.bounced / row.sent:.1f}%</td>' in body
    assert f"{row.progress_percent}%</span>" in body
