"""A paused or cooled-down mailbox says, on its page and in the mailbox list, why and since when
it stopped and what would put it back into service."""

from __future__ import annotations

from datetime import timedelta

from django.test import Client
from django.urls import reverse

from outreach.dashboard.tests.conftest import Activity
from outreach.lib import clock
from outreach.pool.models import Mailbox
from outreach.pool.states import transition_mailbox, way_back

BOUNCES = "hard bounces 5 of 100 attempts (5.0%): the rate is above 5.0% on the evidence"


def test_it_says_why_since_when_and_what_resumes_a_paused_mailbox(
    activity: Activity, staff_client: Client
) -> None:
    box = activity.mailboxes[0]
    transition_mailbox(box, Mailbox.State.PAUSED, reason=BOUNCES, actor="rule:bounce_rate")
    since = clock.now().strftime("%Y-%m-%d %H:%M")

    page = staff_client.get(reverse("dashboard:mailbox", args=[box.pk])).content.decode()
    assert f"Paused since {since}" in page
    assert BOUNCES in page
    assert "To resume: a person resumes it after cleaning the list that bounced" in page

    listing = staff_client.get(reverse("dashboard:mailboxes"))
    [row] = [r for r in listing.context["rows"] if r.mailbox.pk == box.pk]
    assert row.out_of_service is not None
    assert row.out_of_service.actor == "rule:bounce_rate"
    assert "after cleaning the list that bounced" in listing.content.decode()
    # Mailboxes in service say nothing of the kind.
    assert [r.out_of_service for r in listing.context["rows"] if r.mailbox.pk != box.pk] == [
        None
    ] * (len(listing.context["rows"]) - 1)


def test_it_says_when_a_cooldown_ends_by_itself(activity: Activity, staff_client: Client) -> None:
    box = activity.mailboxes[1]
    until = clock.now() + timedelta(days=14)
    transition_mailbox(
        box,
        Mailbox.State.COOLDOWN,
        reason="1 block(s) in 7 days: cooldown 14 days",
        actor="rule:block",
        cooldown_until=until,
    )
    page = staff_client.get(reverse("dashboard:mailbox", args=[box.pk])).content.decode()
    assert f"resumes by itself on {until:%Y-%m-%d %H:%M} UTC" in page
    assert "1 block(s) in 7 days" in page


def test_it_names_what_resumes_each_kind_of_pause() -> None:
    assert "credentials" in way_back("paused", "rule:auth_failed", None)
    assert "credentials" in way_back("paused", "system:sending", None)
    assert "complaint" in way_back("paused", "rule:complaint", None)
    assert "provider" in way_back("paused", "rule:failure_streak", None)
    assert "reason is dealt with" in way_back("paused", "dashboard:alice", None)
    assert way_back("active", "rule:bounce_rate", None) == ""


def test_the_mailbox_list_escapes_the_reason_it_writes_out(
    activity: Activity, staff_client: Client
) -> None:
    box = activity.mailboxes[0]
    reason = 'operator said <script>alert("x")</script> & stopped it'
    transition_mailbox(box, Mailbox.State.PAUSED, reason=reason, actor="ann")

    listing = staff_client.get(reverse("dashboard:mailboxes")).content.decode()

    assert "<script>alert" not in listing
    assert (
        'title="operator said &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; ' in listing
    )
