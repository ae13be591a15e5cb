"""Provider webhooks: authenticate, parse (django-anymail), store events, dead-letter the rest.

Every endpoint goes through :func:`handle`:

1. the shared secret (HTTP basic auth, ``ANYMAIL["WEBHOOK_SECRET"]``, several pairs for
   rotation) is checked first, from the headers alone; in production, no secret set means
   503 for everyone until one is;
2. size and content type are checked before anything is parsed;
3. the provider's own signature is checked: SNS signatures (:mod:`.sns`), Mailgun's HMAC
   with a freshness window and a one-time token, SendGrid's ECDSA signature;
4. anymail's parser turns the payload into tracking events, :mod:`.normalize` into ours;
5. the events, their effects and the Mailgun token are stored in one transaction.

A request refused for its credentials or signature (:data:`AUTH_REFUSALS`) is only counted
(:class:`~outreach.events.models.RefusedWebhook`), never stored with its body. An
authenticated request with bad input gets a 4xx and is kept (headers without credentials,
size-capped body) as a :class:`~outreach.events.models.DeadLetter` for ``outreach events
replay``. A database that cannot be reached gives a 503 so that the provider retries.
Nothing answers 500.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from anymail.exceptions import (
    AnymailConfigurationError,
    AnymailError,
    AnymailWebhookValidationFailure,
)
from anymail.utils import get_request_basic_auth
from anymail.webhooks.amazon_ses import AmazonSESTrackingWebhookView
from anymail.webhooks.base import AnymailCoreWebhookView
from anymail.webhooks.mailgun import MailgunTrackingWebhookView
from anymail.webhooks.postmark import PostmarkTrackingWebhookView
from anymail.webhooks.sendgrid import SendGridTrackingWebhookView
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import (
    DatabaseError,
    DataError,
    IntegrityError,
    connection,
    transaction,
)
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt

from outreach.events import normalize, sns
from outreach.events.models import AUTH_REFUSALS, DeadLetter, RefusedWebhook, SeenToken
from outreach.events.record import record
from outreach.lib import clock

log = logging.getLogger(__name__)

# A provider's batch (SendGrid posts up to a few hundred events) fits well under this; larger
# bodies are refused before they are read into memory.
MAX_BODY_BYTES = 1024 * 1024
# What a dead letter keeps of a refused oversized body.
DEAD_LETTER_OVERSIZE_BYTES = 64 * 1024
# Mailgun signs a timestamp: a signature older (or further in the future) than this is stale,
# and its token need only be remembered this long.
MAILGUN_MAX_AGE = timedelta(minutes=15)
# Headers never kept in a dead letter (credentials).
_SECRET_HEADERS = {"authorization", "cookie", "proxy-authorization"}


class WebhookError(Exception):
    """Refuse the request with ``status`` (4xx: bad input; 503: try again later)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _replaying(request: HttpRequest) -> bool:
    return bool(getattr(request, "outreach_replay", False))


class SesTrackingView(AmazonSESTrackingWebhookView):
    """SES event publishing and classic notifications through SNS, signatures verified."""

    def validate_request(self, request: HttpRequest) -> None:
        message = self._parse_sns_message(request)
        if not isinstance(message, dict):
            raise WebhookError("SNS body is not a JSON object")
        try:
            sns.verifier.verify(message)
        except sns.SnsSignatureError as exc:
            raise WebhookError(str(exc), exc.status) from exc

    def auto_confirm_sns_subscription(self, sns_message: dict[str, Any]) -> None:
        # The shared secret proves the subscription is meant for this installation; the
        # signature (checked above) that SNS sent it.
        if not self.basic_auth:
            raise WebhookError(
                "SNS SubscriptionConfirmation refused: set OUTREACH_WEBHOOK_SECRET and put it "
                "in the subscription URL",
                403,
            )
        try:
            sns.verifier.confirm_subscription(sns_message)
        except sns.SnsSignatureError as exc:
            raise WebhookError(str(exc), exc.status) from exc
        log.info("SNS subscription confirmed for %s", sns_message.get("TopicArn"))


