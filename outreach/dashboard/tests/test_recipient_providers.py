"""The overview's "Recipients by provider" panel: messages sent today and over the last seven
days per recipient provider class, as the kept MX answers class their domains."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.test import Client
from django.urls import reverse

from outreach.campaigns.models import Message
from outreach.dashboard.tests.conftest import Activity
from outreach.lib import clock
from outreach.pool.models import PoolSettings
from outreach.scheduler.models import RecipientDomain
from outreach.scheduler.recipients import CLASSES


def _sent_copy(template: Message, to_domain: str, hours_ago: float, n: int) -> None:
    for i in range(n):
        Message.objects.create(
            kind=Message.Kind.REPLY,
            to_email=f"p{i}-{hours_ago}@{to_domain}",
            to_domain=to_domain,
            mailbox=template.mailbox,
            state=Message.State.SENT,
            sent_at=clock.now() - timedelta(hours=hours_ago),
        )


def _expected(days: int) -> Counter[str]:
    """The mix counted the long way: every message sent since the window's first pool
    midnight, its domain's class looked up one by one."""
    zone = ZoneInfo(PoolSettings.load().timezone)
    first = clock.now().astimezone(zone).date() - timedelta(days=days - 1)
    start = datetime.combine(first, time.min, tzinfo=zone)
    classes = dict(RecipientDomain.objects.values_list("domain", "provider"))
    mix: Counter[str] = Counter()
    for m in Message.objects.filter(state=Message.State.SENT):
        if m.sent_at is not None and m.sent_at >= start:
            provider = classes.get(m.to_domain, "")
            mix[provider if provider in CLASSES else "unknown"] += 1
    return mix


def _panel(client: Client) -> dict[str, tuple[int, int, int, int]]:
    page = client.get(reverse("dashboard:overview")).content.decode()
    section = page[page.index('id="recipient-providers"') :]
    section = section[: section.index("</table>")]
    return {
        provider: tuple(int(n) for n in numbers)  # type: ignore[misc]
        for provider, *numbers in re.findall(
            r'data-provider="(\w+)"><td>[^<]*</td><td class="num">(\d+)</td>'
            r'<td class="num">(\d+)%</td><td class="num">(\d+)</td><td class="num">(\d+)%</td>',
            section,
        )
    }


def test_it_shows_todays_and_the_weeks_sends_per_recipient_provider_as_the_database_has_them(
    staff_client: Client, activity: Activity
) -> None:
    now = clock.now()
    RecipientDomain.objects.create(domain="gmail-co.example", provider="google", checked_at=now)
    RecipientDomain.objects.create(domain="m365.example", provider="microsoft", checked_at=now)
    RecipientDomain.objects.create(domain="guarded.example", provider="gateway", checked_at=now)
    RecipientDomain.objects.create(domain="nomx.example", provider="", checked_at=now)
    template = activity.messages[1]
    _sent_copy(template, "gmail-co.example", 1, 3)  # today
    _sent_copy(template, "gmail-co.example", 24 * 3, 2)  # three days ago
    _sent_copy(template, "m365.example", 2, 4)
    _sent_copy(template, "guarded.example", 24 * 5, 1)
    _sent_copy(template, "guarded.example", 24 * 9, 6)  # older than the week: left out
    _sent_copy(template, "nomx.example", 3, 2)

    panel = _panel(staff_client)

    today, week = _expected(1), _expected(7)
    assert week["google"] == 5 and week["gateway"] == 1
    assert set(panel) == set(week)
    for provider, (n_today, pct_today, n_week, pct_week) in panel.items():
        assert n_today == today[provider], provider
        assert n_week == week[provider], provider
        assert pct_today == round(100 * today[provider] / sum(today.values())), provider
        assert pct_week == round(100 * week[provider] / sum(week.values())), provider
    # The seeded campaign's prospects were never looked up, and a domain without MX has no
    # class either: both are "unknown", not guessed.
    assert panel["unknown"][2] == week["unknown"] > 2


def test_it_says_so_when_nothing_was_sent_this_week(staff_client: Client, db: None) -> None:
    page = staff_client.get(reverse("dashboard:overview")).content.decode()
    assert "Nothing sent in the last 7 days." in page
