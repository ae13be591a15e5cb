"""A message refused at SMTP time is an attempt and a hard bounce: it counts in the bounce rate,
in its minimum sample and in the digest, and a mailbox that cannot deliver at all is stopped."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from outreach.alerts import digest
from outreach.alerts.models import Alert
from outreach.campaigns.models import Message
from outreach.lib import clock
from outreach.metrics import rollups
from outreach.pool.models import Mailbox, StateChange
from outreach.providers.smtp.testserver import SmtpTestServer
from outreach.sending.engine import send_due
from outreach.sending.tests.helpers import claimed_campaign_messages
from outreach.testing import make_provider

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)  # a Tuesday
PER_MAILBOX = 24


def test_it_stops_a_mailbox_whose_every_recipient_is_refused(sink: SmtpTestServer) -> None:
    clock.set_now(T0)
    sink.handler.rcpt_fault_all = "550 5.1.1 <x@prospect.example.org>: user unknown"
    account = make_provider(
        "sink",
        kind="smtp",
        settings={"host": "127.0.0.1", "port": sink.port, "security": "none", "timeout": 5},
    )
    messages = claimed_campaign_messages(
        2 * PER_MAILBOX, provider=account, mailboxes_per_domain=2, steps=1
    )

    while send_due():
        pass

    assert sink.received == []
    assert Message.objects.filter(pk__in=[m.pk for m in messages], state="sent").count() == 0
    for mailbox in Mailbox.objects.all():
        assert mailbox.state == Mailbox.State.PAUSED
        change = StateChange.objects.filter(mailbox=mailbox).latest("at")
        assert change.actor == "rule:bounce_rate"
        assert "cannot deliver" in change.reason
        # The figures of the audit log count the refusals as attempts and hard bounces.
        assert change.figures["sent"] == 0
        assert change.figures["attempts"] >= 20
        assert change.figures["refused"] == change.figures["attempts"]
        # A batch's refusals are judged as their bounces are recorded: the pause came as soon
        # as they were evidence enough.
        assert change.figures["bounced_hard"] >= 3
        # The window's figures and the digest count every refusal as an attempt and a bounce.
        figures = rollups.window_figures(days=1, mailbox_id=mailbox.pk)
        assert (figures.sent, figures.bounce_rate) == (0, 1.0)
        assert figures.attempts == figures.refused == figures.bounced_hard >= 20

    # The pause alerts name the refusals.
    paused = Alert.objects.filter(kind="mailbox_paused")
    assert paused.count() == 2
    assert all("sent 0 · refused " in alert.text for alert in paused)

    text = digest.build(T0.date())
    refused = rollups.window_figures(days=1).refused
    assert refused >= 40
    assert f"0 sent · {refused} refused · 100.0% bounced" in text.splitlines()[0]
    assert " 0.0% bounced" not in text
