"""Fixtures of the health rules and alerting: a pool on a pinned clock, sends and events
recorded the way the sending engine and the events collector record them, and a fake
Telegram Bot API at the HTTP seam."""

from __future__ import annotations

import json
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from django.db import transaction

from outreach.campaigns.models import Campaign, Message
from outreach.events.models import Event
from outreach.events.signals import events_recorded
from outreach.lib import clock
from outreach.pool.models import Mailbox, ProviderAccount
from outreach.sending.models import SendAttempt
from outreach.sending.signals import send_attempted
from outreach.testing import make_campaign, make_pool, make_provider

# A Saturday noon, far from a day boundary in UTC.
NOON = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture
def noon() -> datetime:
    clock.set_now(NOON)
    return NOON


@pytest.fixture(autouse=True)
def _no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """The periodic pass checks SES accounts; tests give ``check_account`` a stubbed client,
    and nothing may reach AWS."""

    def refuse(account: Any) -> Any:
        raise RuntimeError("no AWS from tests: pass a stubbed client")

    monkeypatch.setattr("outreach.alerts.ses_watch.ses_client", refuse)


@dataclass
class Pool:
    provider: ProviderAccount
    mailboxes: list[Mailbox]
    campaign: Campaign


@pytest.fixture
def pool(db: None, noon: datetime) -> Pool:
    provider = make_provider("ses-main", kind="ses", price_per_1000="0.10")
    boxes = make_pool(domains=2, mailboxes_per_domain=2, provider=provider)
    return Pool(provider, boxes, make_campaign("launch", steps=2))


def send(
    mailbox: Mailbox,
    count: int = 1,
    *,
    campaign: Campaign | None = None,
    outcome: str = SendAttempt.Outcome.SENT,
) -> list[Message]:
    """``count`` messages handed to the provider from ``mailbox``, recorded as the engine does
    (a SendAttempt, then ``send_attempted`` in a savepoint)."""
    now = clock.now()
    step = campaign.steps.get(position=1) if campaign else None
    messages = []
    for _ in range(count):
        token = uuid.uuid4().hex
        message = Message.objects.create(
            campaign=campaign,
            step=step,
            variant=step.variants.first() if step else None,
            kind=Message.Kind.CAMPAIGN if campaign else Message.Kind.WARMUP,
            to_email=f"{token[:10]}@prospect.example.org",
            to_domain="prospect.example.org",
            mailbox=mailbox,
            provider_account=mailbox.provider_account,
            state=Message.State.SENT
            if outcome == SendAttempt.Outcome.SENT
            else Message.State.RETRY,
            message_id_header=f"<{token}@{mailbox.domain.name}>",
            provider_message_id=f"pm-{token}",
            sent_at=now if outcome == SendAttempt.Outcome.SENT else None,
        )
        attempt = SendAttempt.objects.create(
            message=message,
            mailbox=mailbox,
            provider_account=mailbox.provider_account,
            outcome=outcome,
            at=now,
        )
        with transaction.atomic():
            send_attempted.send(sender=SendAttempt, attempt=attempt)
        messages.append(message)
    return messages


def record(
    message: Message,
    type: str,
    *,
    bounce_type: str = "",
    source: str = "postmark",
    occurred_at: datetime | None = None,
) -> Event:
    """An event about ``message`` stored as the collector stores it: in one transaction with
    ``events_recorded`` sent inside it."""
    with transaction.atomic():
        event = Event.objects.create(
            source=source,
            provider_event_id=uuid.uuid4().hex,
            type=type,
            bounce_type=bounce_type,
            recipient=message.to_email,
            message=message,
            mailbox_id=message.mailbox_id,
            campaign_id=message.campaign_id,
            provider_message_id=message.provider_message_id,
            occurred_at=occurred_at or clock.now(),
            received_at=clock.now(),
        )
        events_recorded.send(sender=Event, events=[event])
    return event


# --- Telegram Bot API, faked at the HTTP seam ---------------------------------------------

BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
CHAT_ID = "-1001234567890"
TELEGRAM_URL = f"tgram://{BOT_TOKEN}/{CHAT_ID}/"


def telegram_ok(text: str, message_id: int = 1) -> dict[str, Any]:
    """sendMessage success: ``{"ok": true, "result": Message}``."""
    return {
        "ok": True,
        "result": {
            "message_id": message_id,
            "from": {
                "id": 123456789,
                "is_bot": True,
                "first_name": "outreach",
                "username": "outreach_alerts_bot",
            },
            "chat": {"id": int(CHAT_ID), "title": "outreach ops", "type": "supergroup"},
            "date": int(clock.now().timestamp()),
            "text": text,
        },
    }


def telegram_error(code: int, description: str, **parameters: Any) -> dict[str, Any]:
    """An unsuccessful request: ok false, error_code, description, optional parameters."""
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return body


@dataclass
class FakeTelegram:
    """Answers requests to api.telegram.org with queued (status, body) pairs, else ok."""

    queued: deque[tuple[int, dict[str, Any]]] = field(default_factory=deque)
    received: list[dict[str, Any]] = field(default_factory=list)

    def reply(self, status: int, body: dict[str, Any]) -> None:
        self.queued.append((status, body))

    def handle(self, request: requests.PreparedRequest) -> requests.Response:
        assert request.url and request.url.startswith("https://api.telegram.org/bot"), request.url
        payload = json.loads(request.body or b"{}")
        self.received.append({"url": request.url, **payload})
        status, body = (
            self.queued.popleft()
            if self.queued
            else (200, telegram_ok(payload.get("text", ""), len(self.received)))
        )
        response = requests.Response()
        response.status_code = status
        response._content = json.dumps(body).encode()
        response.headers["Content-Type"] = "application/json"
        if status == 429 and "parameters" in body:
            response.headers["Retry-After"] = str(body["parameters"]["retry_after"])
        response.url = request.url
        response.request = request
        return response


@pytest.fixture
def telegram(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[FakeTelegram]:
    fake = FakeTelegram()

    def send(adapter: Any, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        return fake.handle(request)

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", send)
    settings.OUTREACH_ALERT_URLS = [TELEGRAM_URL]
    yield fake
