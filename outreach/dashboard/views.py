"""Dashboard pages: what the operator looks at every morning.

Every page needs a login (the project's LoginRequiredMiddleware); every action is POST only,
CSRF-protected and staff only (:func:`staff_required`). Pages read through
:mod:`outreach.dashboard.pool_rows`, :mod:`~outreach.dashboard.campaign_rows` and
:mod:`~outreach.dashboard.costs` (a fixed number of queries per page) and act through
:mod:`outreach.dashboard.actions` (which goes through the owning apps).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

from axes.models import AccessFailureLog
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from outreach.campaigns.leadrows import ImportReport
from outreach.campaigns.leads import import_leads
from outreach.campaigns.models import Campaign
from outreach.dashboard import (
    actions,
    attention,
    campaign_rows,
    charts,
    costs,
    forms,
    mailbox_table,
    pool_rows,
    queries,
    recipient_mix,
    trends,
)
from outreach.dashboard.engagement import add_engagement, mailbox_engagement
from outreach.events.models import Event
from outreach.metrics import abtest
from outreach.pool.models import DnsCheck, Mailbox, PoolSettings, StateChange
from outreach.scheduler.capacity import domain_holds

PAGE_SIZE = 100
FAILED_LOGINS_SHOWN = 50
View = Callable[..., HttpResponse]


def staff_required(view: View) -> View:
    """Only staff may act; anyone else logged in gets 403 (anonymous users never get here:
    the login middleware sends them to the login page first)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_staff:
            raise PermissionDenied("staff only")
        return view(request, *args, **kwargs)

    return wrapper


def _actor(request: HttpRequest) -> str:
    return f"user:{request.user.get_username()}"


def _bad_query(request: HttpRequest, form: Any) -> HttpResponse:
    """The 400 page of a list whose query string does not pass its filter form."""
    errors = [
        (field, error) for field, field_errors in form.errors.items() for error in field_errors
    ]
    return render(request, "dashboard/bad_request.html", {"errors": errors}, status=400)


def _form_errors(request: HttpRequest, form: Any) -> None:
    for field, errors in form.errors.items():
        for error in errors:
            messages.error(request, f"{field}: {error}" if field != "__all__" else error)


def page_after(
    request: HttpRequest,
    qs: QuerySet[Any],
    cursor: tuple[Any, int] | None,
    at: str,
    size: int = PAGE_SIZE,
) -> tuple[list[Any], str | None]:
    """One page of a list ordered newest first by (``at``, id): the rows after ``cursor`` (the
    last (time, id) of the page before, from the filter form's ``before``), and the query
    string of the next page, None on the last one."""
    if cursor:
        qs = qs.filter(Q(**{f"{at}__lt": cursor[0]}) | Q(**{at: cursor[0], "id__lt": cursor[1]}))
    rows = list(qs[: size + 1])
    if len(rows) <= size:
        return rows, None
    rows = rows[:size]
    params = request.GET.copy()
    params["before"] = f"{getattr(rows[-1], at).isoformat()}~{rows[-1].pk}"
    return rows, params.urlencode()


# Overview ------------------------------------------------------------------------------------


@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    form = forms.OverviewForm(request.GET)
    if not form.is_valid():
        return _bad_query(request, form)
    pool = PoolSettings.load()
    window_counts = queries.window_event_counts(pool)
    # What holds each domain, read once for both lists (three queries saved).
    holds = domain_holds()
    mailboxes = pool_rows.mailbox_rows(
        pool, last_event=False, window_counts=window_counts, holds=holds
    )
    domains = pool_rows.domain_rows(pool, mailboxes, holds)
    today_use = pool_rows.global_today(pool, mailboxes, domains)
    return render(
        request,
        "dashboard/overview.html",
        {
            **_pool_health(pool, window_counts, mailboxes, domains, today_use),
            **_pool_trends(pool, form.cleaned_data["trend"], mailboxes, today_use["capacity"]),
            "attention": attention.rows(pool, mailboxes, domains),
            "today": queries.pool_day(pool),
            "pool": pool,
            "thresholds": pool.thresholds,
            "global": today_use,
            "domains": domains,
            "alerts": pool_rows.open_alerts(),
            "providers": pool_rows.provider_rows(),
            **_unknown_messages(),
            "cost": costs.month_cost(pool, [d.domain for d in domains]),
        },
    )


