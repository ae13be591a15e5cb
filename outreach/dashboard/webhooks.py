"""Outgoing webhooks' delivery status: each endpoint with its counts, the latest deliveries
with their attempts and last error, dead letters first."""

from __future__ import annotations

from collections import defaultdict

from django.contrib import messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from outreach.dashboard.views import staff_required
from outreach.events.models import WebhookDelivery, WebhookEndpoint
from outreach.events.outgoing import retry_dead

LATEST = 200


@require_GET
def webhook_status(request: HttpRequest) -> HttpResponse:
    # Counted per endpoint and state on their index (a year of deliveries is never read),
    # then put on each endpoint: two small queries instead of one join over every delivery.
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    for endpoint_id, state, n in (
        WebhookDelivery.objects.order_by()
        .values("endpoint", "state")
        .annotate(n=Count("pk"))
        .values_list("endpoint", "state", "n")
    ):
        counts[endpoint_id][state] = n
    endpoints = list(WebhookEndpoint.objects.order_by("name"))
    for endpoint in endpoints:
        mine = counts.get(endpoint.pk, {})
        endpoint.pending = mine.get(WebhookDelivery.State.PENDING, 0)  # type: ignore[attr-defined]
        endpoint.delivered = mine.get(WebhookDelivery.State.DELIVERED, 0)  # type: ignore[attr-defined]
        endpoint.dead = mine.get(WebhookDelivery.State.DEAD, 0)  # type: ignore[attr-defined]
    # Every delivery belongs to an endpoint (deleted with it).
    deliveries = WebhookDelivery.objects.select_related("endpoint").order_by("-created_at", "-pk")[
        :LATEST
    ]
    return render(
        request,
        "dashboard/webhooks.html",
        {"endpoints": endpoints, "deliveries": deliveries},
    )


@require_POST
@staff_required
def webhook_retry(request: HttpRequest, pk: int) -> HttpResponse:
    if retry_dead(pk):
        messages.success(request, "Queued again.")
    else:
        messages.error(request, "Only a dead delivery can be queued again.")
    return redirect("dashboard:webhooks")
