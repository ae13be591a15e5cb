"""Project-level views: the health check."""

from __future__ import annotations

import logging

from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from outreach.heartbeats import stale_loops
from outreach.lib.shutdown import stopping

log = logging.getLogger(__name__)


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database answers and no engine loop has stopped beating; 503 otherwise,
    and 503 "stopping" while the process finishes its work after SIGTERM.

    Anyone may ask, so anyone gets only ``{"status": "ok"}``, ``{"status": "error"}`` or
    ``{"status": "stopping"}``: host names, PIDs and database errors are logged, and shown to a
    logged-in staff user only.
    """
    if stopping():
        # A load balancer takes the process out of rotation before it exits.
        return JsonResponse({"status": "stopping"}, status=503)
    details: dict[str, object]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        stale = stale_loops()
    except DatabaseError as exc:
        log.error("healthz: database unavailable: %s", exc)
        details = {"database": str(exc)[:200]}
    else:
        if not stale:
            return _health(request, "ok", {"database": "ok"}, 200)
        log.error("healthz: loops stopped beating: %s", ", ".join(s.name for s in stale))
        details = {
            "database": "ok",
            "stale_loops": [
                {"name": s.name, "host": s.host, "pid": s.pid, "silent_seconds": s.silent_seconds}
                for s in stale
            ],
        }
    return _health(request, "error", details, 503)


def _health(
    request: HttpRequest, status: str, details: dict[str, object], code: int
) -> JsonResponse:
    body: dict[str, object] = {"status": status}
    if request.user.is_authenticated and request.user.is_staff:
        body |= details
    return JsonResponse(body, status=code)