def _pool_health(
    pool: PoolSettings,
    window_counts: queries.WindowCounts,
    mailboxes: list[pool_rows.MailboxRow],
    domains: list[pool_rows.DomainRow],
    today_use: dict[str, int],
) -> dict[str, Any]:
    """The overview's health: mailboxes by state, the window's rates judged, the verdict, and
    the window's chart against today's capacity."""
    window_days = pool.thresholds.window_days
    # The window's sends per day, read once for the rates and the chart.
    sent_days = pool_rows.sent_by_day(pool, window_days)
    rates, checks = pool_rows.pool_rates(pool, window_counts, sent_days)
    by_state: dict[str, int] = {state: 0 for state in Mailbox.State.values}
    for row in mailboxes:
        by_state[row.mailbox.state] += 1
    series = pool_rows.daily_series(
        pool, window_days, per_day=window_counts.by_day, sent_days=sent_days
    )
    statuses = {c.name: c.status for c in checks}
    held_domains = sum(1 for d in domains if d.held)
    return {
        "health": attention.judge(by_state, statuses, held_domains, len(domains)),
        "window_days": window_days,
        "by_state": by_state,
        "rates": rates,
        "checks": checks,
        "chart": charts.sends_chart(
            series,
            # Today's capacity, not the global cap: a 1,500 line would flatten a 200-a-day pool.
            line=today_use["capacity"],
            line_label="capacity today",
            title=f"Pool sends, last {window_days} days",
        ),
    }


def _pool_trends(
    pool: PoolSettings, days: int, mailboxes: list[pool_rows.MailboxRow], capacity: int
) -> dict[str, Any]:
    """The overview's trends over ``days`` and its recipients' mix."""
    recipients, recipient_totals = recipient_mix.rows(pool)
    return {
        "trend_days": days,
        "trend_spans": trends.SPANS,
        "trend_chart": trends.chart(
            trends.daily(pool, days, {r.mailbox.pk: r.mailbox.state for r in mailboxes}),
            capacity,
        ),
        "recipients": recipients,
        "recipient_totals": recipient_totals,
    }


def _unknown_messages() -> dict[str, Any]:
    """The messages in doubt, for the operator to decide on."""
    unknown_total, unknown = pool_rows.unknown_messages()
    return {
        "unknown_total": unknown_total,
        "unknown": unknown,
        "unknown_form": forms.UnknownMessageForm(),
    }


@require_POST
@staff_required
def resolve_unknown(request: HttpRequest, pk: int) -> HttpResponse:
    form = forms.UnknownMessageForm(request.POST)
    if not form.is_valid():
        _form_errors(request, form)
    else:
        try:
            msg = actions.resolve_unknown(
                pk,
                form.cleaned_data["decision"],
                reason=form.cleaned_data["reason"],
                actor=_actor(request),
            )
        except actions.ActionError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Message {msg.pk} to {msg.to_email}: now {msg.state}.")
    return redirect(reverse("dashboard:overview") + "#unknown")


# Mailboxes -----------------------------------------------------------------------------------


def _with_links(rows: list[pool_rows.MailboxRow]) -> list[pool_rows.MailboxRow]:
    """Each row's page link, from one reverse() instead of one per row."""
    pattern = reverse("dashboard:mailbox", args=[987654321])
    for row in rows:
        row.href = pattern.replace("987654321", str(row.mailbox.pk))
    return rows


@require_GET
def mailbox_list(request: HttpRequest) -> HttpResponse:
    pool = PoolSettings.load()
    form = forms.MailboxFilterForm(request.GET)
    if not form.is_valid():
        return _bad_query(request, form)
    rows = _with_links(pool_rows.mailbox_rows(pool))
    state = form.cleaned_data["state"]
    if state:
        rows = [r for r in rows if r.mailbox.state == state]
    return render(
        request,
        "dashboard/mailboxes.html",
        {
            "rows": rows,
            # Each row written out once: 300 rows through the template engine cost most
            # of the page's render time.
            "lines": [mailbox_table.row_html(r) for r in rows],
            "state": state,
            "states": Mailbox.State.values,
            "thresholds": pool.thresholds,
        },
    )


