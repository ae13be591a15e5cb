"""The alerts page: what is open (digests and info notices are not), filtered by severity,
kind and state, a page at a time; acknowledge one, a selection, or every open one of a kind."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from outreach.alerts import inbox
from outreach.alerts.models import Alert
from outreach.dashboard import actions, forms
from outreach.dashboard.views import (
    _actor,
    _bad_query,
    _form_errors,
    page_after,
    staff_required,
)

PAGE_SIZE = 50


@require_GET
def alert_list(request: HttpRequest) -> HttpResponse:
    form = forms.AlertFilterForm(request.GET)
    if not form.is_valid():
        return _bad_query(request, form)
    show = form.cleaned_data["show"] or "open"
    severity = form.cleaned_data["severity"]
    kind = form.cleaned_data["kind"]
    qs = Alert.objects.order_by("-created_at", "-id")
    if show == "open":
        qs = inbox.open_alerts()
    elif show == "notices":
        qs = qs.filter(inbox.notice())
    elif show == "acknowledged":
        qs = qs.filter(acknowledged_at__isnull=False)
    if severity:
        qs = qs.filter(severity=severity)
    if kind:
        qs = qs.filter(kind=kind)
    alerts, next_query = page_after(
        request, qs, form.cleaned_data["before"], "created_at", PAGE_SIZE
    )
    # The open ones by kind, for "acknowledge all of a kind" (one grouped query).
    open_kinds = list(
        inbox.open_alerts().order_by().values("kind").annotate(n=Count("id")).order_by("kind")
    )
    return render(
        request,
        "dashboard/alerts.html",
        {
            "alerts": alerts,
            "show": show,
            "severity": severity,
            "kind": kind,
            "severities": Alert.Severity.values,
            "shows": ("open", "notices", "acknowledged", "all"),
            "open_kinds": open_kinds,
            "next_query": next_query,
            "failed": Alert.objects.filter(state=Alert.State.FAILED).count(),
        },
    )


@require_POST
@staff_required
def alert_ack_many(request: HttpRequest) -> HttpResponse:
    form = forms.AlertAckForm(request.POST)
    if not form.is_valid():
        _form_errors(request, form)
    else:
        done = actions.acknowledge_alerts(
            form.cleaned_data["alert"] or [], form.cleaned_data["kind"], actor=_actor(request)
        )
        messages.success(request, f"{done} alert{'s' if done != 1 else ''} acknowledged.")
    return _back_to_next(request)


@require_POST
@staff_required
def alert_ack(request: HttpRequest, pk: int) -> HttpResponse:
    if actions.acknowledge_alert(pk, actor=_actor(request)):
        messages.success(request, "Alert acknowledged.")
    return _back_to_next(request)


def _back_to_next(request: HttpRequest) -> HttpResponse:
    """Back to the page the form says (its "next" field), else to the alerts."""
    target = request.POST.get("next", "")
    # Only back to a page of this site: never an open redirect to wherever "next" says.
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("dashboard:alerts")
    return redirect(target)
