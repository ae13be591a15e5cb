"""The tracking host's two URLs: ``/o/<token>`` (the pixel) and ``/c/<token>`` (a link).

Both answer without a login (mail clients and proxies fetch them) and never with a 500: a
forged, tampered or unknown token, or a message that no longer exists, is a 404 page, a
query string longer than any client sends is a 400, and a flood of one message's URLs is a
429 that costs no database work.
"""

from __future__ import annotations

import ipaddress

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.views.decorators.http import require_http_methods

from outreach.events import tracking, visitors

_NOT_FOUND = "This link is not valid."


def _client_ip(request: HttpRequest) -> str:
    """The visitor's address. Behind a reverse proxy on this machine (Caddy), the last
    X-Forwarded-For entry is the one the proxy added; from anywhere else the header is the
    visitor's own word and is ignored."""
    remote = request.META.get("REMOTE_ADDR", "")
    try:
        local = ipaddress.ip_address(remote).is_loopback
    except ValueError:
        local = False
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if local and forwarded:
        return forwarded.split(",")[-1].strip()[:64]
    return remote


def _common(request: HttpRequest) -> HttpResponse | None:
    if len(request.META.get("QUERY_STRING", "")) > tracking.MAX_QUERY:
        return HttpResponse("query string too long", status=400, content_type="text/plain")
    return None


def _not_found() -> HttpResponse:
    return HttpResponse(_NOT_FOUND, status=404, content_type="text/plain; charset=utf-8")


def _no_store(response: HttpResponse) -> HttpResponse:
    # Each fetch must reach us: a cached pixel or redirect would hide the next open.
    response["Cache-Control"] = "no-store, private, max-age=0"
    response["Referrer-Policy"] = "no-referrer"
    return response


@login_not_required
@require_http_methods(["GET", "HEAD"])
def pixel(request: HttpRequest, token: str) -> HttpResponse:
    refused = _common(request)
    if refused is not None:
        return refused
    message_pk = tracking.read_open(token)
    facts = tracking.message_facts(message_pk) if message_pk is not None else None
    if message_pk is None or facts is None:
        return _not_found()
    if not tracking.allow(message_pk):
        return HttpResponse(status=429)
    agent, ip = request.META.get("HTTP_USER_AGENT", ""), _client_ip(request)
    visit = visitors.classify(
        method=request.method or "GET",
        user_agent=agent,
        ip=ip,
        seconds_since_sent=tracking.seconds_since_sent(facts),
    )
    tracking.record_visit(message_pk, facts, visit, kind="o", user_agent=agent, ip=ip)
    return _no_store(HttpResponse(tracking.PIXEL, content_type="image/gif"))


@login_not_required
@require_http_methods(["GET", "HEAD"])
def click(request: HttpRequest, token: str) -> HttpResponse:
    refused = _common(request)
    if refused is not None:
        return refused
    target = tracking.read_click(token)
    facts = tracking.message_facts(target.message_pk) if target is not None else None
    if target is None or facts is None:
        return _not_found()
    # The person still reaches the link when the message's URLs are flooded; only the
    # recording stops.
    redirect = _no_store(HttpResponseRedirect(target.url))
    if not tracking.allow(target.message_pk):
        return redirect
    agent, ip = request.META.get("HTTP_USER_AGENT", ""), _client_ip(request)
    visit = visitors.classify(
        method=request.method or "GET",
        user_agent=agent,
        ip=ip,
        seconds_since_sent=tracking.seconds_since_sent(facts),
        is_click=True,
        opened_before=not target.opens_tracked or tracking.opened_before(target.message_pk),
    )
    tracking.record_visit(
        target.message_pk,
        facts,
        visit,
        kind="c",
        user_agent=agent,
        ip=ip,
        extra={"link": target.index, "url": target.url[:500]},
    )
    return redirect


@login_not_required
@require_http_methods(["GET"])
def tls_ask(request: HttpRequest) -> HttpResponse:
    """Caddy's on-demand TLS ``ask``: 200 when ``?domain=`` is the tracking host of a domain of
    the pool, so a certificate is obtained for our hosts and for nothing anyone points at us."""
    host = request.GET.get("domain", "").strip().lower().rstrip(".")
    if host and host in tracking.tracking_hosts():
        return HttpResponse("ok", content_type="text/plain")
    return _not_found()
