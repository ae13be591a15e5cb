"""Provider webhooks over real HTTP: payloads as documented, signatures, effects, bad input."""

from __future__ import annotations

import base64
import io
import json
from datetime import timedelta
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.management import call_command
from django.db import OperationalError

from outreach.campaigns.models import Enrollment, Message, Suppression
from outreach.campaigns.suppression import is_suppressed
from outreach.events import sns, webhooks
from outreach.events.models import DeadLetter, Event, RefusedWebhook, SeenToken
from outreach.events.tests.conftest import (
    MAILGUN_KEY,
    TOPIC_ARN,
    WEBHOOK_AUTH,
    SnsServer,
    mailgun_failed,
    make_sent_message,
    postmark_bounce,
    postmark_delivery,
    postmark_spam_complaint,
    postmark_subscription_change,
    sendgrid_events,
    ses_bounce,
    ses_complaint,
    ses_delivery,
    sns_headers,
    sns_notification,
)
from outreach.lib import clock
from outreach.pool.models import Mailbox, StateChange

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("webhook_settings")]

SES_URL = "/webhooks/amazon_ses/tracking/"
MAILGUN_URL = "/webhooks/mailgun/tracking/"
POSTMARK_URL = "/webhooks/postmark/tracking/"
SENDGRID_URL = "/webhooks/sendgrid/tracking/"


def post_sns(
    server: Any, message: dict[str, Any], auth: Any = WEBHOOK_AUTH, **headers: str
) -> requests.Response:
    return requests.post(
        server.url + SES_URL,
        data=json.dumps(message).encode(),
        headers={**sns_headers(message), **headers},
        auth=auth,
        timeout=10,
    )


def post_json(server: Any, path: str, payload: Any, **kwargs: Any) -> requests.Response:
    kwargs.setdefault("auth", WEBHOOK_AUTH)
    return requests.post(server.url + path, json=payload, timeout=10, **kwargs)


def test_it_stores_an_ses_event_publishing_bounce_and_suppresses_the_address(
    live_server: Any, sns_server: SnsServer
) -> None:
    sent = make_sent_message()
    message = sns_server.sign(
        sns_notification(
            ses_bounce(
                sent.message.to_email, sent.message.provider_message_id, event_publishing=True
            )
        )
    )

    response = post_sns(live_server, message)

    assert response.status_code == 200, response.text
    event = Event.objects.get()
    assert (event.type, event.bounce_type, event.source) == ("bounced", "hard", "ses")
    assert event.message_id == sent.message.pk and not event.unmatched
    assert event.mailbox_id == sent.message.mailbox_id
    assert "5.1.1" in event.diagnostic
    assert event.raw["bounce"]["bounceType"] == "Permanent"
    assert is_suppressed(sent.message.to_email)
    sent.enrollment.refresh_from_db()
    assert sent.enrollment.state == Enrollment.State.STOPPED
    assert sent.enrollment.stop_reason == Enrollment.StopReason.BOUNCE


def test_it_verifies_signature_version_2_and_finds_the_message_by_its_header(
    live_server: Any, sns_server: SnsServer
) -> None:
    sent = make_sent_message(provider_message_id="")
    notification = ses_delivery(sent.message.to_email, "unknown-ses-id", pk=sent.message.pk)
    message = sns_server.sign(
        sns_notification(notification, subject="Amazon SES Email Event Notification"),
        version="2",
    )

    response = post_sns(live_server, message)

    assert response.status_code == 200, response.text
    event = Event.objects.get()
    assert event.type == "delivered" and event.message_id == sent.message.pk


def test_it_acknowledges_a_repeated_notification_and_stores_it_once(
    live_server: Any, sns_server: SnsServer
) -> None:
    sent = make_sent_message()
    message = sns_server.sign(
        sns_notification(ses_delivery(sent.message.to_email, sent.message.provider_message_id))
    )

    first = post_sns(live_server, message)
    second = post_sns(live_server, message)

    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["stored"] == 1
    assert second.json() == {"status": "ok", "stored": 0, "duplicates": 1}
    assert Event.objects.count() == 1
    # The certificate was fetched once and then cached.
    assert len(sns_server.fetches) == 1


