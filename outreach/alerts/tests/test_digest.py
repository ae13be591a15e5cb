"""The daily digest: yesterday per domain and mailbox, state changes and cost, once a day at
the configured hour."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from outreach.alerts import digest
from outreach.alerts.models import Alert
from outreach.alerts.tests.conftest import Pool, record, send
from outreach.lib import clock


def test_it_summarizes_yesterday_once_after_the_configured_hour(pool: Pool, settings: Any) -> None:
    settings.OUTREACH_DIGEST_HOUR = 8
    a, c = pool.mailboxes[0], pool.mailboxes[2]
    messages = send(a, 20, campaign=pool.campaign)
    send(c, 5)
    record(messages[0], "bounced", bounce_type="hard")
    record(messages[1], "replied")
    record(messages[2], "complained")  # pauses rep1@send1

    clock.set_now(clock.now().replace(hour=7) + timedelta(days=1))
    assert digest.send_if_due() is None  # before the hour
    clock.advance(timedelta(hours=1))
    alert = digest.send_if_due()
    assert alert is not None
    assert digest.send_if_due() is None  # once a day
    clock.advance(timedelta(hours=5))
    assert digest.send_if_due() is None

    text = alert.text
    assert text.startswith("📋 Sat 28 Nov: 25 sent · 4.0% bounced · 1 complaint(s) · 1 reply")
    assert "send1.example.com: 20 sent · 5.0% bounced" in text
    assert "  rep1 [paused]: 20 sent · 5.0% bounced · 1 complaint(s) · 1 reply" in text
    assert "  rep1: 5 sent · 0.0% bounced" in text  # rep1@send2
    assert "rep1@send1.example.com: active→paused" in text
    assert "💰 month to date $" in text
    assert Alert.objects.filter(kind="digest").count() == 1


@pytest.mark.django_db
def test_it_sends_no_digest_when_disabled(noon: Any, settings: Any) -> None:
    settings.OUTREACH_DIGEST_HOUR = -1
    assert digest.send_if_due() is None
