"""Project-level views: the health check."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from outreach.heartbeats import stale_loops
from outreach.lib.shutdown import stopping


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database answers and no engine loop has stopped beating; 503 otherwise,
    and 503 "stopping" while the process finishes its work after SIGTERM."""
    if stopping():
        # A load balancer takes the process out of rotation before it exits.
        return JsonResponse({"status": "stopping"}, status=503)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        stale = stale_loops()
    except DatabaseError as exc:
        return JsonResponse({"status": "error", "database": str(exc)[:200]}, status=503)
    if stale:
        return JsonResponse(
            {
                "status": "error",
                "database": "ok",
                "stale_loops": [
                    {
                        "name": s.name,
                        "host": s.host,
                        "pid": s.pid,
                        "silent_seconds": s.silent_seconds,
                    }
                    for s in stale
                ],
            },
            status=503,
        )
    return JsonResponse({"status": "ok", "database": "ok"})
