"""Postmark through anymail, its HTTP API faked with the response bodies Postmark documents."""

from __future__ import annotations

import json

import pytest

from outreach.providers import mime
from outreach.providers.base import Envelope, Outcome, SendError
from outreach.providers.postmark.sender import PostmarkProvider
from outreach.providers.tests.fakehttp import fake_http
from outreach.providers.tests.test_mime import _outgoing

ENVELOPE = Envelope(
    sender="anna@send1.example.com", recipient="lead@prospect.example.org", message_id=42
)


def _provider() -> PostmarkProvider:
    return PostmarkProvider(
        {"message_stream": "outreach"}, {"server_token": "server-token-example"}
    )


def test_it_posts_the_message_with_its_headers_and_metadata() -> None:
    out = _outgoing()
    with fake_http() as http:
        http.answer(
            200,
            {
                "To": "lead@prospect.example.org",
                "SubmittedAt": "2026-03-02T10:00:01.4178645-05:00",
                "MessageID": "0a129aee-e1cd-480d-b08d-4f48548ff48d",
                "ErrorCode": 0,
                "Message": "OK",
            },
        )
        result = _provider().send(mime.build(out), ENVELOPE)

    assert result.provider_message_id == "0a129aee-e1cd-480d-b08d-4f48548ff48d"
    (request,) = http.requests
    assert request["url"] == "https://api.postmarkapp.com/email"
    assert request["headers"]["X-Postmark-Server-Token"] == "server-token-example"
    body = json.loads(request["data"])
    assert body["To"] == "lead@prospect.example.org"
    assert body["MessageStream"] == "outreach"
    assert body["Metadata"] == {"outreach_message": "42"}
    headers = {h["Name"]: h["Value"] for h in body["Headers"]}
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert headers["Message-ID"] == out.message_id
    assert "<p>Hi Léa,</p>" in body["HtmlBody"] and "Hi Léa" in body["TextBody"]


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (429, {"ErrorCode": 429, "Message": "Rate limit exceeded"}, Outcome.TRANSIENT),
        (500, {"ErrorCode": 500, "Message": "Internal server error"}, Outcome.TRANSIENT),
        (503, "Service Unavailable", Outcome.TRANSIENT),
        (
            401,
            {"ErrorCode": 10, "Message": "Request does not contain a valid Server token."},
            Outcome.AUTH_FAILED,
        ),
        (
            422,
            {
                "ErrorCode": 406,
                "Message": "You tried to send to recipient(s) that have been marked as inactive.\n"
                "Found inactive addresses: lead@prospect.example.org.\n"
                "Inactive recipients are ones that have generated a hard bounce, a spam complaint, "
                "or a manual suppression.",
            },
            Outcome.HARD_BOUNCE,
        ),
        (422, {"ErrorCode": 300, "Message": "Invalid email request"}, Outcome.PERMANENT),
    ],
)
def test_it_classifies_postmark_answers(status: int, body: object, kind: Outcome) -> None:
    with fake_http() as http:
        http.answer(status, body)
        with pytest.raises(SendError) as raised:
            _provider().send(mime.build(_outgoing()), ENVELOPE)
    assert raised.value.kind == kind