class MailgunView(MailgunTrackingWebhookView):
    """Mailgun's signed webhooks: HMAC (anymail), plus freshness and one-time tokens."""

    def validate_request(self, request: HttpRequest) -> None:
        if _replaying(request):
            return  # replays are old by nature; the HMAC is still checked by anymail
        token, timestamp = mailgun_signature_fields(request)
        try:
            signed_at = datetime.fromtimestamp(int(timestamp), tz=UTC)
        except (TypeError, ValueError, OverflowError, OSError):
            raise WebhookError("Mailgun timestamp is not a number", 403) from None
        if abs(clock.now() - signed_at) > MAILGUN_MAX_AGE:
            raise WebhookError("Mailgun signature is stale (timestamp outside window)", 403)
        # A token seen before is Mailgun retrying (it retries every non-2xx answer, and a
        # lost 200 looks the same to it): the request goes on and, the token being the
        # event's id (anymail), its event is acknowledged as a duplicate. A captured
        # signature replayed with another body carries the same id and stores nothing.
        request.outreach_repeat = SeenToken.objects.filter(  # type: ignore[attr-defined]
            source="mailgun", token=token
        ).exists()


def mailgun_signature_fields(request: HttpRequest) -> tuple[str, str]:
    if request.content_type == "application/json":
        try:
            signature = json.loads(request.body)["signature"]
            return str(signature["token"]), str(signature["timestamp"])
        except (ValueError, KeyError, TypeError):
            raise WebhookError("Mailgun payload without a signature block", 403) from None
    return str(request.POST.get("token", "")), str(request.POST.get("timestamp", ""))


class PostmarkView(PostmarkTrackingWebhookView):
    """Postmark: basic auth only (Postmark signs nothing); anymail parses."""


class SendGridView(SendGridTrackingWebhookView):
    """SendGrid's signed event webhook (ECDSA, anymail) when a verification key is set."""


@dataclass(frozen=True)
class Endpoint:
    source: str
    view_class: type[AnymailCoreWebhookView]
    content_types: tuple[str, ...]
    # Called inside the storing transaction (Mailgun: remember the token).
    on_stored: Callable[[HttpRequest], None] | None = None


def _remember_mailgun_token(request: HttpRequest) -> None:
    if _replaying(request) or getattr(request, "outreach_repeat", False):
        return
    token, _ = mailgun_signature_fields(request)
    SeenToken.objects.create(source="mailgun", token=token[:255])
    # Tokens older than the freshness window can never be replayed; forget them.
    SeenToken.objects.filter(
        source="mailgun", seen_at__lt=clock.now() - 2 * MAILGUN_MAX_AGE
    ).delete()


ENDPOINTS: dict[str, Endpoint] = {
    # SNS posts JSON as text/plain.
    "amazon_ses": Endpoint("ses", SesTrackingView, ("text/plain", "application/json")),
    "mailgun": Endpoint(
        "mailgun",
        MailgunView,
        ("application/json", "multipart/form-data", "application/x-www-form-urlencoded"),
        on_stored=_remember_mailgun_token,
    ),
    "postmark": Endpoint("postmark", PostmarkView, ("application/json",)),
    "sendgrid": Endpoint("sendgrid", SendGridView, ("application/json",)),
}


def handle(request: HttpRequest, endpoint: Endpoint) -> HttpResponse:
    """Process one webhook request; see the module docstring for the steps and answers."""
    if request.method == "HEAD":
        return HttpResponse()  # some providers probe the URL when it is configured
    if request.method != "POST":
        return JsonResponse({"error": "POST only"}, status=405, headers={"Allow": "POST, HEAD"})
    try:
        stored, duplicates = _process(request, endpoint)
    except _Unconfigured as exc:
        log.error("webhook %s refused: %s", request.path, exc)
        _count_refused(request, str(exc), 503)
        return JsonResponse({"error": str(exc)}, status=503)
    except _Unauthorized as exc:
        # A challenge, not a dead letter: SNS sends the credentials only after a 401.
        log.info("webhook %s: %s", request.path, exc)
        _count_refused(request, str(exc), 401)
        return JsonResponse(
            {"error": str(exc)},
            status=401,
            headers={"WWW-Authenticate": 'Basic realm="outreach webhooks"'},
        )
    except WebhookError as exc:
        return _refuse(request, str(exc), exc.status)
    except (DataError, IntegrityError) as exc:
        return _refuse(request, f"payload the database refuses: {exc}", 400)
    except DatabaseError as exc:
        log.error("webhook %s: database unavailable: %s", request.path, exc)
        return JsonResponse({"error": "database unavailable, retry later"}, status=503)
    except AnymailWebhookValidationFailure as exc:
        return _refuse(request, str(exc), 403)
    except AnymailConfigurationError as exc:
        return _refuse(request, str(exc), 400)
    except (AnymailError, ValueError, TypeError, KeyError, AttributeError) as exc:
        return _refuse(request, f"malformed payload: {type(exc).__name__}: {exc}", 400)
    except Exception as exc:  # never a 500 for what a client sent
        log.exception("webhook %s: unexpected error", request.path)
        return _refuse(request, f"unprocessable: {type(exc).__name__}: {exc}", 400)
    return JsonResponse({"status": "ok", "stored": stored, "duplicates": duplicates})


