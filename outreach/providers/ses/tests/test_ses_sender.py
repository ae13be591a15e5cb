"""SES v2 through botocore's Stubber: the requests we make and the documented answers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from botocore.stub import Stubber

from outreach.providers.base import Envelope, Outcome, SendError
from outreach.providers.ses.sender import SesProvider, health_from_account

RAW = b"From: a@send1.example.com\r\nTo: b@prospect.example.org\r\nSubject: hi\r\n\r\nhello\r\n"
ENVELOPE = Envelope(sender="a@send1.example.com", recipient="b@prospect.example.org", message_id=7)


@pytest.fixture
def ses() -> Iterator[tuple[SesProvider, Stubber]]:
    provider = SesProvider(
        {"region": "eu-west-1", "configuration_set": "outreach-events"},
        {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "example-secret"},
    )
    with Stubber(provider.client) as stubber:
        yield provider, stubber
        stubber.assert_no_pending_responses()


def test_it_sends_raw_content_with_the_configuration_set_and_a_tag(
    ses: tuple[SesProvider, Stubber],
) -> None:
    provider, stubber = ses
    stubber.add_response(
        "send_email",
        {"MessageId": "0102018e0f1c2d3e-1a2b3c4d-5e6f-7a8b-9c0d-ef1234567890-000000"},
        {
            "FromEmailAddress": "a@send1.example.com",
            "Destination": {"ToAddresses": ["b@prospect.example.org"]},
            "Content": {"Raw": {"Data": RAW}},
            "EmailTags": [{"Name": "outreach_message", "Value": "7"}],
            "ConfigurationSetName": "outreach-events",
        },
    )

    result = provider.send(RAW, ENVELOPE)

    assert result.provider_message_id.startswith("0102018e0f1c2d3e-")


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("TooManyRequestsException", 429, Outcome.TRANSIENT),
        ("LimitExceededException", 400, Outcome.TRANSIENT),
        ("SendingPausedException", 400, Outcome.TRANSIENT),
        ("InternalFailure", 500, Outcome.TRANSIENT),
        ("MessageRejected", 400, Outcome.PERMANENT),
        ("MailFromDomainNotVerifiedException", 400, Outcome.PERMANENT),
        ("AccountSuspendedException", 400, Outcome.AUTH_FAILED),
        ("UnrecognizedClientException", 403, Outcome.AUTH_FAILED),
    ],
)
def test_it_classifies_ses_errors(
    ses: tuple[SesProvider, Stubber], code: str, status: int, kind: Outcome
) -> None:
    provider, stubber = ses
    stubber.add_client_error(
        "send_email", service_error_code=code, service_message="documented", http_status_code=status
    )

    with pytest.raises(SendError) as raised:
        provider.send(RAW, ENVELOPE)

    assert raised.value.kind == kind
    assert raised.value.code == code


def test_it_reads_a_healthy_account(ses: tuple[SesProvider, Stubber]) -> None:
    provider, stubber = ses
    stubber.add_response(
        "get_account",
        {
            "DedicatedIpAutoWarmupEnabled": False,
            "EnforcementStatus": "HEALTHY",
            "ProductionAccessEnabled": True,
            "SendQuota": {"Max24HourSend": 50000.0, "MaxSendRate": 14.0, "SentLast24Hours": 1200.0},
            "SendingEnabled": True,
            "SuppressionAttributes": {"SuppressedReasons": ["BOUNCE", "COMPLAINT"]},
        },
    )

    health = provider.check_health()

    assert health.healthy
    assert health.max_send_rate == 14.0
    assert health.figures["sent_last_24_hours"] == 1200.0


@pytest.mark.parametrize(
    ("account", "problem"),
    [
        ({"SendingEnabled": False, "EnforcementStatus": "HEALTHY"}, "SendingEnabled is false"),
        ({"SendingEnabled": True, "EnforcementStatus": "PROBATION"}, "PROBATION"),
        ({"SendingEnabled": True, "EnforcementStatus": "SHUTDOWN"}, "SHUTDOWN"),
        (
            {
                "SendingEnabled": True,
                "EnforcementStatus": "HEALTHY",
                "SendQuota": {"Max24HourSend": 200.0, "MaxSendRate": 1.0, "SentLast24Hours": 195.0},
            },
            "quota nearly used",
        ),
    ],
)
def test_it_reports_an_unhealthy_account(account: dict[str, object], problem: str) -> None:
    health = health_from_account(account)
    assert not health.healthy
    assert problem in health.reason
