"""The tracking host's two URLs: ``/o/<token>`` (the pixel) and ``/c/<token>`` (a link).

Both answer without a login (mail clients and proxies fetch them) and never with a 500: a
forged, tampered or unknown token, or a message that no longer exists, is a 404 page, a
query string longer than any client sends is a 400, and a flood of one message's URLs is a
429 that costs no database work.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

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


@dataclass(frozen=True)
class _Fetch:
    """One tracking URL a token stands for, and what its fetch answers."""

    message_pk: int
    kind: str  # "o" the pixel, "c" a link
    answer: HttpResponse  # recorded or not
    flooded: HttpResponse  # when the message's URLs are flooded: nothing is recorded
    click: tracking.ClickTarget | None = None


def _serve(request: HttpRequest, read: Callable[[], _Fetch | None]) -> HttpResponse:
    """The shape both URLs share: the query check, the token, the rate limit, the visitor's
    class, and the event recorded once per message, kind and class."""
    refused = _common(request)
    if refused is not None:
        return refused
    fetch = read()
    facts = tracking.message_facts(fetch.message_pk) if fetch is not None else None
    if fetch is None or facts is None:
        return _not_found()
    if not tracking.allow(fetch.message_pk):
        return fetch.flooded
    agent, ip = request.META.get("HTTP_USER_AGENT", ""), _client_ip(request)
    click = fetch.click
    visit = visitors.classify(
        method=request.method or "GET",
        user_agent=agent,
        ip=ip,
        seconds_since_sent=tracking.seconds_since_sent(facts),
        is_click=click is not None,
        opened_before=click is None
        or not click.opens_tracked
        or tracking.opened_before(click.message_pk),
    )
    extra = {"link": click.index, "url": click.url[:500]} if click is not None else None
    tracking.record_visit(
        fetch.message_pk, facts, visit, kind=fetch.kind, user_agent=agent, ip=ip, extra=extra
    )
    return fetch.answer


def _open_of(token: str) -> _Fetch | None:
    message_pk = tracking.read_open(token)
    if message_pk is None:
        return None
    pixel_gif = _no_store(HttpResponse(tracking.PIXEL, content_type="image/gif"))
    return _Fetch(message_pk, "o", answer=pixel_gif, flooded=HttpResponse(status=429))


def _click_of(token: str) -> _Fetch | None:
    target = tracking.read_click(token)
    if target is None:
        return None
    # The person still reaches the link when the message's URLs are flooded; only the
    # recording stops.
    redirect = _no_store(HttpResponseRedirect(target.url))
    return _Fetch(target.message_pk, "c", answer=redirect, flooded=redirect, click=target)


@login_not_required
@require_http_methods(["GET", "HEAD"])
def pixel(request: HttpRequest, token: str) -> HttpResponse:
    return _serve(request, lambda: _open_of(token))


@login_not_required
@require_http_methods(["GET", "HEAD"])
def click(request: HttpRequest, token: str) -> HttpResponse:
    return _serve(request, lambda: _click_of(token))


@login_not_required
@require_http_methods(["GET"])
def tls_ask(request: HttpRequest) -> HttpResponse:
    """Caddy's on-demand TLS ``ask``: 200 when ``?domain=`` is the tracking host of a domain of
    the pool, so a certificate is obtained for our hosts and for nothing anyone points at us."""
    host = request.GET.get("domain", "").strip().lower().rstrip(".")
    if host and host in tracking.tracking_hosts():
        return HttpResponse("ok", content_type="text/plain")
    return _not_found()