class _Unauthorized(Exception):
    pass


def _process(request: HttpRequest, endpoint: Endpoint) -> tuple[int, int]:
    _check_shared_secret(request)
    length = _content_length(request)
    if length > MAX_BODY_BYTES:
        raise WebhookError(f"body of {length} bytes exceeds {MAX_BODY_BYTES}", 413)
    if request.content_type not in endpoint.content_types:
        raise WebhookError(
            f"content type {request.content_type!r} not accepted "
            f"(expected {', '.join(endpoint.content_types)})",
            415,
        )
    if len(request.body) > MAX_BODY_BYTES:
        raise WebhookError(f"body exceeds {MAX_BODY_BYTES} bytes", 413)
    try:
        view = endpoint.view_class()
    except AnymailConfigurationError as exc:
        # Our configuration, not the sender's fault: keep the request, let the provider retry.
        raise WebhookError(f"webhook not configured: {exc}", 503) from exc
    if _replaying(request):
        # The operator vouches for a replayed request; its credentials were never stored.
        view.basic_auth = []
    view.run_validators(request)
    incoming = []
    for anymail_event in view.parse_events(request):
        event = normalize.from_anymail(endpoint.source, anymail_event)
        if event is not None:
            incoming.append(event)
    _unique_ids(incoming)
    stored = 0
    with _sqlite_writer(), transaction.atomic():
        if endpoint.on_stored is not None:
            endpoint.on_stored(request)
        for event in incoming:
            if record(event) is not None:
                stored += 1
    return stored, len(incoming) - stored


# SQLite admits one writer at a time and a waiting connection polls in sleeps of up to 100 ms;
# the server's threads queue on this lock instead, and the next one starts the moment the lock
# is free. (Other processes still wait on SQLite's busy timeout; PostgreSQL needs none of it.)
_SQLITE_WRITE_LOCK = threading.Lock()


def _sqlite_writer() -> contextlib.AbstractContextManager[object]:
    if connection.vendor == "sqlite":
        return _SQLITE_WRITE_LOCK
    return contextlib.nullcontext()


class _Unconfigured(Exception):
    pass


def _check_shared_secret(request: HttpRequest) -> None:
    # ANYMAIL["WEBHOOK_SECRET"]: "user:password" or a list of them (rotation), as anymail reads it.
    configured = cast("str | list[str]", (settings.ANYMAIL or {}).get("WEBHOOK_SECRET") or [])
    allowed = [configured] if isinstance(configured, str) else configured
    if _replaying(request):
        return
    if not allowed:
        if settings.PRODUCTION:
            # Anyone could post a bounce or a complaint and suppress any address.
            raise _Unconfigured("webhooks are disabled until OUTREACH_WEBHOOK_SECRET is set")
        return
    given = get_request_basic_auth(request)
    if given is None:
        raise _Unauthorized("basic auth required")
    # Compare with every allowed pair (rotation); any() may stop early, which reveals only
    # which pair matched, not its content.
    if not any(constant_time_compare(given, pair) for pair in allowed):
        raise WebhookError("wrong basic auth credentials", 403)


