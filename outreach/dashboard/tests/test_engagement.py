"""The campaign page's opens and clicks: the human estimate beside every visitor, per step and
A/B variant, and only for a campaign that tracks (or did)."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse

from outreach.campaigns.models import Campaign, Message
from outreach.dashboard.tests.conftest import Activity
from outreach.events import tracking, visitors

HUMAN = visitors.Visit(visitors.HUMAN, "")
MACHINE = visitors.Visit(visitors.MACHINE, "apple_mpp")


def visit(message: Message, visit: visitors.Visit, kind: str) -> None:
    facts = tracking.MessageFacts(to_email=message.to_email, sent_at=message.sent_at)
    tracking.record_visit(message.pk, facts, visit, kind=kind, user_agent="test", ip="192.0.2.1")


def test_it_shows_human_and_all_opens_and_clicks_per_variant(
    activity: Activity, staff_client: Client
) -> None:
    tracking.reset()
    page = reverse("dashboard:campaign", args=["launch"])
    assert "Opens (human, estimated)" not in staff_client.get(page).text
    Campaign.objects.filter(slug="launch").update(track_opens=True, track_clicks=True)
    step = activity.campaign.steps.get(position=1)
    label = {v.pk: v.label for v in step.variants.all()}
    sent = [m for m in activity.messages if m.state == Message.State.SENT and m.step_id == step.pk]
    a = [m for m in sent if label[m.variant_id or 0] == "A"]
    b = [m for m in sent if label[m.variant_id or 0] == "B"]
    for m in a[:2] + b[:1]:
        visit(m, MACHINE, "o")
    visit(a[0], HUMAN, "o")
    visit(a[0], HUMAN, "c")
    visit(a[0], HUMAN, "o")  # a repeat counts nothing

    response = staff_client.get(page)
    first = response.context["steps"][0]
    assert (first.counts["opened"], first.counts["opened_human"]) == (4, 1)
    assert (first.counts["clicked"], first.counts["clicked_human"]) == (1, 1)
    by_label = {v.label: c for v, c in first.variants}
    assert (by_label["A"]["opened"], by_label["A"]["opened_human"]) == (3, 1)
    assert (by_label["B"]["opened"], by_label["B"]["opened_human"]) == (1, 0)
    sent_a = by_label["A"]["sent"]
    assert by_label["A"]["open_percent"] == round(100 / sent_a, 1)
    assert by_label["B"]["open_percent"] == 0
    text = response.text
    assert "Opens (human, estimated)" in text and "Opens (all)" in text
    # Replies stay the headline: their column comes first.
    assert text.index("Reply rate") < text.index("Opens (human, estimated)")
