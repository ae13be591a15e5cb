"""Property tests: whatever a client posts, no webhook answers 500 (or 503 without cause).

Bodies are generated at three depths: arbitrary bytes, arbitrary JSON, and documented payloads
with fields replaced by arbitrary values, signed correctly so they reach the parsers.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from outreach.events import normalize
from outreach.events.tests.conftest import (
    WEBHOOK_AUTH,
    SnsServer,
    mailgun_failed,
    mailgun_signature,
    postmark_bounce,
    sendgrid_events,
    ses_bounce,
    ses_complaint,
    sns_headers,
    sns_notification,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("webhook_settings")]

ENDPOINTS = {
    "ses": "/webhooks/amazon_ses/tracking/",
    "mailgun": "/webhooks/mailgun/tracking/",
    "postmark": "/webhooks/postmark/tracking/",
    "sendgrid": "/webhooks/sendgrid/tracking/",
}
# What a client can legitimately get back: ok, or a 4xx naming its mistake.
ALLOWED = {200, 400, 401, 403, 409, 413, 415}
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
content_types = st.sampled_from(
    [
        "application/json",
        "text/plain; charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "text/html",
        "",
    ]
)


@pytest.fixture
def client() -> Iterator[Client]:
    yield Client(raise_request_exception=False)


def _auth() -> str:
    token = base64.b64encode(f"{WEBHOOK_AUTH[0]}:{WEBHOOK_AUTH[1]}".encode()).decode()
    return f"Basic {token}"


def _post(client: Client, path: str, body: bytes, content_type: str, **extra: str) -> int:
    headers = {"Authorization": _auth(), **extra}
    response = client.generic("POST", path, body, content_type=content_type, headers=headers)
    return response.status_code


@FUZZ
@given(
    endpoint=st.sampled_from(sorted(ENDPOINTS)), body=st.binary(max_size=300), ctype=content_types
)
def test_it_never_fails_on_arbitrary_bytes(
    client: Client, endpoint: str, body: bytes, ctype: str
) -> None:
    assert _post(client, ENDPOINTS[endpoint], body, ctype) in ALLOWED


@FUZZ
@given(endpoint=st.sampled_from(sorted(ENDPOINTS)), payload=json_values)
def test_it_never_fails_on_arbitrary_json(client: Client, endpoint: str, payload: Any) -> None:
    body = json.dumps(payload).encode()
    assert _post(client, ENDPOINTS[endpoint], body, "application/json") in ALLOWED


def _mutate(document: Any, path: list[int], value: Any) -> Any:
    """``document`` with the node chosen by ``path`` (indexes into keys/items) replaced."""
    if not path or not isinstance(document, dict | list) or not document:
        return value
    if isinstance(document, dict):
        keys = sorted(document)
        key = keys[path[0] % len(keys)]
        return {**document, key: _mutate(document[key], path[1:], value)}
    index = path[0] % len(document)
    copy = list(document)
    copy[index] = _mutate(copy[index], path[1:], value)
    return copy


paths = st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=4)


@FUZZ
@given(
    which=st.sampled_from(["bounce", "complaint"]),
    path=paths,
    value=json_values,
    version=st.sampled_from(["1", "2"]),
)
def test_it_never_fails_on_signed_ses_notifications_with_odd_fields(
    client: Client, sns_server: SnsServer, which: str, path: list[int], value: Any, version: str
) -> None:
    ses = (
        ses_bounce("a@prospect.example.org", "id-1", event_publishing=True)
        if which == "bounce"
        else ses_complaint("a@prospect.example.org", "id-1")
    )
    mutated = _mutate(ses, path, value)
    message = sns_server.sign(sns_notification(mutated), version=version)
    headers = {
        "x-amz-sns-message-type": message["Type"],
        "x-amz-sns-message-id": message["MessageId"],
    }
    body = json.dumps(message).encode()
    status = _post(client, ENDPOINTS["ses"], body, sns_headers(message)["Content-Type"], **headers)
    assert status in ALLOWED


@FUZZ
@given(path=paths, value=json_values)
def test_it_never_fails_on_signed_mailgun_events_with_odd_fields(
    client: Client, path: list[int], value: Any
) -> None:
    payload = mailgun_failed("a@prospect.example.org", "m@send1")
    payload["event-data"] = _mutate(payload["event-data"], path, value)
    body = json.dumps(payload).encode()
    assert _post(client, ENDPOINTS["mailgun"], body, "application/json") in ALLOWED


@FUZZ
@given(fields=st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=6))
def test_it_never_fails_on_signed_legacy_mailgun_forms(
    client: Client, fields: dict[str, str]
) -> None:
    form = {**fields, **mailgun_signature()}
    response = client.post(ENDPOINTS["mailgun"], form, headers={"Authorization": _auth()})
    assert response.status_code in ALLOWED


@FUZZ
@given(path=paths, value=json_values)
def test_it_never_fails_on_postmark_and_sendgrid_payloads_with_odd_fields(
    client: Client, path: list[int], value: Any
) -> None:
    postmark = _mutate(postmark_bounce("a@prospect.example.org", "pm-1"), path, value)
    sendgrid = _mutate(sendgrid_events("a@prospect.example.org", message_pk=1), path, value)
    assert (
        _post(client, ENDPOINTS["postmark"], json.dumps(postmark).encode(), "application/json")
        in ALLOWED
    )
    assert (
        _post(client, ENDPOINTS["sendgrid"], json.dumps(sendgrid).encode(), "application/json")
        in ALLOWED
    )


@given(value=json_values)
def test_it_keeps_any_payload_storable(value: Any) -> None:
    cleaned = normalize.sanitize(value)
    assert "\\u0000" not in json.dumps(cleaned)
    normalize.fingerprint(cleaned)


@given(value=json_values | st.text())
def test_it_reads_message_ids_only_from_plain_positive_numbers(value: Any) -> None:
    pk = normalize.parse_message_pk(value)
    assert pk is None or (isinstance(pk, int) and 0 < pk < 2**63)
