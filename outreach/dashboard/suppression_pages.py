"""The suppression list's pages: search it, add an address or a domain, take an entry off
(with a reason), export it as CSV. Every change goes through
:mod:`outreach.campaigns.suppression` (by way of :mod:`outreach.dashboard.actions`)."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from outreach.campaigns.models import Suppression
from outreach.dashboard import actions, forms
from outreach.dashboard.exports import csv_lines
from outreach.dashboard.views import PAGE_SIZE, _actor, _bad_query, _form_errors, staff_required
from outreach.lib import clock


@require_GET
def suppression_list(request: HttpRequest) -> HttpResponse:
    form = forms.SuppressionFilterForm(request.GET)
    if not form.is_valid():
        return _bad_query(request, form)
    q = form.cleaned_data["q"].strip().lower()
    qs = Suppression.objects.order_by("-created_at", "-id")
    if q:
        qs = qs.filter(value__contains=q)
    rows = list(qs[: PAGE_SIZE * 2])
    by_source = dict(
        Suppression.objects.values("source").annotate(n=Count("id")).values_list("source", "n")
    )
    return render(
        request,
        "dashboard/suppression.html",
        {
            "rows": rows,
            "q": q,
            "truncated": len(rows) == PAGE_SIZE * 2,
            "by_source": by_source,
            "total": sum(by_source.values()),
            "add_form": forms.SuppressionAddForm(),
        },
    )


@require_POST
@staff_required
def suppression_add(request: HttpRequest) -> HttpResponse:
    form = forms.SuppressionAddForm(request.POST)
    if not form.is_valid():
        _form_errors(request, form)
        return redirect("dashboard:suppression")
    try:
        added = actions.add_suppression(
            form.cleaned_data["value"],
            form.cleaned_data["kind"],
            reason=form.cleaned_data["reason"],
            actor=_actor(request),
        )
    except actions.ActionError as exc:
        messages.error(request, str(exc))
    else:
        value = form.cleaned_data["value"].strip().lower()
        if added:
            messages.success(request, f"{value} is suppressed.")
        else:
            messages.info(request, f"{value} was already suppressed.")
    return redirect("dashboard:suppression")


@require_POST
@staff_required
def suppression_remove(request: HttpRequest, pk: int) -> HttpResponse:
    form = forms.ReasonForm(request.POST)
    if not form.is_valid():
        _form_errors(request, form)
        return redirect("dashboard:suppression")
    try:
        entry = actions.remove_suppression(
            pk, reason=form.cleaned_data["reason"], actor=_actor(request)
        )
    except actions.ActionError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{entry.value} is no longer suppressed.")
    return redirect("dashboard:suppression")


@require_GET
def suppression_export(request: HttpRequest) -> StreamingHttpResponse:
    rows = (
        Suppression.objects.order_by("kind", "value")
        .values_list("kind", "value", "source", "reason", "created_by", "created_at")
        .iterator(chunk_size=2000)
    )
    response = StreamingHttpResponse(
        csv_lines(["kind", "value", "source", "reason", "created_by", "created_at"], rows),
        content_type="text/csv; charset=utf-8",
    )
    stamp = clock.now().strftime("%Y%m%d")
    response["Content-Disposition"] = f'attachment; filename="suppression-{stamp}.csv"'
    return response
