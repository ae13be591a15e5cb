"""/metrics over real HTTP: the token is required, the exposition parses and adds up."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests

from outreach.alerts.tests.conftest import Pool, record, send
from outreach.lib import clock
from outreach.scheduler.models import DailyCounter

pytestmark = pytest.mark.django_db(transaction=True)
TOKEN = "metrics-token-0123456789"
LINE = re.compile(r'^([a-z_]+)(\{(?:[a-z_]+="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+]+)$')


def _get(live_server: Any, **kwargs: Any) -> requests.Response:
    return requests.get(live_server.url + "/metrics", timeout=10, allow_redirects=False, **kwargs)


def test_it_refuses_without_the_token_and_needs_no_login(
    live_server: Any, settings: Any, pool: Pool
) -> None:
    settings.OUTREACH_METRICS_TOKEN = ""
    assert _get(live_server, headers={"Authorization": "Bearer anything"}).status_code == 403
    settings.OUTREACH_METRICS_TOKEN = TOKEN
    assert _get(live_server).status_code == 403
    assert _get(live_server, headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert _get(live_server, params={"token": TOKEN}).status_code == 403  # header only


def test_it_exposes_sends_events_states_and_cap_use(
    live_server: Any, settings: Any, pool: Pool
) -> None:
    settings.OUTREACH_METRICS_TOKEN = TOKEN
    box = pool.mailboxes[0]
    messages = send(box, 3, campaign=pool.campaign)
    record(messages[0], "delivered")
    record(messages[1], "complained")  # pauses the mailbox
    DailyCounter.objects.create(scope="domain", key=str(box.domain_id), day=clock.today(), used=3)
    DailyCounter.objects.create(scope="global", key="*", day=clock.today(), used=3)

    response = _get(live_server, headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    body = response.text
    for line in body.splitlines():
        assert line.startswith("# ") or LINE.match(line), line
    labels = f'mailbox="{box.address}",domain="{box.domain.name}",provider="ses-main"'
    assert f"outreach_sent_total{{{labels}}} 3" in body
    assert f'outreach_events_total{{{labels},type="complained"}} 1' in body
    assert f'outreach_events_total{{{labels},type="delivered"}} 1' in body
    state = f'mailbox="{box.address}",domain="{box.domain.name}",state="paused"'
    assert f"outreach_mailbox_state{{{state}}} 1" in body
    assert f'outreach_cap_used{{scope="domain",subject="{box.domain.name}"}} 3' in body
    assert f'outreach_cap_limit{{scope="domain",subject="{box.domain.name}"}} 250' in body
    assert 'outreach_cap_limit{scope="global",subject="*"} 1500' in body
    assert 'outreach_messages{state="sent"} 3' in body
    assert 'outreach_alerts{state="pending"} 1' in body
