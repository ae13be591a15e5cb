"""The capacity planner page: ``outreach plan`` in the browser, on the same projection
(:mod:`outreach.scheduler.plan`)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from outreach.dashboard import charts, forms
from outreach.dashboard.views import _bad_query
from outreach.scheduler import plan


@require_GET
def capacity_plan(request: HttpRequest) -> HttpResponse:
    form = forms.PlanForm(request.GET or {"target": 1200})
    if not form.is_valid():
        return _bad_query(request, form)
    pool = plan.load_pool()
    target = form.cleaned_data["target"]
    by = form.cleaned_data["by"]
    if by is not None and by < pool.today:
        form.add_error("by", f"{by} is in the past (today is {pool.today})")
        return _bad_query(request, form)
    result = plan.make_plan(
        pool, target, by=by, per_domain=form.cleaned_data["per_domain"] or 3, days=90
    )
    labels = [f"{pool.today.fromordinal(pool.today.toordinal() + i):%d %b}"
              for i in range(len(result.capacities))]  # fmt: skip
    chart = charts.bar_chart(
        labels,
        charts.Series("capacity", result.capacities, "bar-sent"),
        line=target,
        line_label="target",
        title="Projected capacity with today's pool, next 90 days",
    )
    return render(
        request,
        "dashboard/plan.html",
        {"form": form, "plan": result, "lines": plan.describe(result), "chart": chart},
    )
