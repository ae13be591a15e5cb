"""Fixtures of the events collector: a sent message, an SNS signer with a locally served
certificate, and payloads shaped as the providers document them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from outreach.campaigns.models import Enrollment, Message
from outreach.events import sns
from outreach.events.tests import dovecot
from outreach.lib import clock
from outreach.testing import enroll, make_campaign, make_leads, make_pool

WEBHOOK_AUTH = ("outreach", "hook-secret")
# The IMAP accounts of the dovecot the inbox and seed tests read: a pool mailbox, a seed.
IMAP_MAILBOX = "rep1@send1.example.com"
IMAP_SEED = "seed.gmail@inbox-seeds.example.net"
MAILGUN_KEY = "key-mailgun-signing-0123456789"
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:ses-events"


@dataclass
class Sent:
    message: Message
    enrollment: Enrollment


def make_sent_message(
    email: str = "lead0@prospect.example.org",
    provider_message_id: str = "0100018c-ses-message-id-000000",
    **campaign_fields: Any,
) -> Sent:
    """An active campaign with one lead whose first message has been sent."""
    boxes = make_pool(domains=1, mailboxes_per_domain=2)
    campaign = make_campaign("launch", steps=2, **campaign_fields)
    domain = email.partition("@")[2]
    lead = make_leads(1, domain=domain)[0]
    lead.email = email
    lead.save()
    enrollment = enroll(campaign, [lead])[0]
    enrollment.refresh_from_db()
    now = clock.now()
    step = campaign.steps.get(position=1)
    message = Message.objects.create(
        enrollment=enrollment,
        campaign=campaign,
        step=step,
        variant=step.variants.first(),
        to_email=email,
        to_domain=domain,
        mailbox=boxes[0],
        provider_account=boxes[0].provider_account,
        state=Message.State.SENT,
        subject="Quick question, Lead0",
        message_id_header=f"<{uuid.uuid4().hex}@{boxes[0].domain.name}>",
        provider_message_id=provider_message_id,
        sent_at=now,
    )
    enrollment.last_step = 1
    enrollment.thread_mailbox = boxes[0]
    enrollment.thread_message_id = message.message_id_header or ""
    enrollment.save()
    return Sent(message=message, enrollment=enrollment)


@pytest.fixture
def sent(db: None) -> Sent:
    return make_sent_message()


# --- SNS: a signing key and certificate of our own, served over local HTTP ---------------


@cache
def _sns_key() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.us-east-1.amazonaws.com")])
    now = datetime.now().astimezone()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class SnsServer:
    """Serves the signing certificate and records SubscribeURL visits."""

    base_url: str
    certificate_url: str
    fetches: list[str] = field(default_factory=list)
    confirmations: list[str] = field(default_factory=list)

    def sign(self, message: dict[str, Any], version: str = "1") -> dict[str, Any]:
        key, _ = _sns_key()
        message = {**message, "SignatureVersion": version, "SigningCertURL": self.certificate_url}
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303
        signature = key.sign(sns.string_to_sign(message), padding.PKCS1v15(), digest)
        message["Signature"] = base64.b64encode(signature).decode()
        return message


def start_sns_server() -> tuple[ThreadingHTTPServer, SnsServer]:
    _, pem = _sns_key()
    state: dict[str, SnsServer] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server = state["server"]
            if self.path.endswith(".pem"):
                server.fetches.append(self.path)
                body = pem
            else:
                server.confirmations.append(self.path)
                body = b"<ConfirmSubscriptionResponse/>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    state["server"] = SnsServer(
        base_url=base, certificate_url=f"{base}/SimpleNotificationService-test.pem"
    )
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, state["server"]


@pytest.fixture
def sns_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[SnsServer]:
    """The app's SNS verifier trusts only this local server (the AWS check stays as it is)."""
    httpd, server = start_sns_server()
    local = server.base_url + "/"
    monkeypatch.setattr(
        sns,
        "verifier",
        sns.SnsVerifier(
            url_allowed=lambda url: url.startswith(local),
            fetch=sns.https_get,
            subscribe_url_allowed=lambda url: url.startswith(local),
        ),
    )
    yield server
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def webhook_settings(settings: Any) -> None:
    settings.ANYMAIL = {
        "WEBHOOK_SECRET": [f"{WEBHOOK_AUTH[0]}:{WEBHOOK_AUTH[1]}", "old:rotated-secret"],
        "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY,
    }


# --- Payloads as the providers document them -----------------------------------------------


def ses_mail(destination: str, message_id: str, *, pk: int | None = None) -> dict[str, Any]:
    headers = [
        {"name": "From", "value": "Rep 1 <rep1@send1.example.com>"},
        {"name": "To", "value": destination},
        {"name": "Subject", "value": "Quick question"},
    ]
    if pk is not None:
        headers.append({"name": "X-Outreach-Message", "value": str(pk)})
    return {
        "timestamp": "2026-11-28T03:00:00.000Z",
        "source": "rep1@send1.example.com",
        "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/send1.example.com",
        "sendingAccountId": "123456789012",
        "messageId": message_id,
        "destination": [destination],
        "headersTruncated": False,
        "headers": headers,
        "commonHeaders": {
            "from": ["Rep 1 <rep1@send1.example.com>"],
            "to": [destination],
            "messageId": message_id,
            "subject": "Quick question",
        },
        "tags": {"ses:configuration-set": ["outreach"]},
    }


