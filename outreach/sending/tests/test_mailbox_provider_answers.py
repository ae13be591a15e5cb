"""Google Workspace's and Microsoft 365's SMTP answers, replayed by a real SMTP server, and
what the engine makes of each: back off, stop the mailbox, cool it down, or bounce."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from outreach.alerts.models import Alert
from outreach.campaigns.models import Message
from outreach.campaigns.suppression import is_suppressed
from outreach.events.models import Event
from outreach.lib import clock
from outreach.pool.models import Mailbox
from outreach.providers.smtp.testserver import SmtpTestServer
from outreach.sending.engine import send_due
from outreach.sending.models import ProviderCircuit, SendAttempt
from outreach.sending.tests.helpers import claimed_campaign_messages, smtp_account

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _pinned_clock(settings: object) -> None:
    settings.OUTREACH_BASE_URL = "https://outreach.example.com"  # type: ignore[attr-defined]
    clock.set_now(T0)


@pytest.mark.parametrize(
    ("reply", "rest"),
    [
        ("421 4.7.0 Try again later, closing connection.", timedelta(minutes=15)),
        ("432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded", timedelta(minutes=1)),
        ("550 5.4.5 Daily user sending limit exceeded.", timedelta(hours=24)),
        (
            "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; "
            "Failed to process message due to a permanent exception",
            timedelta(hours=24),
        ),
    ],
)
def test_it_rests_a_mailbox_its_provider_rate_limits_and_sends_later(
    smtp_server: SmtpTestServer, ca_file: Path, reply: str, rest: timedelta
) -> None:
    account = smtp_account("workspace", smtp_server.port, ca_file)
    (message,) = claimed_campaign_messages(1, provider=account)
    smtp_server.handler.data_faults.append(reply)

    send_due()

    message.refresh_from_db()
    mailbox = Mailbox.objects.get(pk=message.mailbox_id or 0)
    assert message.state == Message.State.RETRY
    assert message.not_before is not None and message.not_before >= T0 + rest
    assert mailbox.next_send_at == T0 + rest  # the router gives it nothing new meanwhile
    assert mailbox.state == Mailbox.State.ACTIVE
    # One mailbox's limit is not the account being down: no failover.
    assert not ProviderCircuit.objects.filter(failures__gt=0).exists()
    assert not Event.objects.exists()

    clock.advance(rest + timedelta(minutes=1))
    send_due()
    message.refresh_from_db()
    assert message.state == Message.State.SENT
    assert len(smtp_server.received) == 1


@pytest.mark.parametrize(
    "reply",
    [
        "554 5.2.0 STOREDRV.Submission.Exception:OutboundSpamException; WASCL UserAction "
        "verdict is not None. Actual verdict is Suspend, ShowTierUpgrade.",
        "550 5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail "
        "requires all senders to authenticate with either SPF or DKIM.",
        "550 5.7.1 [192.0.2.1] Our system has detected that this message is likely "
        "unsolicited mail.",
    ],
)
def test_it_records_a_block_that_cools_the_mailbox_down(
    smtp_server: SmtpTestServer, ca_file: Path, reply: str
) -> None:
    from outreach.alerts.rules import evaluate_pool

    account = smtp_account("m365", smtp_server.port, ca_file)
    (message,) = claimed_campaign_messages(1, provider=account)
    smtp_server.handler.data_faults.append(reply)

    send_due()
    evaluate_pool()

    message.refresh_from_db()
    # Not sent and not the lead's fault: the message goes back to the router for another mailbox.
    assert message.state == Message.State.SCHEDULED
    attempt = SendAttempt.objects.get(message=message)
    assert attempt.outcome == "blocked"
    assert Event.objects.get(message=message).type == "blocked"
    mailbox = Mailbox.objects.get(pk=attempt.mailbox_id)
    assert mailbox.state == Mailbox.State.COOLDOWN
    assert Alert.objects.filter(kind="mailbox_cooldown").count() == 1
    assert not is_suppressed(message.to_email)


@pytest.mark.parametrize(
    "reply",
    [
        "535 5.7.3 Authentication unsuccessful [DB8PR09CA0123.eurprd09.prod.outlook.com]",
        "535 5.7.8 Username and Password not accepted. For more information, go to "
        "https://support.google.com/mail/?p=BadCredentials",
        "550 5.7.30 Basic authentication is not supported for Client Submission.",
    ],
)
def test_it_stops_a_mailbox_whose_login_is_refused_with_one_alert_and_reroutes_its_messages(
    smtp_server: SmtpTestServer, ca_file: Path, reply: str
) -> None:
    account = smtp_account("m365", smtp_server.port, ca_file)
    messages = claimed_campaign_messages(3, provider=account)
    smtp_server.handler.auth_fault = reply

    send_due()

    mailbox = Mailbox.objects.get()
    assert mailbox.state == Mailbox.State.PAUSED
    assert mailbox.auth_failed_at == T0
    assert reply.split(" ", 1)[1][:20] in mailbox.auth_error
    (alert,) = Alert.objects.filter(kind="mailbox_paused")
    assert mailbox.address in alert.text
    assert "outreach mailbox connect" in alert.text or "SMTP AUTH" in alert.text
    # Nothing went out, nothing is lost, nothing counts as a bounce.
    assert smtp_server.received == []
    for message in messages:
        message.refresh_from_db()
    assert {m.state for m in messages} <= {Message.State.SCHEDULED, Message.State.CLAIMED}
    assert not Event.objects.filter(type="bounced").exists()
    assert not SendAttempt.objects.exclude(outcome="auth_failed").exists()


def test_it_bounces_a_recipient_microsoft_does_not_know(
    smtp_server: SmtpTestServer, ca_file: Path
) -> None:
    account = smtp_account("m365", smtp_server.port, ca_file)
    (message,) = claimed_campaign_messages(1, provider=account)
    smtp_server.handler.rcpt_faults[message.to_email] = (
        "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"
    )

    send_due()

    message.refresh_from_db()
    assert message.state == Message.State.FAILED
    assert is_suppressed(message.to_email)
    assert Event.objects.get(message=message).bounce_type == "hard"
