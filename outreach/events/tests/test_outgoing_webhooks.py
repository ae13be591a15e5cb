"""Outgoing webhooks against a local receiver: Standard Webhooks signatures that verify with the
`standardwebhooks` package, an outbox that outlasts a receiver down for an hour, no
duplicate ids, dead letters after 24 hours, endpoints from the pool file."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db.models import F
from django.test import Client
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from outreach.events import inbox, normalize, outgoing
from outreach.events.models import WebhookDelivery, WebhookEndpoint
from outreach.events.record import record
from outreach.events.tests.conftest import Sent, make_sent_message
from outreach.lib import clock
from outreach.pool import config, config_apply
from outreach.pool.config_spec import ConfigError
from outreach.pool.models import Mailbox
from outreach.pool.states import transition_mailbox

pytestmark = pytest.mark.django_db

SECRET = "whsec_" + base64.b64encode(b"a-32-byte-secret-for-the-tests!!").decode()
SECRET_ENV = "OUTREACH_SECRET_TEST_WEBHOOK"


@dataclass
class Receiver:
    """A CRM's webhook endpoint on 127.0.0.1: records every request; answers ``status``."""

    port: int = 0
    status: int = 200
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/outreach"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers.items()), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def verified(self) -> list[dict[str, Any]]:
        hook = Webhook(SECRET)
        return [hook.verify(body, headers) for headers, body in self.requests]


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    receiver = Receiver().start()
    spec = config.parse(
        f"""
[[webhooks]]
name = "crm"
url = "{receiver.url}"
secret = {{ env = "{SECRET_ENV}" }}
"""
    )
    config_apply.apply(spec)
    yield receiver
    receiver.stop()


@pytest.fixture
def sent() -> Sent:
    return make_sent_message("lead0@prospect.example.org")


def reply(sent: Sent, body: str, msgid: str) -> None:
    raw = (
        f"From: lead0@prospect.example.org\r\nSubject: Re: Quick question\r\n"
        f"Date: {format_datetime(clock.now())}\r\nMessage-ID: <{msgid}@p>\r\n"
        f"In-Reply-To: {sent.message.message_id_header}\r\n\r\n{body}\r\n"
    )
    assert sent.message.mailbox is not None
    inbox.record_mail(raw.encode(), sent.message.mailbox, fallback_id=msgid)


def deliver_all() -> int:
    count = 0
    while outgoing.deliver_one():
        count += 1
        assert count < 100
    return count


def an_hour_passes() -> None:
    """Every queued delivery is an hour older and due now (the receiver's outage)."""
    WebhookDelivery.objects.update(
        created_at=F("created_at") - timedelta(hours=1), next_attempt_at=clock.now()
    )


def test_each_event_is_signed_per_standard_webhooks(receiver: Receiver, sent: Sent) -> None:
    reply(sent, "Sounds good, let's talk Thursday.", "r1")
    reply(sent, "Actually, please remove me from your list.", "r2")

    deliver_all()

    events = receiver.verified()
    assert sorted(e["type"] for e in events) == [
        "lead.interested",
        "lead.unsubscribed",
        "reply.received",
        "reply.received",
    ]
    received = [e["data"] for e in events if e["type"] == "reply.received"]
    assert {r["label"] for r in received} == {"interested", "unsubscribe_request"}
    headers, body = receiver.requests[0]
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body.replace(b"Re:", b"Rx:") + b" ", headers)
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {"delivered"}


def test_a_receiver_down_for_an_hour_gets_every_event_later_once(
    receiver: Receiver, sent: Sent
) -> None:
    receiver.stop()  # down: connection refused
    reply(sent, "Sounds good, let's talk Thursday.", "r1")
    deliver_all()
    an_hour_passes()
    deliver_all()
    assert receiver.requests == []
    assert WebhookDelivery.objects.filter(state="pending", attempts=2).count() == 2

    receiver.start()  # back on the same port, but failing at first
    receiver.status = 503
    an_hour_passes()
    deliver_all()
    first_ids = [h["webhook-id"] for h, _ in receiver.requests]
    receiver.status = 200
    an_hour_passes()
    deliver_all()

    ids = [h["webhook-id"] for h, _ in receiver.requests]
    assert ids[2:] == first_ids  # each retry carries its event's id
    assert len(set(ids)) == 2
    assert {e["type"] for e in receiver.verified()} == {"reply.received", "lead.interested"}
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {"delivered"}
    # The same event emitted again is not queued again.
    [mail_id] = {e["data"]["inbound_mail_id"] for e in receiver.verified()}
    assert outgoing.emit("reply.received", {}, key=f"reply.received:{mail_id}") == 0


