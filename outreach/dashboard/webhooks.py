"""Outgoing webhooks' delivery status: each endpoint with its counts, the latest deliveries
with their attempts and last error, dead letters first."""

from __future__ import annotations

from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from outreach.events.models import WebhookDelivery, WebhookEndpoint

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