def test_it_pauses_the_sending_mailbox_at_once_on_a_complaint(
    live_server: Any, sns_server: SnsServer
) -> None:
    sent = make_sent_message()
    message = sns_server.sign(
        sns_notification(ses_complaint(sent.message.to_email, sent.message.provider_message_id))
    )

    response = post_sns(live_server, message)

    assert response.status_code == 200, response.text
    mailbox = Mailbox.objects.get(address="rep1@send1.example.com")
    assert mailbox.state == Mailbox.State.PAUSED
    change = StateChange.objects.get(mailbox=mailbox)
    assert change.actor == "rule:complaint" and change.to_state == "paused"
    # The health rule paused it (its figures), within the webhook's own transaction.
    assert change.figures["complained"] == 1
    assert Suppression.objects.get(value=sent.message.to_email).source == "complaint"
    sent.enrollment.refresh_from_db()
    assert sent.enrollment.stop_reason == Enrollment.StopReason.COMPLAINT


def test_it_treats_the_third_soft_bounce_to_an_address_as_hard(
    live_server: Any, sns_server: SnsServer
) -> None:
    sent = make_sent_message()
    for attempt in range(3):
        assert not is_suppressed(sent.message.to_email), attempt
        message = sns_server.sign(
            sns_notification(
                ses_bounce(
                    sent.message.to_email,
                    sent.message.provider_message_id,
                    bounce_type="Transient",
                    event_publishing=False,
                )
            )
        )
        assert post_sns(live_server, message).status_code == 200

    assert Event.objects.filter(bounce_type="soft").count() == 3
    assert is_suppressed(sent.message.to_email)
    assert "3 soft bounces" in Suppression.objects.get().reason


def test_it_stores_an_event_for_an_unknown_message_flagged_unmatched(
    live_server: Any, sns_server: SnsServer
) -> None:
    message = sns_server.sign(
        sns_notification(
            ses_bounce("stranger@elsewhere.example", "no-such-id", event_publishing=True)
        )
    )

    assert post_sns(live_server, message).status_code == 200

    event = Event.objects.get()
    assert event.unmatched and event.message is None
    assert is_suppressed("stranger@elsewhere.example")


def test_it_confirms_an_sns_subscription(live_server: Any, sns_server: SnsServer) -> None:
    subscribe_url = f"{sns_server.base_url}/?Action=ConfirmSubscription&Token=2336412f37"
    message = sns_server.sign(
        {
            "Type": "SubscriptionConfirmation",
            "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
            "Token": "2336412f37",
            "TopicArn": TOPIC_ARN,
            "Message": f"You have chosen to subscribe to the topic {TOPIC_ARN}.",
            "SubscribeURL": subscribe_url,
            "Timestamp": "2026-11-28T03:00:00.000Z",
        }
    )

    response = post_sns(live_server, message)

    assert response.status_code == 200, response.text
    assert sns_server.confirmations == ["/?Action=ConfirmSubscription&Token=2336412f37"]


# Each case in one test: one live server database flush instead of four.
SNS_TAMPERING = {
    "certificate-on-another-host": {
        "SigningCertURL": "https://evil.example.com/SimpleNotificationService-x.pem"
    },
    "altered-message": {"Message": '{"notificationType": "Complaint"}'},
    "unknown-version": {"SignatureVersion": "3"},
    "garbage": {"Signature": "not base64 !"},
}


def test_it_refuses_sns_messages_that_are_not_provably_from_sns(
    live_server: Any, sns_server: SnsServer
) -> None:
    sent = make_sent_message()
    for case, tamper in SNS_TAMPERING.items():
        message = sns_server.sign(
            sns_notification(ses_delivery(sent.message.to_email, sent.message.provider_message_id))
        )
        message.update(tamper)

        response = post_sns(live_server, message)

        assert response.status_code == 403, case
    assert Event.objects.count() == 0
    # Refused for its signature: counted, never kept.
    assert DeadLetter.objects.count() == 0
    assert RefusedWebhook.objects.get().count == len(SNS_TAMPERING)


def test_it_fetches_sns_certificates_only_from_sns_endpoints() -> None:
    allowed = sns.aws_certificate_url
    assert allowed("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem")
    assert allowed("https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-a.pem")
    for url in [
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.us-east-1.amazonaws.com.evil.com/x.pem",
        "https://evil.com/sns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com:8443/x.pem",
        "https://user@sns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com/x.txt",
        "https://s3.us-east-1.amazonaws.com/x.pem",
        "https://127.0.0.1/x.pem",
    ]:
        assert not allowed(url), url