def ses_bounce(
    recipient: str, message_id: str, *, bounce_type: str = "Permanent", event_publishing: bool
) -> dict[str, Any]:
    """A bounce as SES event publishing (eventType) or a classic notification sends it."""
    sub_type = "General" if bounce_type == "Permanent" else "MailboxFull"
    status = "5.1.1" if bounce_type == "Permanent" else "4.2.2"
    diagnostic = (
        "smtp; 550 5.1.1 user unknown"
        if bounce_type == "Permanent"
        else "smtp; 452 4.2.2 mailbox full"
    )
    body = {
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": sub_type,
            "bouncedRecipients": [
                {
                    "emailAddress": recipient,
                    "action": "failed",
                    "status": status,
                    "diagnosticCode": diagnostic,
                }
            ],
            "timestamp": "2026-11-28T03:00:05.000Z",
            "feedbackId": f"0100018c-{uuid.uuid4()}-000000",
            "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com",
        },
        "mail": ses_mail(recipient, message_id),
    }
    key = "eventType" if event_publishing else "notificationType"
    return {key: "Bounce", **body}


def ses_complaint(recipient: str, message_id: str) -> dict[str, Any]:
    return {
        "notificationType": "Complaint",
        "complaint": {
            "userAgent": "ExampleCorp Feedback Loop (V0.01)",
            "complainedRecipients": [{"emailAddress": recipient}],
            "complaintFeedbackType": "abuse",
            "arrivalDate": "2026-11-28T03:01:00.000Z",
            "timestamp": "2026-11-28T03:01:05.000Z",
            "feedbackId": f"0100018c-{uuid.uuid4()}-000000",
        },
        "mail": ses_mail(recipient, message_id),
    }


def ses_delivery(recipient: str, message_id: str, *, pk: int | None = None) -> dict[str, Any]:
    return {
        "eventType": "Delivery",
        "mail": ses_mail(recipient, message_id, pk=pk),
        "delivery": {
            "timestamp": "2026-11-28T03:00:02.000Z",
            "processingTimeMillis": 546,
            "recipients": [recipient],
            "smtpResponse": "250 ok:  Message 64111812 accepted",
            "reportingMTA": "a8-70.smtp-out.amazonses.com",
            "remoteMtaIp": "127.0.2.0",
        },
    }


def sns_notification(ses_event: dict[str, Any], *, subject: str | None = None) -> dict[str, Any]:
    message = {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": TOPIC_ARN,
        "Message": json.dumps(ses_event),
        "Timestamp": "2026-11-28T03:00:06.123Z",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"
        f"&SubscriptionArn={TOPIC_ARN}:0d6a1c5c",
    }
    if subject is not None:
        message["Subject"] = subject
    return message


def sns_headers(message: dict[str, Any]) -> dict[str, str]:
    return {
        "Content-Type": "text/plain; charset=UTF-8",
        "x-amz-sns-message-type": message["Type"],
        "x-amz-sns-message-id": message["MessageId"],
        "x-amz-sns-topic-arn": message["TopicArn"],
        "User-Agent": "Amazon Simple Notification Service Agent",
    }


def mailgun_signature(key: str = MAILGUN_KEY, timestamp: int | None = None) -> dict[str, str]:
    ts = str(timestamp if timestamp is not None else int(clock.now().timestamp()))
    token = uuid.uuid4().hex + uuid.uuid4().hex[:18]
    signature = hmac.new(key.encode(), f"{ts}{token}".encode(), hashlib.sha256).hexdigest()
    return {"timestamp": ts, "token": token, "signature": signature}


def mailgun_failed(
    recipient: str, message_id: str, *, severity: str = "permanent", **signature: Any
) -> dict[str, Any]:
    code = 550 if severity == "permanent" else 452
    return {
        "signature": mailgun_signature(**signature),
        "event-data": {
            "id": uuid.uuid4().hex[:22],
            "timestamp": clock.now().timestamp(),
            "log-level": "error" if severity == "permanent" else "warn",
            "event": "failed",
            "severity": severity,
            "reason": "bounce" if severity == "permanent" else "generic",
            "recipient": recipient,
            "recipient-domain": recipient.partition("@")[2],
            "envelope": {
                "transport": "smtp",
                "sender": "rep1@send1.example.com",
                "targets": recipient,
            },
            "message": {
                "headers": {
                    "to": recipient,
                    "message-id": message_id,
                    "from": "Rep 1 <rep1@send1.example.com>",
                    "subject": "Quick question",
                },
                "attachments": [],
                "size": 1420,
            },
            "delivery-status": {
                "attempt-no": 1,
                "message": "550 5.1.1 The email account that you tried to reach does not exist.",
                "code": code,
                "enhanced-code": "5.1.1" if severity == "permanent" else "4.2.2",
                "description": "",
                "session-seconds": 1.2,
                "mx-host": "mx.prospect.example.org",
                "tls": True,
                "certificate-verified": True,
            },
            "flags": {"is-routed": False, "is-authenticated": True, "is-test-mode": False},
            "tags": ["outreach"],
            "user-variables": {},
        },
    }


