"""The campaigns' pages, read side: a row per campaign (enrollments, sends, forecast), its
steps and variants, and its rollups' outcomes. A fixed number of queries per call (see
:mod:`outreach.dashboard.queries`)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db.models import Count, Sum

from outreach.campaigns.models import Campaign, Enrollment, Message, Step, Variant
from outreach.dashboard.queries import (
    PENDING_STATES,
    counter_totals,
    percent,
    pool_day,
    window_start,
)
from outreach.events.models import Event
from outreach.metrics.models import DailyRollup
from outreach.pool.models import PoolSettings
from outreach.scheduler.forecast import finish_day
from outreach.scheduler.models import DailyCounter


@dataclass
class StepRow:
    step: Step
    counts: dict[str, Any]
    variants: list[tuple[Variant, dict[str, Any]]]


@dataclass
class CampaignRow:
    campaign: Campaign
    enrollments: dict[str, int]
    sent: int
    pending: int
    replied: int
    bounced: int
    forecast: date | None
    sent_last_7_days: int

    @property
    def reply_rate(self) -> float | None:
        return self.replied / self.sent if self.sent else None

    @property
    def bounce_rate(self) -> float | None:
        return self.bounced / self.sent if self.sent else None

    @property
    def progress_percent(self) -> int:
        """Share of its leads whose sequence is over (finished or stopped)."""
        total = sum(self.enrollments.values())
        done = self.enrollments.get("finished", 0) + self.enrollments.get("stopped", 0)
        return percent(done, total)


# Per (step id, variant id) of one campaign, 0 for none: its rollups' sent, delivered,
# replied and hard-bounced, all time.
Outcomes = dict[tuple[int, int], dict[str, int]]


def campaign_outcomes(campaign_id: int) -> Outcomes:
    """One campaign's rollups summed per step and variant, all time: one query, on the
    rollups' campaign index alone. The campaign page's row, steps and funnel all read it."""
    return {
        (row.pop("step_id"), row.pop("variant_id")): row
        for row in DailyRollup.objects.filter(campaign_id=campaign_id)
        .values("step_id", "variant_id")
        .annotate(
            sent=Sum("sent"),
            delivered=Sum("delivered"),
            replied=Sum("replied"),
            bounced=Sum("bounced_hard"),
        )
    }


def outcome_totals(outcomes: Outcomes) -> dict[str, int]:
    """Pure: a campaign's outcomes summed over its steps and variants."""
    names = ("sent", "delivered", "replied", "bounced")
    return {name: sum(row.get(name) or 0 for row in outcomes.values()) for name in names}


def campaign_rows(
    campaign: Campaign | None = None, outcomes: Outcomes | None = None
) -> list[CampaignRow]:
    """Every campaign (or the one given, with its :func:`campaign_outcomes` when the caller
    has them) with its enrollments, sends and forecast: four queries."""
    campaigns = list(
        Campaign.objects.order_by("-created_at", "slug")
        if campaign is None
        else Campaign.objects.filter(pk=campaign.pk)
    )
    only: dict[str, Any] = {} if campaign is None else {"campaign": campaign.pk}
    enrollments, steps_done = _enrollment_counts(only)
    messages = _message_counts(only)
    events = _reply_and_bounce_counts(campaign, outcomes)
    pool = PoolSettings.load()
    first_day, _ = window_start(pool, 7)
    recent = counter_totals(
        DailyCounter.Scope.CAMPAIGN,
        first_day,
        pool_day(pool),
        None if campaign is None else [str(campaign.pk)],
    )
    steps = dict(
        Step.objects.filter(**only)
        .values("campaign")
        .annotate(n=Count("id"))
        .values_list("campaign", "n")
    )
    return [
        _campaign_row(
            c,
            enrollments=enrollments.get(c.pk, {}),
            messages=messages.get(c.pk, {}),
            events=events.get(c.pk, {}),
            sent_7=recent.get(str(c.pk), (0, 0))[0],
            steps=steps.get(c.pk, 0),
            steps_done=steps_done.get(c.pk, 0),
            today=pool_day(pool),
        )
        for c in campaigns
    ]


def _enrollment_counts(only: dict[str, Any]) -> tuple[dict[int, dict[str, int]], dict[int, int]]:
    """Per campaign: its enrollments per state, and the steps its active ones have done. One
    query."""
    enrollments: dict[int, dict[str, int]] = defaultdict(dict)
    steps_done: dict[int, int] = {}
    for cid, state, n, done in (
        Enrollment.objects.filter(**only)
        .values("campaign", "state")
        .annotate(n=Count("id"), done=Sum("last_step"))
        .values_list("campaign", "state", "n", "done")
    ):
        enrollments[cid][state] = n
        if state == Enrollment.State.ACTIVE:
            steps_done[cid] = done or 0
    return enrollments, steps_done


def _message_counts(only: dict[str, Any]) -> dict[int, dict[str, int]]:
    """Per campaign: its messages per state. One query."""
    messages: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for cid, state, n in (
        Message.objects.filter(campaign__isnull=False, **only)
        .values("campaign", "state")
        .annotate(n=Count("id"))
        .values_list("campaign", "state", "n")
    ):
        messages[cid][state] += n
    return messages


