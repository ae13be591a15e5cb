"""Dashboard pages."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from outreach.scheduler.status import pool_status


def overview(request: HttpRequest) -> HttpResponse:
    rows = pool_status()
    return render(
        request,
        "dashboard/overview.html",
        {
            "rows": rows,
            "sent_today": sum(r.sent_today for r in rows),
            "capacity_today": sum(r.cap_today for r in rows),
        },
    )