@require_GET
def mailbox_detail(request: HttpRequest, pk: int) -> HttpResponse:
    pool = PoolSettings.load()
    mailbox = get_object_or_404(Mailbox.objects.select_related("domain", "provider"), pk=pk)
    today = queries.pool_day(pool)
    series = pool_rows.daily_series(pool, 30, mailbox=mailbox)
    cap = mailbox.cap_today(pool, today)
    chart = charts.sends_chart(
        series,
        complaints=True,
        line=cap,
        line_label="cap today",
        title=f"{mailbox.address}, last 30 days",
    )
    return render(
        request,
        "dashboard/mailbox_detail.html",
        {
            "mailbox": mailbox,
            "row": pool_rows.mailbox_rows(pool, mailbox=mailbox)[0],
            "series": series,
            "chart": chart,
            "audit": list(
                StateChange.objects.filter(mailbox=mailbox)
                .select_related("mailbox", "domain", "provider")
                .order_by("-at", "-id")[:PAGE_SIZE]
            ),
            "actions": actions.mailbox_actions_for(mailbox),
            "form": forms.MailboxActionForm(),
            "default_cooldown_days": pool.thresholds.block_cooldown_days,
            "thresholds": pool.thresholds,
            # Open and click rates over the same window as the other rates.
            "engagement": mailbox_engagement(
                mailbox.pk, queries.window_start(pool, pool.thresholds.window_days)[0]
            ),
        },
    )


@require_POST
@staff_required
def mailbox_action(request: HttpRequest, pk: int) -> HttpResponse:
    mailbox = get_object_or_404(Mailbox.objects.select_related("domain"), pk=pk)
    form = forms.MailboxActionForm(request.POST)
    if not form.is_valid():
        _form_errors(request, form)
        return redirect("dashboard:mailbox", pk=pk)
    try:
        change = actions.act_on_mailbox(
            mailbox,
            form.cleaned_data["action"],
            reason=form.cleaned_data["reason"],
            actor=_actor(request),
            cooldown_days=form.cleaned_data.get("cooldown_days"),
        )
    except actions.ActionError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request, f"{mailbox.address}: {change.from_state} → {change.to_state} ({change.reason})"
        )
    return redirect("dashboard:mailbox", pk=pk)


# Domains -------------------------------------------------------------------------------------


@require_GET
def domain_list(request: HttpRequest) -> HttpResponse:
    pool = PoolSettings.load()
    rows = pool_rows.domain_rows(pool, pool_rows.mailbox_rows(pool, last_event=False))
    return render(
        request,
        "dashboard/domains.html",
        {"rows": rows, "dns": _latest_dns_checks()},
    )


def _latest_dns_checks() -> dict[int, Any]:
    """The latest DNS check of every domain, in one query."""
    latest = DnsCheck.objects.filter(domain=OuterRef("domain")).order_by("-checked_at", "-id")
    rows = DnsCheck.objects.filter(pk=Subquery(latest.values("pk")[:1]))
    return {row.domain_id: row for row in rows}


# Campaigns -----------------------------------------------------------------------------------


@require_GET
def campaign_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "dashboard/campaigns.html",
        {"rows": campaign_rows.campaign_rows(), "today": _today()},
    )


