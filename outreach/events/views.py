"""One-click unsubscribe pages (RFC 8058): ``/u/<token>``.

GET shows a confirmation page with one button (mail scanners follow GET links; they must not
unsubscribe anyone). POST with ``List-Unsubscribe=One-Click``, sent by the mail client or by
that button, unsubscribes at once without a login. Repeating it is harmless; a forged token
gets a 404.
"""

from __future__ import annotations

import logging

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from outreach.campaigns.models import Message
from outreach.campaigns.unsubscribe import read_token
from outreach.events import normalize as n
from outreach.events.record import record
from outreach.lib import clock

log = logging.getLogger(__name__)
_TEMPLATE = "events/unsubscribe.html"


# CSRF-exempt on purpose: the POST comes from a mail client that never saw our page (RFC 8058);
# the signed token in the URL is what authorizes it.
@csrf_exempt
@login_not_required
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    message_id = read_token(token)
    message = Message.objects.filter(pk=message_id).first() if message_id else None
    if message is None:
        return render(request, _TEMPLATE, {"invalid": True}, status=404)
    if request.method != "POST":
        return render(request, _TEMPLATE, {"email": message.to_email})
    if request.POST.get("List-Unsubscribe") != "One-Click":
        return HttpResponse("expected List-Unsubscribe=One-Click", status=400)
    unsubscribe_message(message, source="unsubscribe", detail="one-click link")
    return render(request, _TEMPLATE, {"email": message.to_email, "done": True})


def unsubscribe_message(message: Message, *, source: str, detail: str) -> bool:
    """Record the unsubscribe of ``message``'s recipient; False when it was already recorded."""
    event = record(
        n.Incoming(
            source=source,
            type=n.UNSUBSCRIBED,
            recipient=message.to_email.lower(),
            occurred_at=clock.now(),
            # One unsubscribe per message: a second click is acknowledged and ignored.
            provider_event_id=f"message:{message.pk}",
            outreach_message_id=message.pk,
            raw={"via": detail, "message_id": message.pk},
        )
    )
    if event is not None:
        log.info("unsubscribed %s (%s)", message.to_email, detail)
    return event is not None