def test_it_asks_for_the_shared_secret_and_accepts_a_rotated_one(
    live_server: Any, sns_server: SnsServer
) -> None:
    sent = make_sent_message()

    def fresh() -> dict[str, Any]:
        return sns_server.sign(
            sns_notification(ses_delivery(sent.message.to_email, sent.message.provider_message_id))
        )

    missing = post_sns(live_server, fresh(), auth=None)
    wrong = post_sns(live_server, fresh(), auth=("outreach", "guess"))
    rotated = post_sns(live_server, fresh(), auth=("old", "rotated-secret"))

    assert missing.status_code == 401 and "Basic" in missing.headers["WWW-Authenticate"]
    assert wrong.status_code == 403
    assert rotated.status_code == 200
    assert Event.objects.count() == 1


def test_it_stores_a_signed_mailgun_failure_once_and_acknowledges_its_repeat(
    live_server: Any,
) -> None:
    sent = make_sent_message(provider_message_id="<20261128030000.1.ABCD@send1.example.com>")
    payload = mailgun_failed(sent.message.to_email, "20261128030000.1.ABCD@send1.example.com")

    first = post_json(live_server, MAILGUN_URL, payload)
    # Mailgun retries whatever did not get a 2xx (a lost answer looks the same to it).
    repeated = post_json(live_server, MAILGUN_URL, payload)

    assert first.status_code == 200, first.text
    event = Event.objects.get()
    assert (event.source, event.type, event.bounce_type) == ("mailgun", "bounced", "hard")
    assert event.message_id == sent.message.pk
    assert is_suppressed(sent.message.to_email)
    assert repeated.status_code == 200, repeated.text
    assert repeated.json() == {"status": "ok", "stored": 0, "duplicates": 1}
    assert not DeadLetter.objects.exists()
    assert not RefusedWebhook.objects.exists()
    assert SeenToken.objects.count() == 1


def test_it_stores_nothing_new_for_a_replayed_mailgun_signature_with_another_body(
    live_server: Any,
) -> None:
    sent = make_sent_message()
    payload = mailgun_failed(sent.message.to_email, "a@send1", severity="temporary")
    assert post_json(live_server, MAILGUN_URL, payload).status_code == 200
    forged = mailgun_failed("victim@prospect.example.org", "b@send1")
    forged["signature"] = payload["signature"]

    response = post_json(live_server, MAILGUN_URL, forged)

    assert response.json()["stored"] == 0
    assert Event.objects.get().type == "deferred"
    assert not is_suppressed("victim@prospect.example.org")


def test_it_refuses_mailgun_posts_with_a_bad_or_stale_signature(live_server: Any) -> None:
    sent = make_sent_message()
    forged = mailgun_failed(sent.message.to_email, "x@y", key="not-the-key")
    stale = mailgun_failed(sent.message.to_email, "x@y", timestamp=1_500_000_000)

    assert post_json(live_server, MAILGUN_URL, forged).status_code == 403
    assert post_json(live_server, MAILGUN_URL, stale).status_code == 403
    assert Event.objects.count() == 0
    assert DeadLetter.objects.count() == 0
    assert RefusedWebhook.objects.get().count == 2


def test_it_records_a_mailgun_temporary_failure_as_deferred(live_server: Any) -> None:
    sent = make_sent_message()
    payload = mailgun_failed(sent.message.to_email, "abc@send1", severity="temporary")

    assert post_json(live_server, MAILGUN_URL, payload).status_code == 200

    assert Event.objects.get().type == "deferred"
    assert not is_suppressed(sent.message.to_email)


def test_it_stores_postmark_bounces_complaints_and_deliveries(live_server: Any) -> None:
    sent = make_sent_message(provider_message_id="883953f4-6105-42a2-a16a-77a8eac79483")
    pm_id = sent.message.provider_message_id
    to = sent.message.to_email

    for payload in [
        postmark_delivery(to, pm_id),
        postmark_bounce(to, pm_id, kind="SoftBounce"),
        postmark_spam_complaint(to, pm_id),
    ]:
        response = post_json(live_server, POSTMARK_URL, payload)
        assert response.status_code == 200, response.text

    types = sorted(Event.objects.values_list("type", "bounce_type"))
    assert types == [("bounced", "soft"), ("complained", ""), ("delivered", "")]
    assert set(Event.objects.values_list("message_id", flat=True)) == {sent.message.pk}
    assert Mailbox.objects.get(address="rep1@send1.example.com").state == Mailbox.State.PAUSED


