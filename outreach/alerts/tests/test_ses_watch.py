"""SES account watch: GetAccount through botocore's Stubber, alerts, and the failover it feeds."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from outreach.alerts import ses_watch
from outreach.alerts.models import Alert, ProviderHealth
from outreach.pool.models import ProviderAccount
from outreach.testing import make_provider

pytestmark = pytest.mark.django_db


def _account_response(
    *,
    enabled: bool = True,
    status: str = "HEALTHY",
    sent: float = 1200.0,
    max_24h: float = 50000.0,
    rate: float = 14.0,
) -> dict[str, Any]:
    """A GetAccount answer as SES v2 documents it."""
    return {
        "DedicatedIpAutoWarmupEnabled": False,
        "EnforcementStatus": status,
        "ProductionAccessEnabled": True,
        "SendQuota": {"Max24HourSend": max_24h, "MaxSendRate": rate, "SentLast24Hours": sent},
        "SendingEnabled": enabled,
        "SuppressionAttributes": {"SuppressedReasons": ["BOUNCE", "COMPLAINT"]},
        "Details": {
            "MailType": "MARKETING",
            "WebsiteURL": "https://example.com",
            "ContactLanguage": "EN",
            "UseCaseDescription": "B2B outreach",
            "ReviewDetails": {"Status": "GRANTED", "CaseId": "12345"},
        },
    }


def _client(*responses: dict[str, Any]) -> Any:
    client = boto3.client(
        "sesv2", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    stubber = Stubber(client)
    for response in responses:
        stubber.add_response("get_account", response, {})
    stubber.activate()
    return client


@pytest.fixture
def ses(noon: Any) -> ProviderAccount:
    standby = make_provider("mailgun-standby", kind="mailgun")
    return make_provider("ses-main", kind="ses", standby=standby, settings={"region": "eu-west-1"})


def test_it_finds_a_healthy_account_healthy_and_tracks_its_send_rate(ses: ProviderAccount) -> None:
    health = ses_watch.check_account(ses, _client(_account_response(rate=28.0)))

    assert health.healthy and health.problems == []
    assert health.quota_used == pytest.approx(0.024)
    assert ProviderHealth.objects.get(provider_account=ses).healthy
    ses.refresh_from_db()
    assert ses.max_send_rate == 28.0
    assert not Alert.objects.exists()
    assert ses_watch.is_healthy(ses)


def test_it_alerts_and_fails_over_when_the_account_goes_to_probation(
    ses: ProviderAccount,
) -> None:
    from outreach.lib import clock
    from outreach.sending import circuit, engine

    health = ses_watch.check_account(ses, _client(_account_response(status="PROBATION")))

    assert not health.healthy
    assert health.problems == ["enforcement status PROBATION"]
    assert not ses_watch.is_healthy(ses)
    alerts = Alert.objects.filter(kind="provider_problem")
    assert any("PROBATION" in a.text and a.severity == "critical" for a in alerts)

    # The sending engine reads the stored health: the circuit opens, sends go to the standby.
    engine.sync_provider_health()
    assert circuit.Router(clock.now()).route(ses) == ses.standby

    # The same problem on the next check is not alerted again within the quiet period.
    ses_watch.check_account(ses, _client(_account_response(status="PROBATION")))
    assert Alert.objects.filter(text__startswith="🚨 SES", kind="provider_problem").count() == 1

    # Back to healthy: an all-clear.
    ses_watch.check_account(ses, _client(_account_response()))
    assert ses_watch.is_healthy(ses)
    assert Alert.objects.filter(kind="provider_recovered", text__contains="SES").count() == 1


def test_it_treats_disabled_sending_and_shutdown_as_unhealthy(ses: ProviderAccount) -> None:
    off = ses_watch.check_account(ses, _client(_account_response(enabled=False)))
    assert not off.healthy and "sending disabled" in off.problems[0]
    shut = ses_watch.check_account(ses, _client(_account_response(status="SHUTDOWN")))
    assert shut.problems == ["enforcement status SHUTDOWN"]


def test_it_warns_at_80_percent_of_the_daily_quota_and_fails_over_at_95(
    ses: ProviderAccount,
) -> None:
    warn = ses_watch.check_account(ses, _client(_account_response(sent=40000.0)))
    assert warn.healthy
    [alert] = Alert.objects.filter(text__contains="quota")
    assert "80%" in alert.text and alert.severity == "warning"

    full = ses_watch.check_account(ses, _client(_account_response(sent=48000.0)))
    assert not full.healthy and "quota 96% used" in full.problems[0]
    assert Alert.objects.filter(text__contains="quota", severity="warning").count() == 1
