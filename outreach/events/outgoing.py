"""Outgoing webhooks for the user's CRM, signed per Standard Webhooks.

Events: ``reply.received`` (with its label), ``lead.interested``, ``lead.unsubscribed``,
``lead.bounced``, ``mailbox.paused``, ``mailbox.resumed``.

1. :func:`emit` stores one :class:`WebhookDelivery` per enabled endpoint that takes the event,
   in the caller's transaction (the outbox): an event is sent only if what caused it was
   committed, and nothing is lost when a receiver is down. Its ``webhook-id`` derives from the
   event's key, so the same event emitted twice is stored once.
2. :func:`deliver_one` (the ``webhooks`` loop of ``outreach run``) claims the oldest due
   delivery with a conditional UPDATE, POSTs it with the ``webhook-id``,
   ``webhook-timestamp`` and ``webhook-signature`` headers (the ``standardwebhooks``
   package's signature), and on failure retries after :data:`BACKOFF` steps until 24 hours
   have passed since the event; then it is dead-lettered (``dead``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from datetime import datetime, timedelta
from typing import Any

import requests
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.db.models.signals import post_save
from standardwebhooks.webhooks import Webhook

from outreach.events import normalize as n
from outreach.events.models import Event, InboundMail, WebhookDelivery, WebhookEndpoint
from outreach.events.signals import events_recorded
from outreach.lib import clock
from outreach.lib.loop import Loop
from outreach.lib.secrets import SecretError, resolve
from outreach.pool.config_apply import diff, resolve_secrets
from outreach.pool.config_spec import Plan, WebhookSpec
from outreach.pool.models import Mailbox, StateChange

log = logging.getLogger(__name__)

EVENT_TYPES = (
    "reply.received",
    "lead.interested",
    "lead.unsubscribed",
    "lead.bounced",
    "mailbox.paused",
    "mailbox.resumed",
)
# Retry schedule after each failed attempt (Standard Webhooks' suggested shape: quick
# retries, then hours apart), the last step repeated; after GIVE_UP the delivery is dead.
BACKOFF = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
)
GIVE_UP = timedelta(hours=24)
# How long a claimed delivery is ours before another loop may take it (a crashed sender).
LEASE = timedelta(minutes=2)
TIMEOUT_SECONDS = 10


def msg_id_for(key: str) -> str:
    return "msg_" + hashlib.sha256(key.encode()).hexdigest()[:32]


def emit(event_type: str, data: dict[str, Any], *, key: str) -> int:
    """Queue ``event_type`` with ``data`` for every endpoint that takes it; ``key`` names the
    event (the same key is queued once). Returns how many deliveries were queued."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event {event_type!r}")
    endpoints = [
        e
        for e in WebhookEndpoint.objects.filter(enabled=True)
        if not e.events or event_type in e.events
    ]
    if not endpoints:
        return 0
    now = clock.now()
    msg_id = msg_id_for(key)
    payload = json.loads(
        json.dumps(
            {"type": event_type, "timestamp": now.isoformat(), "data": data},
            cls=DjangoJSONEncoder,
        )
    )
    queued = 0
    for endpoint in endpoints:
        try:
            with transaction.atomic():
                WebhookDelivery.objects.create(
                    endpoint=endpoint,
                    event_type=event_type,
                    msg_id=msg_id,
                    payload=payload,
                    next_attempt_at=now,
                    created_at=now,
                )
        except IntegrityError:
            continue  # this event is queued for this endpoint already
        queued += 1
    return queued


def mail_summary(mail: InboundMail) -> dict[str, Any]:
    return {
        "inbound_mail_id": mail.pk,
        "from": mail.from_address,
        "subject": mail.subject,
        "mailbox": mail.mailbox.address if mail.mailbox_id else "",
        "campaign": mail.campaign.slug if mail.campaign_id and mail.campaign else None,
        "lead_id": mail.lead_id,
        "message_id": mail.message_id_header,
        "occurred_at": mail.occurred_at,
    }


# --- what emits ----------------------------------------------------------------------------


def _on_events(sender: object, events: list[Event], **kwargs: Any) -> None:
    """Unsubscribes and hard bounces, whatever their source (IMAP, webhooks, one-click)."""
    wanted = [e for e in events if _emits(e)]
    if not wanted or not WebhookEndpoint.objects.filter(enabled=True).exists():
        return
    for event in wanted:
        _on_event(event)


def _emits(event: Event) -> bool:
    return (event.type == n.UNSUBSCRIBED and bool(event.recipient)) or (
        event.type == n.BOUNCED and event.bounce_type == Event.BounceType.HARD
    )


def _on_event(event: Event) -> None:
    data = {
        "email": event.recipient,
        "source": event.source,
        "campaign": event.campaign_id,
        "mailbox": event.mailbox_id,
        "occurred_at": event.occurred_at,
    }
    if event.type == n.UNSUBSCRIBED and event.recipient:
        emit("lead.unsubscribed", data, key=f"lead.unsubscribed:{event.pk}")
    elif event.type == n.BOUNCED and event.bounce_type == Event.BounceType.HARD:
        data["diagnostic"] = event.diagnostic[:500]
        emit("lead.bounced", data, key=f"lead.bounced:{event.pk}")