@pytest.mark.parametrize(
    ("first", "reason", "counted"),
    [
        ("bounce", "HardBounce", ("bounced", "hard")),
        ("change", "HardBounce", ("bounced", "hard")),
        ("bounce", "SpamComplaint", ("complained", "")),
    ],
)
def test_it_counts_a_postmark_bounce_and_its_subscription_change_once(
    live_server: Any, first: str, reason: str, counted: tuple[str, str]
) -> None:
    sent = make_sent_message(provider_message_id="883953f4-6105-42a2-a16a-77a8eac79483")
    to, pm_id = sent.message.to_email, sent.message.provider_message_id
    report = (
        postmark_bounce(to, pm_id) if reason == "HardBounce" else postmark_spam_complaint(to, pm_id)
    )
    change = postmark_subscription_change(to, pm_id, reason=reason)
    payloads = [report, change] if first == "bounce" else [change, report]

    answers = [post_json(live_server, POSTMARK_URL, p).json() for p in payloads]

    assert [a["stored"] for a in answers] == [1, 0]
    assert [a["duplicates"] for a in answers] == [0, 1]
    assert list(Event.objects.values_list("type", "bounce_type")) == [counted]
    assert Event.objects.get().message_id == sent.message.pk


@pytest.mark.parametrize("kind", ["bounce", "complaint"])
def test_it_keeps_an_event_about_another_recipient_unmatched(
    live_server: Any, sns_server: SnsServer, kind: str
) -> None:
    sent = make_sent_message()
    other = "someone.else@elsewhere.example"
    pm_id = sent.message.provider_message_id
    payload = (
        ses_bounce(other, pm_id, event_publishing=True)
        if kind == "bounce"
        else ses_complaint(other, pm_id)
    )

    response = post_sns(live_server, sns_server.sign(sns_notification(payload)))

    assert response.status_code == 200, response.text
    event = Event.objects.get()
    assert event.unmatched
    assert (event.message_id, event.mailbox_id, event.campaign_id) == (None, None, None)
    assert Mailbox.objects.get(pk=sent.message.mailbox_id or 0).state == Mailbox.State.ACTIVE
    sent.enrollment.refresh_from_db()
    assert sent.enrollment.state == Enrollment.State.ACTIVE
    assert not is_suppressed(sent.message.to_email)
    # The address the event is about is still protected.
    assert is_suppressed(other)


@pytest.mark.parametrize("kind", ["Blocked", "DMARCPolicy"])
def test_it_counts_a_postmark_isp_block_as_a_block_not_a_bounce(
    live_server: Any, kind: str
) -> None:
    sent = make_sent_message(provider_message_id="5d1c8bb3-1fd9-4c7e-9d2b-44a5e0e8a1f0")
    payload = postmark_bounce(sent.message.to_email, sent.message.provider_message_id, kind=kind)
    response = post_json(live_server, POSTMARK_URL, payload)
    assert response.status_code == 200, response.text
    event = Event.objects.get()
    assert (event.type, event.message_id) == ("blocked", sent.message.pk)
    # The receiver refused the sender, not the address: nothing is suppressed.
    assert not Suppression.objects.filter(value=sent.message.to_email).exists()


def _sendgrid_key(settings: Any) -> ec.EllipticCurvePrivateKey:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings.ANYMAIL = {
        **settings.ANYMAIL,
        "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY": base64.b64encode(public).decode(),
    }
    return key


def test_it_checks_sendgrid_signed_event_webhooks(live_server: Any, settings: Any) -> None:
    key = _sendgrid_key(settings)
    sent = make_sent_message(provider_message_id="")
    body = json.dumps(sendgrid_events(sent.message.to_email, message_pk=sent.message.pk)).encode()
    timestamp = "1764299100"
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))

    def post(sig: bytes) -> requests.Response:
        return requests.post(
            live_server.url + SENDGRID_URL,
            data=body,
            auth=WEBHOOK_AUTH,
            timeout=10,
            headers={
                "Content-Type": "application/json",
                "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(sig).decode(),
                "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
            },
        )

    forged = post(key.sign(b"0" + body, ec.ECDSA(hashes.SHA256())))
    good = post(signature)

    assert forged.status_code == 403
    assert good.status_code == 200, good.text
    assert sorted(Event.objects.values_list("type", flat=True)) == [
        "delivered",
        "opened",
        "unsubscribed",
    ]
    assert is_suppressed(sent.message.to_email)


BAD_INPUT = {
    "malformed-json": (b"{not json", "application/json", 400),
    "wrong-content-type": (b'{"RecordType": "Bounce"}', "text/html", 415),
    "not-an-object": (b"[1, 2, 3]", "application/json", 400),
    "missing-fields": (
        b'{"Type": "HardBounce", "Email": "a@b.c", "BouncedAt": "soon"}',
        "application/json",
        400,
    ),
    "binary": (b"\xff\xfe\x00garbage", "application/json", 400),
}


