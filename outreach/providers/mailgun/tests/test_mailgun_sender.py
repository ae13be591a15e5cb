"""Mailgun through anymail, its HTTP API faked with the response bodies Mailgun documents."""

from __future__ import annotations

import pytest
import requests

from outreach.providers import mime
from outreach.providers.base import Envelope, Outcome, SendError
from outreach.providers.mailgun.sender import MailgunProvider
from outreach.providers.tests.fakehttp import fake_http
from outreach.providers.tests.test_mime import _outgoing

ENVELOPE = Envelope(
    sender="anna@send1.example.com", recipient="lead@prospect.example.org", message_id=42
)


def _provider() -> MailgunProvider:
    return MailgunProvider(
        {"sender_domain": "send1.example.com", "api_url": "https://api.eu.mailgun.net/v3"},
        {"api_key": "key-example"},
    )


def test_it_posts_the_message_with_its_headers_and_metadata() -> None:
    out = _outgoing()
    with fake_http() as http:
        http.answer(
            200,
            {"id": "<20260302100000.1.ABCDEF@send1.example.com>", "message": "Queued. Thank you."},
        )
        result = _provider().send(mime.build(out), ENVELOPE)

    assert result.provider_message_id == "<20260302100000.1.ABCDEF@send1.example.com>"
    (request,) = http.requests
    assert request["url"] == "https://api.eu.mailgun.net/v3/send1.example.com/messages"
    assert request["auth"] == ("api", "key-example")
    data = {
        k: v[0] if isinstance(v, list) and len(v) == 1 else v
        for k, v in dict(request["data"]).items()
    }
    assert data["to"] == "lead@prospect.example.org"
    assert data["subject"] == "Quick question, Léa"
    assert data["h:List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert data["h:List-Unsubscribe"].startswith("<https://outreach.example.com/u/")
    assert data["h:Message-Id"] == out.message_id
    assert data["h:X-Outreach-Message"] == "42"
    assert data["v:outreach_message"] == "42"
    assert "Hi Léa" in data["text"] and "<p>Hi Léa,</p>" in data["html"]


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (
            429,
            {"message": "Domain send1.example.com is not allowed to send: rate limit exceeded"},
            Outcome.TRANSIENT,
        ),
        (500, "Internal Server Error", Outcome.TRANSIENT),
        (401, "Forbidden", Outcome.AUTH_FAILED),
        (
            400,
            {"message": "'to' parameter is not a valid address. please check documentation"},
            Outcome.PERMANENT,
        ),
    ],
)
def test_it_classifies_mailgun_answers(status: int, body: object, kind: Outcome) -> None:
    with fake_http() as http:
        http.answer(status, body)
        with pytest.raises(SendError) as raised:
            _provider().send(mime.build(_outgoing()), ENVELOPE)
    assert raised.value.kind == kind
    assert raised.value.code == str(status)


def test_it_retries_when_the_api_cannot_be_reached() -> None:
    with fake_http() as http:
        http.fail(requests.ConnectTimeout("connect timeout"))
        with pytest.raises(SendError) as raised:
            _provider().send(mime.build(_outgoing()), ENVELOPE)
    assert raised.value.kind == Outcome.TRANSIENT
