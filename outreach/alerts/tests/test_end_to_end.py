"""The seed's scenarios end to end: Postmark webhooks posted over real HTTP to the app, the
events collector storing them, the health rules acting, the sending worker refusing."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
import requests

from outreach.alerts import rules
from outreach.alerts.models import Alert
from outreach.alerts.tests.conftest import Pool, send
from outreach.campaigns.models import Message
from outreach.lib import clock
from outreach.pool.models import Mailbox

pytestmark = pytest.mark.django_db(transaction=True)
AUTH = ("outreach", "hook-secret")
URL = "/webhooks/postmark/tracking/"


@pytest.fixture(autouse=True)
def _webhook_secret(settings: Any) -> None:
    settings.ANYMAIL = {"WEBHOOK_SECRET": [f"{AUTH[0]}:{AUTH[1]}"]}


def _postmark(record_type: str, message: Message, n: int) -> dict[str, Any]:
    """A Postmark bounce or spam-complaint webhook as Postmark documents it."""
    complaint = record_type == "SpamComplaint"
    return {
        "RecordType": "SpamComplaint" if complaint else "Bounce",
        "MessageStream": "outbound",
        "ID": 4323372036854775000 + n,
        "Type": "SpamComplaint" if complaint else "HardBounce",
        "TypeCode": 512 if complaint else 1,
        "Name": "Spam complaint" if complaint else "Hard bounce",
        "Tag": "outreach",
        "MessageID": message.provider_message_id,
        "Metadata": {"outreach_message_id": str(message.pk)},
        "ServerID": 23,
        "Description": "" if complaint else "The server was unable to deliver your message.",
        "Details": "Test spam complaint details"
        if complaint
        else "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": message.to_email,
        "From": message.mailbox.address if message.mailbox else "",
        "BouncedAt": clock.now().isoformat().replace("+00:00", "Z"),
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": not complaint,
        "Subject": "Quick question",
    }


def _post(live_server: Any, payload: dict[str, Any]) -> None:
    response = requests.post(live_server.url + URL, json=payload, auth=AUTH, timeout=10)
    assert response.status_code == 200, response.text


def _claimed(mailbox: Mailbox) -> Message:
    """A message the scheduler has claimed on ``mailbox``, waiting for a worker."""
    now = clock.now()
    return Message.objects.create(
        to_email="next@prospect.example.org",
        to_domain="prospect.example.org",
        mailbox=mailbox,
        provider_account=mailbox.provider_account,
        state=Message.State.CLAIMED,
        claimed_by="scheduler",
        lease_expires_at=now + timedelta(minutes=10),
        quota_day=now.date(),
    )


def test_it_stops_a_mailbox_the_moment_a_complaint_webhook_is_accepted(
    live_server: Any, pool: Pool
) -> None:
    from outreach.sending.take import take_batch

    mailbox = pool.mailboxes[0]
    complained_about = send(mailbox, 10, campaign=pool.campaign)[4]
    waiting = _claimed(mailbox)

    started = time.perf_counter()
    _post(live_server, _postmark("SpamComplaint", complained_about, 1))
    taken = take_batch("worker-1", clock.now(), limit=10)
    elapsed = time.perf_counter() - started

    assert taken == []  # the claimed message stays where it is: nothing more leaves
    waiting.refresh_from_db()
    assert waiting.state == Message.State.CLAIMED
    mailbox.refresh_from_db()
    assert mailbox.state == Mailbox.State.PAUSED
    [alert] = Alert.objects.filter(kind="mailbox_paused", text__contains=mailbox.address)
    assert "spam complaint" in alert.text and "sent 10 · bounces 0.0%" in alert.text
    # Reported in the closing note: webhook accepted -> worker refuses the mailbox.
    print(f"\ncomplaint webhook -> mailbox unable to send: {elapsed * 1000:.1f} ms")


def test_it_warns_past_three_percent_and_pauses_past_five_from_bounce_webhooks(
    live_server: Any, pool: Pool
) -> None:
    mailbox = pool.mailboxes[0]
    messages = send(mailbox, 200, campaign=pool.campaign)

    for n in range(7):  # 7 of 200: evidence of more than 3%, not yet of more than 5%
        _post(live_server, _postmark("Bounce", messages[n], n))
    mailbox.refresh_from_db()
    assert mailbox.state == Mailbox.State.ACTIVE
    assert Alert.objects.filter(kind="bounce_warning").count() == 1

    _post(live_server, _postmark("Bounce", messages[7], 7))  # 8 of 200
    mailbox.refresh_from_db()
    assert mailbox.state == Mailbox.State.PAUSED
    change = mailbox.state_changes.get()
    assert change.actor == "rule:bounce_rate"
    assert (change.figures["bounced_hard"], change.figures["attempts"]) == (8, 200)
    assert Alert.objects.filter(kind="bounce_warning").count() == 1


def test_it_rewarms_a_blocked_mailbox_after_14_days_of_cooldown(
    live_server: Any, pool: Pool
) -> None:
    from outreach.sending.take import take_batch

    mailbox = pool.mailboxes[0]
    message = send(mailbox, 1)[0]
    payload = _postmark("Bounce", message, 1)
    # A policy rejection reported as a bounce: 5.7.1 and "blocked" make it a block.
    payload["Details"] = "smtp;554 5.7.1 Service unavailable; client host blocked using Spamhaus"
    _post(live_server, payload)

    mailbox.refresh_from_db()
    assert mailbox.state == Mailbox.State.COOLDOWN
    _claimed(mailbox)
    assert take_batch("worker-1", clock.now(), limit=10) == []

    clock.advance(timedelta(days=14, minutes=1))
    rules.periodic_pass()
    mailbox.refresh_from_db()
    assert mailbox.state == Mailbox.State.WARMING
    assert mailbox.warmup_start_day == 8