def test_it_refuses_bad_input_with_a_clear_4xx_and_keeps_a_dead_letter(live_server: Any) -> None:
    for case, (body, content_type, status) in BAD_INPUT.items():
        response = requests.post(
            live_server.url + POSTMARK_URL,
            data=body,
            auth=WEBHOOK_AUTH,
            headers={"Content-Type": content_type},
            timeout=10,
        )

        assert response.status_code == status, case
        assert response.json()["error"], case
        letter = DeadLetter.objects.order_by("-id").first()
        assert letter is not None and letter.status_code == status and letter.error, case
    assert DeadLetter.objects.count() == len(BAD_INPUT)
    assert Event.objects.count() == 0


def test_it_refuses_an_oversized_body(live_server: Any) -> None:
    body = b'{"pad": "' + b"x" * (webhooks.MAX_BODY_BYTES + 10) + b'"}'

    response = requests.post(
        live_server.url + POSTMARK_URL,
        data=body,
        auth=WEBHOOK_AUTH,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )

    assert response.status_code == 413
    letter = DeadLetter.objects.get()
    assert len(letter.body) <= webhooks.DEAD_LETTER_OVERSIZE_BYTES


def test_it_replays_a_dead_letter_once_the_cause_is_fixed(live_server: Any, settings: Any) -> None:
    sent = make_sent_message(provider_message_id="<m1@send1.example.com>")
    settings.ANYMAIL = {"WEBHOOK_SECRET": [f"{WEBHOOK_AUTH[0]}:{WEBHOOK_AUTH[1]}"]}
    payload = mailgun_failed(sent.message.to_email, "m1@send1.example.com")

    refused = post_json(live_server, MAILGUN_URL, payload)
    assert refused.status_code == 503  # no signing key configured: ours to fix
    letter = DeadLetter.objects.get()

    settings.ANYMAIL = {**settings.ANYMAIL, "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY}
    call_command("events", "replay", str(letter.pk))

    assert Event.objects.get().message_id == sent.message.pk
    letter.refresh_from_db()
    assert letter.replayed_at is not None
    # Replaying again is harmless: the event is already stored.
    call_command("events", "replay", str(letter.pk))
    assert Event.objects.count() == 1


def test_it_prunes_dead_letters_past_their_retention() -> None:
    DeadLetter.objects.create(endpoint=POSTMARK_URL, error="recent", status_code=400)
    DeadLetter.objects.create(endpoint=POSTMARK_URL, error="old", status_code=400)
    DeadLetter.objects.filter(error="old").update(received_at=clock.now() - timedelta(days=31))
    out = io.StringIO()

    call_command("events", "prune", stdout=out)

    assert "1 dead letter(s) deleted" in out.getvalue()
    assert list(DeadLetter.objects.values_list("error", flat=True)) == ["recent"]


def test_it_answers_503_when_the_database_is_unavailable(
    live_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = make_sent_message(provider_message_id="883953f4")

    def unavailable(*args: object) -> None:
        raise OperationalError("could not connect to server: Connection refused")

    # The one seam that is faked: the database call that stores the event.
    monkeypatch.setattr(webhooks, "record", unavailable)
    response = post_json(live_server, POSTMARK_URL, postmark_delivery(sent.message.to_email, "x"))

    assert response.status_code == 503
    assert Event.objects.count() == 0


@pytest.mark.parametrize(
    "waiting",
    [
        pytest.param({}, id="scheduled"),
        # A follow-up that met a 451 and waits for its retry: left in `retry` it would wait
        # for ever (its sequence is no longer live).
        pytest.param({"state": Message.State.RETRY, "attempts": 1}, id="retrying"),
    ],
)
def test_it_cancels_the_waiting_follow_up_of_a_stopped_enrollment(
    live_server: Any, waiting: dict[str, Any]
) -> None:
    sent = make_sent_message(provider_message_id="pm-1")
    follow_up = Message.objects.create(
        enrollment=sent.enrollment,
        campaign=sent.message.campaign,
        step=sent.message.campaign.steps.get(position=2),  # type: ignore[union-attr]
        to_email=sent.message.to_email,
        to_domain=sent.message.to_domain,
        pinned_mailbox=sent.message.mailbox,
        mailbox=sent.message.mailbox if waiting else None,
        **waiting,
    )

    response = post_json(live_server, POSTMARK_URL, postmark_bounce(sent.message.to_email, "pm-1"))

    assert response.status_code == 200
    follow_up.refresh_from_db()
    assert follow_up.state == Message.State.CANCELLED
    assert follow_up.last_error.startswith("enrollment stopped")
