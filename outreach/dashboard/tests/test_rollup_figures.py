"""The pages read deliveries, replies, bounces and complaints from the daily rollups, not from
raw events: after events arrive through the collector (which keeps the rollups), every figure
shown still equals what the events table holds."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q
from django.test import Client
from django.urls import reverse

from outreach.campaigns.models import Message
from outreach.dashboard.tests.conftest import Activity
from outreach.events import normalize as n
from outreach.events.models import Event
from outreach.events.record import record
from outreach.lib import clock

HARD = Q(type="bounced", bounce_type="hard")


def arrive(message: Message, type_: str, k: int, bounce_type: str = "") -> None:
    """One provider event about ``message``, stored by the collector."""
    record(
        n.Incoming(
            source="ses",
            type=type_,
            recipient=message.to_email,
            occurred_at=clock.now() - timedelta(minutes=k),
            provider_event_id=f"arrived-{message.pk}-{type_}-{k}",
            outreach_message_id=message.pk,
            bounce_type=bounce_type,
        )
    )


def test_every_figure_read_from_the_rollups_matches_the_events(
    activity: Activity, staff_client: Client
) -> None:
    sent = [m for m in activity.messages if m.state == Message.State.SENT]
    for k, m in enumerate(sent):
        arrive(m, "delivered", k)
        if k % 2:
            arrive(m, "replied", k)
        if k % 3 == 0:
            arrive(m, "bounced", k, bounce_type="hard")
        if k % 3 == 1:
            arrive(m, "bounced", k, bounce_type="soft")  # not a bounce of the rates
    arrive(sent[0], "complained", 99)
    events = Event.objects.all()
    campaign = activity.campaign

    row = next(
        r
        for r in staff_client.get(reverse("dashboard:campaigns")).context["rows"]
        if r.campaign.pk == campaign.pk
    )
    assert row.replied == events.filter(campaign=campaign, type="replied").count() > 0
    assert row.bounced == events.filter(HARD, campaign=campaign).count() > 0

    page = staff_client.get(reverse("dashboard:campaign", args=[campaign.slug])).context
    assert (page["row"].replied, page["row"].bounced) == (row.replied, row.bounced)
    for step in page["steps"]:
        on_step = events.filter(message__step=step.step)
        assert step.counts["replied"] == on_step.filter(type="replied").count()
        assert step.counts["bounced"] == on_step.filter(HARD).count()
        for variant, counts in step.variants:
            assert (
                counts["replied"]
                == on_step.filter(type="replied", message__variant=variant).count()
            )
    funnel = {stage.name: stage.count for stage in page["funnel"]}
    assert funnel["replied"] == row.replied
    assert funnel["delivered"] == events.filter(campaign=campaign, type="delivered").count()

    # Every seeded and arrived event falls in the thresholds' window (the last week).
    overview = staff_client.get(reverse("dashboard:overview")).context
    rates = overview["rates"]
    assert (rates.delivered, rates.bounced, rates.complained, rates.replied) == (
        events.filter(type="delivered").count(),
        events.filter(HARD).count(),
        events.filter(type="complained").count(),
        events.filter(type="replied").count(),
    )
    for r in staff_client.get(reverse("dashboard:mailboxes")).context["rows"]:
        mine = events.filter(mailbox_id=r.mailbox.pk)
        assert (r.rates.delivered, r.rates.bounced, r.rates.replied) == (
            mine.filter(type="delivered").count(),
            mine.filter(HARD).count(),
            mine.filter(type="replied").count(),
        ), r.mailbox.address
    box = activity.mailboxes[0]
    series = staff_client.get(reverse("dashboard:mailbox", args=[box.pk])).context["series"]
    assert (
        sum(d["delivered"] for d in series) == events.filter(mailbox=box, type="delivered").count()
    )