def _on_state_change(sender: object, instance: StateChange, created: bool, **kwargs: Any) -> None:
    if not created or instance.mailbox_id is None:
        return
    data = {
        "mailbox": instance.mailbox.address if instance.mailbox else "",
        "from_state": instance.from_state,
        "to_state": instance.to_state,
        "reason": instance.reason,
        "actor": instance.actor,
        "at": instance.at,
    }
    if instance.to_state == Mailbox.State.PAUSED:
        emit("mailbox.paused", data, key=f"mailbox.paused:{instance.pk}")
    elif instance.from_state == Mailbox.State.PAUSED:
        emit("mailbox.resumed", data, key=f"mailbox.resumed:{instance.pk}")


def connect_signals() -> None:
    events_recorded.connect(_on_events, dispatch_uid="outgoing-webhooks-events")
    post_save.connect(_on_state_change, sender=StateChange, dispatch_uid="outgoing-webhooks-sc")


# --- delivery ------------------------------------------------------------------------------


def next_attempt(attempts: int, created_at: datetime, now: datetime) -> datetime | None:
    """When to try again after ``attempts`` failures; None when it is time to give up (the
    event is 24 hours old). The last try falls at 24 hours, not after."""
    if now - created_at >= GIVE_UP:
        return None
    wait = BACKOFF[min(attempts, len(BACKOFF)) - 1]
    return min(now + wait, created_at + GIVE_UP)


def _claim_due() -> WebhookDelivery | None:
    now = clock.now()
    due = (
        WebhookDelivery.objects.select_related("endpoint")
        .filter(state=WebhookDelivery.State.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "id")
        .first()
    )
    if due is None:
        return None
    # Race: two loops picking the same delivery. Only the one whose UPDATE still sees the old
    # next_attempt_at owns it for the lease.
    claimed = WebhookDelivery.objects.filter(
        Q(pk=due.pk),
        Q(state=WebhookDelivery.State.PENDING),
        Q(next_attempt_at=due.next_attempt_at),
    ).update(next_attempt_at=now + LEASE)
    return due if claimed == 1 else None


def signed_headers(secret: str, msg_id: str, when: datetime, body: str) -> dict[str, str]:
    signature = Webhook(secret).sign(msg_id=msg_id, timestamp=when, data=body)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": "outreach-webhooks",
    }


def deliver_one() -> bool:
    """Send the oldest due delivery; False when none is due (the loop then sleeps)."""
    delivery = _claim_due()
    if delivery is None:
        return False
    endpoint = delivery.endpoint
    body = json.dumps(delivery.payload, separators=(",", ":"))
    now = clock.now()
    status: int | None = None
    try:
        headers = signed_headers(resolve(endpoint.secret), delivery.msg_id, now, body)
        response = requests.post(
            endpoint.url, data=body.encode(), headers=headers, timeout=TIMEOUT_SECONDS
        )
        status = response.status_code
        error = "" if 200 <= status < 300 else f"HTTP {status}: {response.text[:300]}"
    except (requests.RequestException, SecretError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:1000]
    attempts = delivery.attempts + 1
    if not error:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            state=WebhookDelivery.State.DELIVERED,
            attempts=attempts,
            last_status=status,
            last_error="",
            delivered_at=clock.now(),
        )
        return True
    retry_at = next_attempt(attempts, delivery.created_at, now)
    log.warning("webhook %s to %s: %s", delivery.msg_id, endpoint.name, error)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        state=WebhookDelivery.State.PENDING if retry_at else WebhookDelivery.State.DEAD,
        attempts=attempts,
        last_status=status,
        last_error=error[:2000],
        next_attempt_at=retry_at or now,
    )
    return True


def retry_dead(delivery_id: int) -> bool:
    """Queue a dead delivery again (the operator's replay): a new 24-hour window, the same
    ``webhook-id``. False when it is not dead."""
    now = clock.now()
    return (
        WebhookDelivery.objects.filter(pk=delivery_id, state=WebhookDelivery.State.DEAD).update(
            state=WebhookDelivery.State.PENDING, created_at=now, next_attempt_at=now
        )
        == 1
    )


def make_loop(stop: threading.Event) -> Loop:
    return Loop(name="webhooks", handle_one=deliver_one, idle_seconds=2.0, stop=stop)


def apply_endpoints(specs: list[WebhookSpec], plan: Plan) -> None:
    """Apply the ``[[webhooks]]`` of ``outreach apply``: create, update, disable endpoints."""
    existing = {w.name: w for w in WebhookEndpoint.objects.all()}
    for ws in specs:
        endpoint = existing.pop(ws.name, None)
        created = endpoint is None
        if endpoint is None:
            endpoint = WebhookEndpoint(name=ws.name)
        secret = resolve_secrets({"secret": ws.secret}, {"secret": endpoint.secret})["secret"]
        lines = diff(endpoint, {"url": ws.url, "events": ws.events, "enabled": True})
        secret_changed = endpoint.secret != secret
        endpoint.secret = secret
        if created:
            endpoint.save()
            plan.add(f"create webhook {ws.name} → {ws.url}")
        elif lines or secret_changed:
            endpoint.save()
            for line in lines + (["secret changed"] if secret_changed else []):
                plan.add(f"update webhook {ws.name}: {line}")
    for endpoint in existing.values():
        if endpoint.enabled:
            endpoint.enabled = False
            endpoint.save(update_fields=["enabled"])
            plan.add(f"disable webhook {endpoint.name} (not in the file)")
