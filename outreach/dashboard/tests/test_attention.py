"""The overview's "needs attention": every mailbox and domain that does not send, why, since
when, what would resume it; bulk pause and resume through the audited state changes; a pool
health that looks at the mailboxes, not only at the pooled rates."""

from __future__ import annotations

from datetime import timedelta

from django.test import Client
from django.urls import reverse

from outreach.dashboard import attention
from outreach.dashboard.tests.conftest import Activity
from outreach.lib import clock
from outreach.pool import states
from outreach.pool.models import Domain, Mailbox, StateChange


def _pause(box: Mailbox, reason: str) -> None:
    states.transition_mailbox(box, Mailbox.State.PAUSED, reason=reason, actor="rules")


def test_it_calls_a_pool_critical_when_a_third_of_its_mailboxes_are_paused() -> None:
    rates_fine = {"bounce": "ok", "complaint": "ok"}
    health = attention.judge({"active": 21, "paused": 11}, rates_fine, 0, 10)
    assert health.status == "critical"
    assert "11 of 32 mailboxes not sending" in health.reasons
    assert attention.judge({"active": 31, "paused": 1}, rates_fine, 0, 10).status == "warning"
    assert attention.judge({"active": 32}, rates_fine, 0, 10).status == "ok"
    assert attention.judge({"active": 32}, {"bounce": "over"}, 0, 10).status == "critical"
    assert attention.judge({"active": 32}, rates_fine, 1, 10).status == "warning"


def test_it_lists_paused_cooling_and_auth_failed_mailboxes_with_reason_and_resume(
    staff_client: Client, activity: Activity
) -> None:
    paused, cooling, auth = activity.mailboxes[:3]
    _pause(paused, "bounce rate 6.0% over 5.0% on 50 attempts")
    reason = states.mark_auth_failed(auth, "535 5.7.8 Username and Password not accepted")
    _pause(auth, reason)
    until = clock.now() + timedelta(days=14)
    states.transition_mailbox(
        cooling, "cooldown", reason="blocked by gmail", actor="rules", cooldown_until=until
    )
    page = staff_client.get(reverse("dashboard:overview")).content.decode()
    section = page[page.index('id="attention"') : page.index("</section>")]
    assert "bounce rate 6.0% over 5.0% on 50 attempts" in section
    assert "a person resumes it once the reason is dealt with" in section
    assert "auth-failed" in section and "once the credentials are fixed" in section
    assert f"resumes by itself on {until:%Y-%m-%d %H:%M}" in section
    assert f"{clock.now():%Y-%m-%d %H:%M}" in section  # since when
    # What a person must fix (credentials) comes before a review.
    assert section.index("auth-failed") < section.index("bounce rate 6.0%")
    assert 'id="pool-health"' in page and ">warning<" in page


def test_it_lists_a_domain_in_cooldown_with_the_audit_reason(
    staff_client: Client, activity: Activity
) -> None:
    domain = activity.mailboxes[0].domain
    until = clock.now() + timedelta(days=3)
    states.transition_domain(
        domain, Domain.State.COOLDOWN, reason="spam placement", actor="rules", cooldown_until=until
    )
    page = staff_client.get(reverse("dashboard:overview")).content.decode()
    section = page[page.index('id="attention"') : page.index("</section>")]
    assert domain.name in section and "spam placement" in section
    assert "domain-cooldown" in section


def test_bulk_resume_moves_each_selected_mailbox_through_the_audit_log(
    staff_client: Client, activity: Activity
) -> None:
    boxes = activity.mailboxes[:2]
    for box in boxes:
        _pause(box, "complaint")
    response = staff_client.post(
        reverse("dashboard:mailbox_bulk"),
        {"mailbox": [b.pk for b in boxes], "action": "resume", "reason": "checked: false alarm"},
        follow=True,
    )
    assert response.status_code == 200
    for box in boxes:
        box.refresh_from_db()
        assert box.state == Mailbox.State.ACTIVE
        entry = StateChange.objects.filter(mailbox=box).latest("id")
        assert (entry.reason, entry.actor) == ("checked: false alarm", "user:ann")


def test_bulk_pause_needs_a_reason_and_a_selection(
    staff_client: Client, activity: Activity
) -> None:
    box = activity.mailboxes[0]
    url = reverse("dashboard:mailbox_bulk")
    response = staff_client.post(url, {"mailbox": [box.pk], "action": "pause"}, follow=True)
    assert "reason: This field is required." in response.content.decode()
    response = staff_client.post(url, {"action": "pause", "reason": "x"}, follow=True)
    assert "select at least one mailbox" in response.content.decode()
    response = staff_client.post(url, {"mailbox": ["999999"], "action": "pause", "reason": "x"})
    box.refresh_from_db()
    assert box.state == Mailbox.State.ACTIVE
    assert not StateChange.objects.exists()


def test_resuming_a_mailbox_of_a_domain_in_cooldown_says_it_still_will_not_send(
    staff_client: Client, activity: Activity
) -> None:
    box = activity.mailboxes[0]
    _pause(box, "complaint")
    states.transition_domain(
        box.domain,
        Domain.State.COOLDOWN,
        reason="blocked",
        actor="rules",
        cooldown_until=clock.now() + timedelta(days=2),
    )
    response = staff_client.post(
        reverse("dashboard:mailbox_bulk"),
        {"mailbox": [box.pk], "action": "resume", "reason": "reviewed"},
        follow=True,
    )
    assert "will not send yet: domain in cooldown until" in response.content.decode()


def test_a_viewer_cannot_act_in_bulk(viewer_client: Client, activity: Activity) -> None:
    box = activity.mailboxes[0]
    response = viewer_client.post(
        reverse("dashboard:mailbox_bulk"), {"mailbox": [box.pk], "action": "pause", "reason": "x"}
    )
    assert response.status_code == 403
    box.refresh_from_db()
    assert box.state == Mailbox.State.ACTIVE