def test_it_gives_up_after_24_hours_into_a_dead_letter(receiver: Receiver, sent: Sent) -> None:
    receiver.status = 500
    reply(sent, "Sounds good, let's talk Thursday.", "r1")
    for _ in range(23):
        an_hour_passes()
        deliver_all()
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {"pending"}

    an_hour_passes()
    deliver_all()

    dead = WebhookDelivery.objects.filter(state="dead")
    assert dead.count() == 2 and "HTTP 500" in dead.first().last_error  # type: ignore[union-attr]

    # The operator replays one once the receiver is fixed: the same id arrives.
    receiver.status = 200
    staff = Client()
    staff.force_login(User.objects.create_user("ann", is_staff=True))
    replayed = dead.order_by("pk").first()
    assert replayed is not None
    staff.post(f"/webhooks/{replayed.pk}/retry")
    deliver_all()
    assert receiver.requests[-1][0]["webhook-id"] == replayed.msg_id
    assert WebhookDelivery.objects.get(pk=replayed.pk).state == "delivered"
    assert staff.post(f"/webhooks/{replayed.pk}/retry").status_code == 302
    assert WebhookDelivery.objects.get(pk=replayed.pk).state == "delivered"


def test_mailbox_and_bounce_events_are_sent(receiver: Receiver, sent: Sent) -> None:
    mailbox = sent.message.mailbox
    assert mailbox is not None
    transition_mailbox(mailbox, Mailbox.State.PAUSED, reason="bounce rate 6%", actor="rule")
    transition_mailbox(mailbox, Mailbox.State.ACTIVE, reason="reviewed", actor="user:ann")
    record(
        normalize.Incoming(
            source="ses",
            type=normalize.BOUNCED,
            bounce_type=normalize.HARD,
            recipient="lead0@prospect.example.org",
            occurred_at=clock.now(),
            provider_event_id="bounce-1",
            outreach_message_id=sent.message.pk,
        )
    )

    deliver_all()

    events = {e["type"]: e["data"] for e in receiver.verified()}
    assert events["mailbox.paused"]["reason"] == "bounce rate 6%"
    assert events["mailbox.resumed"]["to_state"] == "active"
    assert events["lead.bounced"]["email"] == "lead0@prospect.example.org"


def test_endpoints_come_from_the_pool_file(receiver: Receiver) -> None:
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret == f"env:{SECRET_ENV}" and endpoint.events == []

    with pytest.raises(ConfigError, match=r"webhooks\[0\].events"):
        config.parse(
            '[[webhooks]]\nname = "x"\nurl = "https://x.example"\nsecret = "s"\n'
            'events = ["lead.sneezed"]\n'
        )
    with pytest.raises(ConfigError, match="signing secret"):
        config.parse('[[webhooks]]\nname = "x"\nurl = "https://x.example"\n')

    plan = config_apply.apply(config.parse('timezone = "UTC"\n'))
    assert "disable webhook crm (not in the file)" in plan.changes
    assert not WebhookEndpoint.objects.get().enabled


def test_the_status_page_shows_deliveries(receiver: Receiver, sent: Sent) -> None:
    staff_client = Client()
    staff_client.force_login(User.objects.create_user("ann", is_staff=True))
    receiver.status = 503
    reply(sent, "Sounds good, let's talk Thursday.", "r1")
    deliver_all()

    page = staff_client.get("/webhooks/").content.decode()

    assert "crm" in page and "reply.received" in page and "HTTP 503" in page
    delivery = WebhookDelivery.objects.first()
    assert delivery is not None and delivery.msg_id in page