@require_GET
def campaign_detail(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = get_object_or_404(Campaign, slug=slug)
    # The campaign's rollups per step and variant, read once for its row, steps and funnel.
    outcomes = campaign_rows.campaign_outcomes(campaign.pk)
    row = campaign_rows.campaign_rows(campaign, outcomes)[0]
    steps = campaign_rows.campaign_steps(campaign, outcomes)
    # Each step's A/B verdict on reply rates (outreach.metrics.abtest names its test).
    verdicts = {
        s.step.pk: abtest.verdict(
            [abtest.Arm(v.label, c["sent"], c["replied"]) for v, c in s.variants]
        )
        for s in steps
        if len(s.variants) > 1
    }
    return render(
        request,
        "dashboard/campaign_detail.html",
        {
            "campaign": campaign,
            "row": row,
            "steps": steps,
            "tracked": add_engagement(campaign, steps),
            "verdicts": verdicts,
            "daily_chart": trends.campaign_chart(
                trends.campaign_daily(PoolSettings.load(), campaign.pk)
            ),
            "funnel": trends.campaign_funnel(campaign.pk, campaign_rows.outcome_totals(outcomes)),
            "state_form": forms.CampaignStateForm(),
        },
    )


@require_POST
@staff_required
def campaign_state(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = get_object_or_404(Campaign, slug=slug)
    form = forms.CampaignStateForm(request.POST)
    if not form.is_valid():
        _form_errors(request, form)
    else:
        try:
            actions.set_campaign_state(campaign, form.cleaned_data["action"], actor=_actor(request))
        except actions.ActionError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Campaign {campaign.slug} is now {campaign.state}.")
    return redirect("dashboard:campaign", slug=slug)


# Events and audit log ------------------------------------------------------------------------


@require_GET
def event_list(request: HttpRequest) -> HttpResponse:
    form = forms.EventFilterForm(request.GET)
    if not form.is_valid():
        return _bad_query(request, form)
    qs = Event.objects.select_related("mailbox", "campaign").order_by("-occurred_at", "-id")
    filters = {k: v for k, v in form.cleaned_data.items() if v not in (None, "")}
    if "type" in filters:
        qs = qs.filter(type=filters["type"])
    if "mailbox" in filters:
        qs = qs.filter(mailbox_id=filters["mailbox"])
    if "campaign" in filters:
        qs = qs.filter(campaign_id=filters["campaign"])
    if "recipient" in filters:
        qs = qs.filter(recipient=filters["recipient"].strip().lower())
    events, next_query = page_after(request, qs, filters.get("before"), "occurred_at")
    return render(
        request,
        "dashboard/events.html",
        {
            "form": form,
            "events": events,
            "next_query": next_query,
            "filtered": bool(filters),
            "mailboxes": Mailbox.objects.order_by("address").values_list("pk", "address"),
            "campaigns": Campaign.objects.order_by("slug").values_list("pk", "slug"),
            "types": Event.Type.choices,
        },
    )


@require_GET
def audit_log(request: HttpRequest) -> HttpResponse:
    form = forms.AuditFilterForm(request.GET)
    if not form.is_valid():
        return _bad_query(request, form)
    qs = StateChange.objects.select_related("mailbox", "domain", "provider").order_by("-at", "-id")
    actor = form.cleaned_data["actor"].strip()
    if actor:
        qs = qs.filter(actor__icontains=actor)
    if form.cleaned_data["mailbox"]:
        qs = qs.filter(mailbox_id=form.cleaned_data["mailbox"])
    rows, next_query = page_after(request, qs, form.cleaned_data["before"], "at")
    # Failed logins (django-axes), newest first; a locked-out one is flagged.
    failed_logins = AccessFailureLog.objects.order_by("-attempt_time")[:FAILED_LOGINS_SHOWN]
    return render(
        request,
        "dashboard/audit.html",
        {
            "rows": rows,
            "actor": actor,
            "next_query": next_query,
            "failed_logins": list(failed_logins),
        },
    )


# Lead import ---------------------------------------------------------------------------------


@require_GET
def lead_import_form(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "dashboard/lead_import.html",
        {"form": forms.LeadImportForm()},
    )


@require_POST
@staff_required
def lead_import(request: HttpRequest) -> HttpResponse:
    form = forms.LeadImportForm(request.POST, request.FILES)
    context: dict[str, Any] = {"form": form}
    if not form.is_valid():
        return render(request, "dashboard/lead_import.html", context, status=400)
    upload = form.cleaned_data["file"]
    campaign = form.cleaned_data.get("campaign")
    # The importer streams from a path, like the command does: the upload is spooled to a
    # temporary file first (large files never sit in memory).
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "leads.csv"
        with path.open("wb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
        try:
            report = import_leads(path, campaign, dry_run=form.cleaned_data["dry_run"])
        except (ValueError, UnicodeError) as exc:
            messages.error(request, f"Import refused: {exc}")
            return render(request, "dashboard/lead_import.html", context, status=400)
    context.update(import_report(report))
    context["dry_run"] = form.cleaned_data["dry_run"]
    return render(request, "dashboard/lead_import.html", context)


def import_report(report: ImportReport) -> dict[str, Any]:
    """The importer's report as the command prints it: a summary (counts, skipped by reason)
    and the per-row errors with their line numbers."""
    data = report.summary()
    summary: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            summary.update({f"{key}: {k}": v for k, v in value.items()})
        elif isinstance(value, int) and not isinstance(value, bool):
            summary[key] = value
    errors = [(e.line, " ".join(p for p in (e.email, e.reason) if p)) for e in report.errors]
    return {"summary": summary, "errors": errors, "reported": True}


def _today() -> Any:
    return queries.pool_day(PoolSettings.load())
