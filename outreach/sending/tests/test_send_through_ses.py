"""The engine through SES (botocore Stubber at the boto seam): throttling retried, then sent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from botocore.stub import ANY, Stubber

from outreach.campaigns.models import Message
from outreach.lib import clock
from outreach.pool.models import ProviderAccount
from outreach.providers import base
from outreach.providers.ses.sender import SesProvider
from outreach.sending.engine import send_due
from outreach.sending.models import SendAttempt
from outreach.sending.tests.helpers import claimed_campaign_messages

pytestmark = pytest.mark.django_db

SES_MESSAGE_ID = "0102018e0f1c2d3e-1a2b3c4d-5e6f-7a8b-9c0d-ef1234567890-000000"


@pytest.fixture
def ses(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    provider = SesProvider(
        {"region": "eu-west-1", "configuration_set": "outreach-events"},
        {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "example-secret"},
    )
    monkeypatch.setattr(base, "build", lambda kind, settings, secrets: provider)
    with Stubber(provider.client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def test_it_retries_a_throttled_send_then_sends(ses: Stubber) -> None:
    clock.set_now(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    account = ProviderAccount.objects.create(
        name="ses", kind="ses", settings={"region": "eu-west-1"}
    )
    (message,) = claimed_campaign_messages(1, provider=account)
    ses.add_client_error(
        "send_email",
        service_error_code="TooManyRequestsException",
        service_message="Maximum sending rate exceeded.",
        http_status_code=429,
    )
    expected = {
        "FromEmailAddress": "rep1@send1.example.com",
        "Destination": {"ToAddresses": [message.to_email]},
        "Content": {"Raw": {"Data": ANY}},
        "EmailTags": [{"Name": "outreach_message", "Value": str(message.pk)}],
        "ConfigurationSetName": "outreach-events",
    }
    ses.add_response("send_email", {"MessageId": SES_MESSAGE_ID}, expected)

    send_due()
    message.refresh_from_db()
    assert message.state == Message.State.RETRY
    clock.advance(timedelta(hours=1))
    send_due()

    message.refresh_from_db()
    assert message.state == Message.State.SENT
    assert message.provider_message_id == SES_MESSAGE_ID
    attempts = SendAttempt.objects.filter(message=message).order_by("id")
    assert [(a.outcome, a.code) for a in attempts] == [
        ("transient", "TooManyRequestsException"),
        ("sent", "200"),
    ]
