"""One-click unsubscribe links (RFC 8058) over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from outreach.campaigns.models import Enrollment
from outreach.campaigns.suppression import is_suppressed
from outreach.campaigns.unsubscribe import make_token, unsubscribe_url
from outreach.events.models import Event
from outreach.events.tests.conftest import make_sent_message

pytestmark = pytest.mark.django_db(transaction=True)
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


def test_it_shows_a_confirmation_page_without_unsubscribing(live_server: Any) -> None:
    sent = make_sent_message()

    response = requests.get(f"{live_server.url}/u/{make_token(sent.message.pk)}", timeout=10)

    assert response.status_code == 200
    assert sent.message.to_email in response.text
    assert 'name="List-Unsubscribe" value="One-Click"' in response.text
    assert not is_suppressed(sent.message.to_email)


def test_it_unsubscribes_with_one_post_without_login_or_csrf(
    live_server: Any, settings: Any
) -> None:
    settings.OUTREACH_BASE_URL = live_server.url
    sent = make_sent_message()

    response = requests.post(unsubscribe_url(sent.message.pk), data=ONE_CLICK, timeout=10)

    assert response.status_code == 200
    assert "You are unsubscribed" in response.text
    assert is_suppressed(sent.message.to_email)
    event = Event.objects.get()
    assert (event.type, event.source, event.message_id) == (
        "unsubscribed",
        "unsubscribe",
        sent.message.pk,
    )
    sent.enrollment.refresh_from_db()
    assert sent.enrollment.stop_reason == Enrollment.StopReason.UNSUBSCRIBE


def test_it_accepts_unsubscribing_twice(live_server: Any) -> None:
    sent = make_sent_message()
    url = f"{live_server.url}/u/{make_token(sent.message.pk)}"

    first = requests.post(url, data=ONE_CLICK, timeout=10)
    second = requests.post(url, data=ONE_CLICK, timeout=10)

    assert (first.status_code, second.status_code) == (200, 200)
    assert Event.objects.count() == 1


def test_it_refuses_a_forged_token(live_server: Any) -> None:
    sent = make_sent_message()
    forged = [
        "1:forged:signature",
        "garbage",
        make_token(sent.message.pk)[:-2] + "xx",
        "MQ:1vQ5Qm:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ]
    for token in forged:
        get = requests.get(f"{live_server.url}/u/{token}", timeout=10)
        post = requests.post(f"{live_server.url}/u/{token}", data=ONE_CLICK, timeout=10)

        assert (get.status_code, post.status_code) == (404, 404), token
    assert not is_suppressed(sent.message.to_email)


def test_it_needs_the_one_click_field_on_post(live_server: Any) -> None:
    sent = make_sent_message()

    response = requests.post(
        f"{live_server.url}/u/{make_token(sent.message.pk)}", data={}, timeout=10
    )

    assert response.status_code == 400
    assert not is_suppressed(sent.message.to_email)
