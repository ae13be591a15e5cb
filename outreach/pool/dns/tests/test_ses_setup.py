"""`outreach ses setup` through boto3's sesv2 client with botocore's Stubber."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from io import StringIO
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from django.core.management import call_command
from django.core.management.base import CommandError

from outreach.pool.dns.spec import build_spec
from outreach.pool.management.commands.ses import Command
from outreach.pool.models import Domain, ProviderAccount, SesIdentity
from outreach.pool.ses_setup import EVENT_TYPES
from outreach.testing import make_provider

pytestmark = pytest.mark.django_db

NAME = "send2.example.com"
TOKENS = [
    "abcdefghijklmnopqrstuvwxyz234567",
    "bcdefghijklmnopqrstuvwxyz234567a",
    "cdefghijklmnopqrstuvwxyz234567ab",
]
TOPIC = "arn:aws:sns:eu-west-1:123456789012:outreach-ses-events"
DKIM = {
    "SigningEnabled": True,
    "Status": "PENDING",
    "Tokens": TOKENS,
    "SigningAttributesOrigin": "AWS_SES",
    "NextSigningKeyLength": "RSA_2048_BIT",
    "CurrentSigningKeyLength": "RSA_2048_BIT",
    "LastKeyGenerationTimestamp": datetime(2026, 11, 1, tzinfo=UTC),
}


@pytest.fixture
def domain() -> Domain:
    provider = make_provider(
        "ses-eu",
        kind=ProviderAccount.Kind.SES,
        settings={"region": "eu-west-1", "configuration_set": "cold"},
    )
    return Domain.objects.create(name=NAME, provider=provider)


@pytest.fixture
def stubber(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    client = boto3.client(
        "sesv2", region_name="eu-west-1", aws_access_key_id="AKIDTEST", aws_secret_access_key="x"
    )
    monkeypatch.setattr(Command, "client", lambda self, account, region: client)
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


def setup(*args: str) -> str:
    out = StringIO()
    call_command("ses", "setup", NAME, *args, stdout=out)
    return out.getvalue()


def expect_configuration_set(stub: Stubber, exists: bool) -> None:
    params: dict[str, Any] = {
        "ConfigurationSetName": "cold",
        "ReputationOptions": {"ReputationMetricsEnabled": True},
        "SendingOptions": {"SendingEnabled": True},
    }
    destination = {
        "ConfigurationSetName": "cold",
        "EventDestinationName": "outreach-webhooks",
        "EventDestination": {
            "Enabled": True,
            "MatchingEventTypes": EVENT_TYPES,
            "SnsDestination": {"TopicArn": TOPIC},
        },
    }
    if exists:
        stub.add_client_error(
            "create_configuration_set", "AlreadyExistsException", 400, expected_params=params
        )
        stub.add_client_error(
            "create_configuration_set_event_destination",
            "AlreadyExistsException",
            400,
            expected_params=destination,
        )
    else:
        stub.add_response("create_configuration_set", {}, params)
        stub.add_response("create_configuration_set_event_destination", {}, destination)


def test_it_creates_the_identity_mail_from_and_event_destination(
    stubber: Stubber, domain: Domain
) -> None:
    expect_configuration_set(stubber, exists=False)
    stubber.add_client_error(
        "get_email_identity", "NotFoundException", 404, expected_params={"EmailIdentity": NAME}
    )
    stubber.add_response(
        "create_email_identity",
        {"IdentityType": "DOMAIN", "VerifiedForSendingStatus": False, "DkimAttributes": DKIM},
        {"EmailIdentity": NAME, "ConfigurationSetName": "cold"},
    )
    stubber.add_response(
        "put_email_identity_mail_from_attributes",
        {},
        {
            "EmailIdentity": NAME,
            "MailFromDomain": f"bounce.{NAME}",
            "BehaviorOnMxFailure": "USE_DEFAULT_VALUE",
        },
    )
    out = setup("--sns-topic-arn", TOPIC)
    assert f"{TOKENS[0]}._domainkey.{NAME} → {TOKENS[0]}.dkim.amazonses.com" in out
    identity = SesIdentity.objects.get(domain=domain)
    assert identity.dkim_tokens == TOKENS and identity.mail_from == f"bounce.{NAME}"
    assert (identity.region, identity.configuration_set) == ("eu-west-1", "cold")
    # What SES needs in DNS flows into the checks and the Cloudflare plan.
    spec = build_spec(domain)
    assert spec.ses_dkim_tokens == TOKENS
    assert spec.mail_from_mx == "feedback-smtp.eu-west-1.amazonses.com"
    assert spec.spf_includes == ["amazonses.com"]


def test_it_changes_nothing_when_everything_is_already_set_up(
    stubber: Stubber, domain: Domain
) -> None:
    expect_configuration_set(stubber, exists=True)
    stubber.add_response(
        "get_email_identity",
        {
            "IdentityType": "DOMAIN",
            "FeedbackForwardingStatus": True,
            "VerifiedForSendingStatus": True,
            "DkimAttributes": {**DKIM, "Status": "SUCCESS"},
            "MailFromAttributes": {
                "MailFromDomain": f"bounce.{NAME}",
                "MailFromDomainStatus": "SUCCESS",
                "BehaviorOnMxFailure": "USE_DEFAULT_VALUE",
            },
            "Policies": {},
            "Tags": [],
            "ConfigurationSetName": "cold",
            "VerificationStatus": "SUCCESS",
        },
        {"EmailIdentity": NAME},
    )
    out = setup("--sns-topic-arn", TOPIC)
    assert "exists" in out and "created" not in out
    identity = SesIdentity.objects.get(domain=domain)
    assert identity.verified_for_sending and identity.dkim_status == "SUCCESS"
    assert identity.mail_from_status == "SUCCESS"


def test_it_attaches_the_configuration_set_to_an_existing_identity(
    stubber: Stubber, domain: Domain
) -> None:
    stubber.add_response(
        "create_configuration_set",
        {},
        {
            "ConfigurationSetName": "cold",
            "ReputationOptions": {"ReputationMetricsEnabled": True},
            "SendingOptions": {"SendingEnabled": True},
        },
    )
    stubber.add_response(
        "get_email_identity",
        {"IdentityType": "DOMAIN", "VerifiedForSendingStatus": True, "DkimAttributes": DKIM},
        {"EmailIdentity": NAME},
    )
    stubber.add_response(
        "put_email_identity_configuration_set_attributes",
        {},
        {"EmailIdentity": NAME, "ConfigurationSetName": "cold"},
    )
    stubber.add_response(
        "put_email_identity_mail_from_attributes",
        {},
        {
            "EmailIdentity": NAME,
            "MailFromDomain": f"mail.{NAME}",
            "BehaviorOnMxFailure": "USE_DEFAULT_VALUE",
        },
    )
    out = setup("--mail-from", f"mail.{NAME}")
    assert "no SNS topic given" in out
    assert SesIdentity.objects.get(domain=domain).mail_from == f"mail.{NAME}"


def test_it_refuses_a_domain_that_does_not_send_through_ses(domain: Domain) -> None:
    Domain.objects.create(name="smtp.example.com", provider=make_provider("box", kind="smtp"))
    with pytest.raises(CommandError, match="not SES"):
        call_command("ses", "setup", "smtp.example.com", stdout=StringIO())
    with pytest.raises(CommandError, match="subdomain"):
        call_command("ses", "setup", NAME, "--mail-from", "bounce.other.org", stdout=StringIO())
