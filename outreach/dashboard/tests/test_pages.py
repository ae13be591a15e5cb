"""Every page renders for a logged-in user, needs a login, and costs a fixed number of queries."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from outreach.alerts import models as alert_models
from outreach.dashboard.tests.conftest import Activity, seed_activity
from outreach.events.models import Event
from outreach.pool.models import Mailbox, StateChange
from outreach.pool.states import transition_mailbox
from outreach.sending import models as sending_models


def page_urls(activity: Activity) -> list[str]:
    return [
        reverse("dashboard:overview"),
        reverse("dashboard:mailboxes"),
        reverse("dashboard:mailbox", args=[activity.mailboxes[0].pk]),
        reverse("dashboard:domains"),
        reverse("dashboard:campaigns"),
        reverse("dashboard:campaign", args=[activity.campaign.slug]),
        reverse("dashboard:events"),
        reverse("dashboard:audit"),
        reverse("dashboard:suppression"),
        reverse("dashboard:alerts"),
        reverse("dashboard:lead_import_form"),
    ]


def test_it_sends_anonymous_visitors_to_the_login_page(activity: Activity) -> None:
    client = Client()
    for url in page_urls(activity):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url


def test_it_renders_every_page_for_a_non_staff_user(
    activity: Activity, viewer_client: Client
) -> None:
    for url in page_urls(activity):
        response = viewer_client.get(url)
        assert response.status_code == 200, url


def test_it_shows_todays_use_rates_alerts_unknown_and_cost_on_the_overview(
    activity: Activity, staff_client: Client
) -> None:
    body = staff_client.get(reverse("dashboard:overview")).content.decode()
    # 5 active mailboxes x 40 + a warming one on day 4 (warm-up cap 8) = 208 capacity.
    assert "60 / 208" in body
    assert "rep1@send1.example.com bounce rate 3.5%" in body  # the open alert
    assert "lost@prospect.example.org" in body  # the unknown message
    assert "IMAP lookup failed: ConnectionRefusedError" in body  # and why it is in doubt
    assert 'id="rates"' in body and "bounce" in body
    # No sends priced yet; 2 domains x $12/year = $2.00 a month, about 18/31 of it to date.
    cost = staff_client.get(reverse("dashboard:overview")).context["cost"]
    assert cost.projection == Decimal("2.00")
    assert Decimal("1.10") <= cost.month_to_date <= Decimal("1.17")
    assert f"${cost.month_to_date}" in body
    assert "<svg" in body


def test_it_judges_pool_rates_against_the_thresholds(
    activity: Activity, staff_client: Client
) -> None:
    response = staff_client.get(reverse("dashboard:overview"))
    checks = {c.name: c for c in response.context["checks"]}
    rates = response.context["rates"]
    assert rates.sent == 7 * 60
    assert rates.bounced == Event.objects.filter(type="bounced").count()
    assert checks["bounce"].status in {"ok", "warning", "over"}
    assert checks["complaint"].status == "ok"


def test_it_lists_mailboxes_with_warmup_progress_and_rates(
    activity: Activity, staff_client: Client
) -> None:
    response = staff_client.get(reverse("dashboard:mailboxes"))
    rows = {r.mailbox.address: r for r in response.context["rows"]}
    warming = rows[activity.mailboxes[-1].address]
    assert warming.warmup_day == 4
    assert warming.cap_today == 8
    assert warming.warmup_progress == 20
    first = rows[activity.mailboxes[0].address]
    assert first.sent_today == 10
    assert first.rates.sent == 70
    assert first.last_event_at is not None
    assert response.content.decode().count('class="state-warming"') == 1


def test_it_filters_mailboxes_by_state(activity: Activity, staff_client: Client) -> None:
    response = staff_client.get(reverse("dashboard:mailboxes"), {"state": "warming"})
    assert [r.mailbox.state for r in response.context["rows"]] == ["warming"]


def test_it_shows_a_mailbox_with_its_chart_and_audit_log(
    activity: Activity, staff_client: Client
) -> None:
    box = activity.mailboxes[0]
    transition_mailbox(
        box, Mailbox.State.PAUSED, reason="complaint from acme", actor="rule:complaint"
    )
    response = staff_client.get(reverse("dashboard:mailbox", args=[box.pk]))
    body = response.content.decode()
    assert "complaint from acme" in body and "rule:complaint" in body
    assert "<svg" in body
    assert [a for a, _ in response.context["actions"]] == [
        "resume",
        "cooldown",
        "restart_warmup",
        "retire",
    ]


def test_it_shows_domains_with_caps_use_and_mailboxes(
    activity: Activity, staff_client: Client
) -> None:
    response = staff_client.get(reverse("dashboard:domains"))
    rows = response.context["rows"]
    assert [r.domain.name for r in rows] == ["send1.example.com", "send2.example.com"]
    assert rows[0].cap == 250 and rows[0].sent_today == 30
    assert rows[0].capacity_today == 120
    assert len(rows[0].mailboxes) == 3


def test_it_shows_campaign_progress_per_step_and_variant(
    activity: Activity, staff_client: Client
) -> None:
    response = staff_client.get(reverse("dashboard:campaign", args=["launch"]))
    steps = response.context["steps"]
    assert [s.step.position for s in steps] == [1, 2]
    first = steps[0]
    assert first.counts["sent"] + first.counts["scheduled"] == 12
    assert first.counts["replied"] == first.counts["sent"]  # one reply event per sent message
    labels = [v.label for v, _ in first.variants]
    assert labels == ["A", "B"]
    assert sum(c["sent"] for _, c in first.variants) == first.counts["sent"]
    assert response.context["row"].forecast is not None


def test_it_filters_events_by_type_mailbox_campaign_and_recipient(
    activity: Activity, staff_client: Client
) -> None:
    box = activity.mailboxes[1]
    url = reverse("dashboard:events")
    response = staff_client.get(url, {"type": "bounced", "mailbox": str(box.pk)})
    events = response.context["events"]
    assert events and all(e.type == "bounced" and e.mailbox_id == box.pk for e in events)
    recipient = events[0].recipient
    query: dict[str, Any] = {"recipient": recipient.upper(), "campaign": activity.campaign.pk}
    response = staff_client.get(url, query)
    assert {e.recipient for e in response.context["events"]} == {recipient}


def test_it_pages_through_events_with_a_cursor(activity: Activity, staff_client: Client) -> None:
    url = reverse("dashboard:events")
    seen: list[int] = []
    query: dict[str, Any] = {}
    for _ in range(10):
        response = staff_client.get(url + ("?" + query["q"] if query else ""))
        seen += [e.pk for e in response.context["events"]]
        if not response.context["next_query"]:
            break
        query = {"q": response.context["next_query"]}
    assert len(seen) == len(set(seen)) == Event.objects.count()


def test_it_shows_the_audit_log_filtered_by_actor(activity: Activity, staff_client: Client) -> None:
    transition_mailbox(activity.mailboxes[0], "paused", reason="by hand", actor="user:ann")
    transition_mailbox(activity.mailboxes[1], "paused", reason="bounces", actor="rule:bounce")
    response = staff_client.get(reverse("dashboard:audit"), {"actor": "rule:"})
    assert [c.reason for c in response.context["rows"]] == ["bounces"]
    assert StateChange.objects.count() == 2


@pytest.mark.parametrize(
    "name",
    ["overview", "mailboxes", "mailbox", "domains", "campaigns", "campaign", "events", "audit"],
)
def test_it_renders_each_page_with_a_fixed_number_of_queries(
    name: str,
    db: None,
    now: Any,
    staff_client: Client,
    django_assert_max_num_queries: Callable[..., Any],
) -> None:
    """No query per row: the same page over a pool 5 times larger costs the same queries."""
    small = seed_activity(1, 2)
    url = _url(name, small)
    staff_client.get(url)  # warm the session
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        assert staff_client.get(url).status_code == 200
    _grow(small)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert staff_client.get(url).status_code == 200
    # A budget, not a count: session, user and two-factor device take three of them, and
    # the overview's trends read the rollups and the audit log (two queries).
    assert len(few.captured_queries) <= 27


def _url(name: str, activity: Activity) -> str:
    if name == "mailbox":
        return reverse("dashboard:mailbox", args=[activity.mailboxes[0].pk])
    if name == "campaign":
        return reverse("dashboard:campaign", args=[activity.campaign.slug])
    return reverse(f"dashboard:{name}")


def _grow(activity: Activity) -> None:
    """Five times the mailboxes, domains, events, audit entries and the campaign's leads."""
    from outreach.pool.models import Domain

    provider = activity.mailboxes[0].domain.provider
    first = activity.mailboxes[0]
    for _ in range(3):  # the first mailbox's own audit log grows too
        transition_mailbox(first, "paused", reason="grow", actor="system")
        transition_mailbox(first, "active", reason="grow", actor="system")
    for d in range(4):
        domain = Domain.objects.create(name=f"more{d}.example.net", provider=provider)
        for m in range(3):
            box = Mailbox.objects.create(
                address=f"x{m}@{domain.name}", domain=domain, state="active"
            )
            transition_mailbox(box, "paused", reason="grow", actor="system")
            Event.objects.create(
                source="ses",
                type="delivered",
                mailbox=box,
                recipient="r@x.org",
                occurred_at=activity.messages[0].created_at,
            )
    # The campaign's leads grow too, some of them interested (its funnel reads them).
    from outreach.campaigns.models import Lead
    from outreach.lib import clock
    from outreach.testing import enroll, make_leads

    leads = make_leads(20, domain="grown.example.org")
    enroll(activity.campaign, leads)
    Lead.objects.filter(pk__in=[lead.pk for lead in leads[:5]]).update(interested_at=clock.now())


def test_it_shows_provider_health_and_circuit_on_the_overview(
    activity: Activity, staff_client: Client
) -> None:
    provider = activity.mailboxes[0].domain.provider
    alert_models.ProviderHealth.objects.create(
        provider_account=provider, healthy=False, problems=["EnforcementStatus PROBATION"]
    )
    sending_models.ProviderCircuit.objects.create(
        provider_account=provider, state="open", reason="5 transient failures in a row"
    )
    body = staff_client.get(reverse("dashboard:overview")).content.decode()
    assert "EnforcementStatus PROBATION" in body
    assert "5 transient failures in a row" in body
