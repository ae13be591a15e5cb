"""/metrics: Prometheus text exposition behind a bearer token (no login session)."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from outreach.metrics import prometheus

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _token(request: HttpRequest) -> str:
    # A header only: a token in the query string ends up in proxy logs and browser history.
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return ""


@login_not_required
@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """200 with the exposition for ``Authorization: Bearer <OUTREACH_METRICS_TOKEN>``; 403
    otherwise, and always 403 while no token is configured."""
    expected = settings.OUTREACH_METRICS_TOKEN
    given = _token(request)
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        return HttpResponse("forbidden\n", status=403, content_type="text/plain")
    return HttpResponse(prometheus.render(), content_type=CONTENT_TYPE)