def _unique_ids(events: list[normalize.Incoming]) -> None:
    """Give every event of a request its own id (one SNS message may carry several
    recipients; Postmark sends no id for most events)."""
    counts: dict[str | None, int] = {}
    for event in events:
        counts[event.provider_event_id] = counts.get(event.provider_event_id, 0) + 1
    for event in events:
        if event.provider_event_id is None:
            event.provider_event_id = normalize.fingerprint(event.raw)[:255]
        elif counts[event.provider_event_id] > 1:
            event.provider_event_id = f"{event.provider_event_id}:{event.recipient}"[:255]


def _content_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _refuse(request: HttpRequest, error: str, status: int) -> JsonResponse:
    log.warning("webhook %s refused (%s): %s", request.path, status, error[:300])
    if status in AUTH_REFUSALS:
        _count_refused(request, error, status)
    else:
        _dead_letter(request, error, status)
    return JsonResponse({"error": error[:500]}, status=status)


def _count_refused(request: HttpRequest, error: str, status: int) -> None:
    if _replaying(request):
        return
    try:
        with _sqlite_writer():
            RefusedWebhook.count_one(request.path, status, error, clock.now())
    except DatabaseError as exc:
        log.error("webhook %s: could not count a refused request: %s", request.path, exc)


def _dead_letter(request: HttpRequest, error: str, status: int) -> None:
    if _replaying(request):
        return
    try:
        body = _body_for_dead_letter(request)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _SECRET_HEADERS}
        DeadLetter.objects.create(
            endpoint=request.path[:200],
            headers=normalize.sanitize(headers),
            body=body,
            error=error[:2000],
            status_code=status,
            received_at=clock.now(),
        )
        DeadLetter.trim(request.path[:200])
    except DatabaseError as exc:
        log.error("webhook %s: could not keep dead letter: %s", request.path, exc)


def _body_for_dead_letter(request: HttpRequest) -> str:
    if _content_length(request) > MAX_BODY_BYTES and not getattr(request, "_body", None):
        data = request.read(DEAD_LETTER_OVERSIZE_BYTES)
    else:
        try:
            data = request.body[:MAX_BODY_BYTES]
        except Exception:  # the stream was already consumed or is unreadable
            data = b""
    return data.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def webhook_view(name: str) -> Callable[[HttpRequest], HttpResponse]:
    endpoint = ENDPOINTS[name]

    @csrf_exempt
    @login_not_required
    def view(request: HttpRequest) -> HttpResponse:
        return handle(request, endpoint)

    view.__name__ = f"{name}_tracking"
    view.endpoint = endpoint  # type: ignore[attr-defined]
    return view


def replay(dead_letter: DeadLetter) -> tuple[int, str]:
    """Run a dead letter through its endpoint again; on success it is marked replayed.

    The replay skips the shared secret (never stored) and Mailgun's freshness and one-time
    token (a replay is late and repeated by nature); provider signatures are still checked,
    and events already stored are acknowledged and ignored as on any repeat.
    """
    from django.test import RequestFactory
    from django.urls import Resolver404, resolve

    try:
        match = resolve(dead_letter.endpoint)
    except Resolver404:
        return 404, f"no endpoint at {dead_letter.endpoint}"
    endpoint = getattr(match.func, "endpoint", None)
    if not isinstance(endpoint, Endpoint):
        return 404, f"{dead_letter.endpoint} is not a webhook endpoint"
    if not dead_letter.replayable:
        # The replay skips the shared secret: only what authenticated may go through it.
        return 403, (
            f"refused with {dead_letter.status_code} for its credentials or signature: "
            "never replayed"
        )
    headers = {
        k: v
        for k, v in dead_letter.headers.items()
        if k.lower() not in ("content-type", "content-length", "host")
    }
    request = RequestFactory().generic(
        "POST",
        dead_letter.endpoint,
        data=dead_letter.body.encode("utf-8"),
        content_type=dead_letter.headers.get("Content-Type", "application/octet-stream"),
        headers=headers,
    )
    request.outreach_replay = True  # type: ignore[attr-defined]
    response = handle(request, endpoint)
    if response.status_code == 200:
        DeadLetter.objects.filter(pk=dead_letter.pk).update(replayed_at=clock.now())
    return response.status_code, response.content.decode("utf-8", errors="replace")
