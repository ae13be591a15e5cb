"""Outgoing webhooks' delivery status: each endpoint with its counts, the latest deliveries
with their attempts and last error, dead letters first."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from outreach.dashboard.views import staff_required
from outreach.events.models import WebhookDelivery, WebhookEndpoint
from outreach.events.outgoing import retry_dead

LATEST = 200


@require_GET
def webhook_status(request: HttpRequest) -> HttpResponse:
    states = WebhookDelivery.State
    endpoints = WebhookEndpoint.objects.order_by("name").annotate(
        pending=Count("deliveries", filter=Q(deliveries__state=states.PENDING)),
        delivered=Count("deliveries", filter=Q(deliveries__state=states.DELIVERED)),
        dead=Count("deliveries", filter=Q(deliveries__state=states.DEAD)),
    )
    deliveries = (
        WebhookDelivery.objects.select_related("endpoint")
        .filter(endpoint__in=endpoints)
        .order_by("-created_at", "-pk")[:LATEST]
    )
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