# Postmark's bounce types used by the tests: (TypeCode, Name), as its API documents them.
POSTMARK_BOUNCE_TYPES = {
    "HardBounce": (1, "Hard bounce"),
    "SoftBounce": (4096, "Soft bounce"),
    "Blocked": (100006, "ISP block"),
    "DMARCPolicy": (100009, "DMARC Policy"),
}


def postmark_bounce(recipient: str, message_id: str, *, kind: str = "HardBounce") -> dict[str, Any]:
    code, name = POSTMARK_BOUNCE_TYPES[kind]
    return {
        "RecordType": "Bounce",
        "MessageStream": "outbound",
        "ID": 4323372036854775807,
        "Type": kind,
        "TypeCode": code,
        "Name": name,
        "Tag": "outreach",
        "MessageID": message_id,
        "Metadata": {},
        "ServerID": 23,
        "Description": "The server was unable to deliver your message (ex: unknown user, "
        "mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": recipient,
        "From": "rep1@send1.example.com",
        "BouncedAt": "2026-11-28T03:00:05.9070259Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Quick question",
        "Content": "Return-Path: <>\r\n...",
    }


def postmark_spam_complaint(recipient: str, message_id: str) -> dict[str, Any]:
    return {
        "RecordType": "SpamComplaint",
        "MessageStream": "outbound",
        "ID": 42,
        "Type": "SpamComplaint",
        "TypeCode": 512,
        "Name": "Spam complaint",
        "Tag": "outreach",
        "MessageID": message_id,
        "Metadata": {},
        "ServerID": 23,
        "Description": "",
        "Details": "Test spam complaint details",
        "Email": recipient,
        "From": "rep1@send1.example.com",
        "BouncedAt": "2026-11-28T03:01:05.9070259Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": False,
        "Subject": "Quick question",
        "Content": "<Abuse report dump>",
    }


def postmark_subscription_change(
    recipient: str, message_id: str, *, reason: str = "HardBounce"
) -> dict[str, Any]:
    """Postmark's Subscription Change webhook: the address added to the stream's suppression
    list after a hard bounce or a spam complaint (sent after the Bounce/SpamComplaint)."""
    return {
        "RecordType": "SubscriptionChange",
        "MessageID": message_id,
        "ServerID": 23,
        "MessageStream": "outbound",
        "ChangedAt": "2026-11-28T03:00:06.416071Z",
        "Recipient": recipient,
        "Origin": "Recipient",
        "SuppressSending": True,
        "SuppressionReason": reason,
        "Tag": "outreach",
        "Metadata": {},
    }


def postmark_delivery(recipient: str, message_id: str) -> dict[str, Any]:
    return {
        "RecordType": "Delivery",
        "ServerID": 23,
        "MessageStream": "outbound",
        "MessageID": message_id,
        "Recipient": recipient,
        "Tag": "outreach",
        "DeliveredAt": "2026-11-28T03:00:02Z",
        "Details": "smtp;250 2.0.0 OK",
        "Metadata": {},
    }


def sendgrid_events(recipient: str, *, message_pk: int) -> list[dict[str, Any]]:
    base = {
        "email": recipient,
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "category": ["outreach"],
        "outreach_message_id": str(message_pk),
    }
    return [
        {
            **base,
            "timestamp": 1764298800,
            "event": "delivered",
            "sg_event_id": "rbtnWrG1DVDGGGFHFyun0A==",
            "response": "250 OK",
        },
        {
            **base,
            "timestamp": 1764298900,
            "event": "open",
            "sg_event_id": "FOTFFO0ecsBE-zxFXfs6WA==",
            "useragent": "Mozilla/4.0 (compatible; MSIE 6.1; Windows XP)",
            "ip": "255.255.255.255",
        },
        {
            **base,
            "timestamp": 1764299000,
            "event": "unsubscribe",
            "sg_event_id": "Krfn-yDfI-gwW-2PXTp4YA==",
        },
    ]


# One dovecot for the whole run: each test empties the folders it reads.
@pytest.fixture(scope="session")
def imap_server() -> Iterator[dovecot.ImapServer]:
    """A real IMAP server (dovecot) with the accounts of :data:`IMAP_MAILBOX` and
    :data:`IMAP_SEED`; skipped, with the reason, where dovecot cannot run."""
    reason = dovecot.available()
    if reason:
        pytest.skip(reason)
    server = dovecot.start([IMAP_MAILBOX, IMAP_SEED])
    yield server
    server.stop()