def _reply_and_bounce_counts(
    campaign: Campaign | None, outcomes: Outcomes | None
) -> dict[int, dict[str, int]]:
    """Per campaign: replies and hard bounces from the rollups, on their campaign index (never
    raw events). One query, none for one campaign whose ``outcomes`` the caller has."""
    if campaign is not None:
        return {campaign.pk: outcome_totals(outcomes or campaign_outcomes(campaign.pk))}
    return {
        row["campaign_id"]: row
        for row in DailyRollup.objects.filter(campaign_id__gt=0)
        .values("campaign_id")
        .annotate(replied=Sum("replied"), bounced=Sum("bounced_hard"))
    }


def _campaign_row(
    c: Campaign,
    *,
    enrollments: dict[str, int],
    messages: dict[str, int],
    events: dict[str, int],
    sent_7: int,
    steps: int,
    steps_done: int,
    today: date,
) -> CampaignRow:
    """Pure: one campaign's row from its counts, with its finish forecast."""
    pending = sum(messages.get(s, 0) for s in PENDING_STATES)
    return CampaignRow(
        campaign=c,
        enrollments=enrollments,
        sent=messages.get(Message.State.SENT, 0),
        pending=pending,
        replied=events.get("replied") or 0,
        bounced=events.get("bounced") or 0,
        forecast=forecast_finish(
            remaining=remaining_messages(
                c,
                active=enrollments.get(Enrollment.State.ACTIVE, 0),
                steps=steps,
                steps_done=steps_done,
                pending=pending,
            ),
            sent_last_7_days=sent_7,
            daily_cap=c.daily_cap,
            today=today,
        ),
        sent_last_7_days=sent_7,
    )


def remaining_messages(
    campaign: Campaign, *, active: int, steps: int, steps_done: int, pending: int
) -> int:
    """Pure: messages still to send. Each active enrollment owes its steps after
    ``last_step`` (an upper bound: replies stop enrollments early), plus the messages already
    planned but not handed to a provider."""
    if campaign.state in (Campaign.State.STOPPED, Campaign.State.FINISHED):
        return 0
    return max(active * steps - steps_done, 0) + pending


def forecast_finish(
    *, remaining: int, sent_last_7_days: int, daily_cap: int | None, today: date
) -> date | None:
    """Pure: the day the campaign's remaining messages are sent at its recent pace.

    The pace is the average of the last seven days, or the campaign's cap when it has not sent
    yet; None when neither gives a pace (nothing to extrapolate from).
    """
    pace = sent_last_7_days / 7 if sent_last_7_days else float(daily_cap or 0)
    return finish_day(remaining, pace, today)


def campaign_steps(campaign: Campaign, outcomes: Outcomes | None = None) -> list[StepRow]:
    """Per step and per variant: scheduled (pending), sent, replied, bounced (the latter two
    from :func:`campaign_outcomes`, read here unless the caller has them). Four queries."""
    steps = list(campaign.steps.order_by("position"))
    variants = list(Variant.objects.filter(step__campaign=campaign).order_by("step", "label"))
    msg: dict[tuple[int | None, int | None], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for step_id, variant_id, state, n in (
        Message.objects.filter(campaign=campaign)
        .values("step", "variant", "state")
        .annotate(n=Count("id"))
        .values_list("step", "variant", "state", "n")
    ):
        key = "scheduled" if state in PENDING_STATES else state
        msg[(step_id, variant_id)][key] += n
        msg[(step_id, None)][key] += n
    # Replies and hard bounces per step and variant from the rollups (0: none).
    if outcomes is None:
        outcomes = campaign_outcomes(campaign.pk)
    for (step_id, variant_id), row in outcomes.items():
        for group in ((step_id or None, variant_id or None), (step_id or None, None)):
            msg[group][Event.Type.REPLIED] += row.get("replied") or 0
            msg[group][Event.Type.BOUNCED] += row.get("bounced") or 0
    by_step: dict[int, list[Variant]] = defaultdict(list)
    for v in variants:
        by_step[v.step_id].append(v)
    return [
        StepRow(
            step=s,
            counts=_step_counts(msg.get((s.pk, None), {})),
            variants=[(v, _step_counts(msg.get((s.pk, v.pk), {}))) for v in by_step[s.pk]],
        )
        for s in steps
    ]


def _step_counts(raw: dict[str, int]) -> dict[str, Any]:
    sent = raw.get(Message.State.SENT, 0)
    return {
        "scheduled": raw.get("scheduled", 0),
        "sent": sent,
        "replied": raw.get(Event.Type.REPLIED, 0),
        "bounced": raw.get(Event.Type.BOUNCED, 0),
        "failed": raw.get(Message.State.FAILED, 0),
        "reply_percent": round(100 * raw.get(Event.Type.REPLIED, 0) / sent, 1) if sent else 0,
    }
