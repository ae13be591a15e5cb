"""Actions: POST only, CSRF-protected, staff only, each with a reason that reaches the audit log."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse

from outreach.alerts.models import Alert
from outreach.campaigns import suppression
from outreach.campaigns.models import Campaign, Message, Suppression
from outreach.dashboard.tests.conftest import Activity
from outreach.lib import clock
from outreach.pool.models import DnsCheck, Mailbox, StateChange
from outreach.pool.states import transition_mailbox


def act(
    client: Client, box: Mailbox, action: str, reason: str = "checked by hand", **extra: object
):
    return client.post(
        reverse("dashboard:mailbox_action", args=[box.pk]),
        {"action": action, "reason": reason, **extra},
        follow=True,
    )


def action_posts(activity: Activity) -> list[tuple[str, dict[str, str]]]:
    """Every action of the dashboard with a valid body."""
    box = activity.mailboxes[0]
    unknown = activity.messages[-1]
    entry = Suppression.objects.create(kind="address", value="x@y.org", source="manual")
    alert = Alert.objects.first()
    assert alert is not None
    return [
        (reverse("dashboard:mailbox_action", args=[box.pk]), {"action": "pause", "reason": "r"}),
        (
            reverse("dashboard:resolve_unknown", args=[unknown.pk]),
            {"decision": "sent", "reason": "r"},
        ),
        (reverse("dashboard:campaign_state", args=["launch"]), {"action": "pause"}),
        (
            reverse("dashboard:suppression_add"),
            {"value": "a@b.org", "kind": "address", "reason": "r"},
        ),
        (reverse("dashboard:suppression_remove", args=[entry.pk]), {"reason": "r"}),
        (reverse("dashboard:alert_ack", args=[alert.pk]), {}),
        (reverse("dashboard:lead_import"), {}),
    ]


def assert_nothing_changed(activity: Activity) -> None:
    box = Mailbox.objects.get(pk=activity.mailboxes[0].pk)
    assert box.state == "active"
    assert not StateChange.objects.exists()
    assert Message.objects.get(pk=activity.messages[-1].pk).state == "unknown"
    assert Campaign.objects.get(slug="launch").state == "active"
    assert not Suppression.objects.filter(value="a@b.org").exists()
    assert Suppression.objects.filter(value="x@y.org").exists()
    assert not Alert.objects.filter(acknowledged_at__isnull=False).exists()


def test_it_refuses_every_action_to_a_non_staff_user(
    activity: Activity, viewer_client: Client
) -> None:
    for url, data in action_posts(activity):
        assert viewer_client.post(url, data).status_code == 403, url
    assert_nothing_changed(activity)


def test_it_sends_anonymous_actions_to_the_login_page(activity: Activity) -> None:
    client = Client()
    for url, data in action_posts(activity):
        response = client.post(url, data)
        assert response.status_code == 302 and reverse("login") in response["Location"], url
    assert_nothing_changed(activity)


def test_it_refuses_every_action_without_a_csrf_token(activity: Activity, staff) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    for url, data in action_posts(activity):
        assert client.post(url, data).status_code == 403, url
    assert_nothing_changed(activity)


def test_it_accepts_an_action_with_the_csrf_token_of_the_page(activity: Activity, staff) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    box = activity.mailboxes[0]
    page = client.get(reverse("dashboard:mailbox", args=[box.pk]))
    token = page.context["csrf_token"]
    response = client.post(
        reverse("dashboard:mailbox_action", args=[box.pk]),
        {"action": "pause", "reason": "manual check", "csrfmiddlewaretoken": str(token)},
    )
    assert response.status_code == 302
    assert Mailbox.objects.get(pk=box.pk).state == "paused"


def test_it_refuses_actions_over_get(activity: Activity, staff_client: Client) -> None:
    for url, _ in action_posts(activity):
        assert staff_client.get(url).status_code == 405, url
    assert_nothing_changed(activity)


def test_it_pauses_a_mailbox_and_records_who_and_why(
    activity: Activity, staff_client: Client
) -> None:
    box = activity.mailboxes[0]
    response = act(staff_client, box, "pause", "spam-folder placement at gmail")
    assert "active → paused" in response.content.decode()
    box.refresh_from_db()
    assert box.state == "paused"
    change = StateChange.objects.get(mailbox=box)
    assert (change.from_state, change.to_state) == ("active", "paused")
    assert change.reason == "spam-folder placement at gmail"
    assert change.actor == "user:ann"
    assert "spam-folder placement at gmail" in response.content.decode()  # in the audit log


def test_it_requires_a_reason(activity: Activity, staff_client: Client) -> None:
    box = activity.mailboxes[0]
    for reason in ("", "   "):
        response = act(staff_client, box, "pause", reason)
        assert response.status_code == 200
        assert "reason" in response.content.decode()
    box.refresh_from_db()
    assert box.state == "active"
    assert not StateChange.objects.exists()


def test_it_resumes_a_paused_mailbox_to_the_state_it_was_paused_from(
    activity: Activity, staff_client: Client
) -> None:
    active, warming = activity.mailboxes[0], activity.mailboxes[-1]
    act(staff_client, active, "pause")
    act(staff_client, active, "resume", "false alarm")
    active.refresh_from_db()
    assert active.state == "active"
    # Paused on warm-up day 4, resumed two days later: the ramp goes on from day 4.
    transition_mailbox(warming, "paused", reason="bounces", actor="rule:bounce")
    clock.advance(timedelta(days=2))
    act(staff_client, warming, "resume", "list cleaned")
    warming.refresh_from_db()
    assert warming.state == "warming"
    assert warming.warmup_start_day == 4
    assert warming.warmup_started_on == clock.today()


def test_it_starts_a_cooldown_for_the_days_asked(activity: Activity, staff_client: Client) -> None:
    box = activity.mailboxes[0]
    act(staff_client, box, "cooldown", "blocked at outlook", cooldown_days="21")
    box.refresh_from_db()
    assert box.state == "cooldown"
    assert box.cooldown_until == clock.now() + timedelta(days=21)
    assert StateChange.objects.get(mailbox=box).figures["cooldown_days"] == 21


def test_it_restarts_warmup_and_retires(activity: Activity, staff_client: Client) -> None:
    box = activity.mailboxes[0]
    act(staff_client, box, "restart_warmup", "new provider")
    box.refresh_from_db()
    assert (box.state, box.warmup_start_day, box.warmup_started_on) == (
        "warming",
        1,
        clock.today(),
    )
    act(staff_client, box, "retire", "domain sold")
    box.refresh_from_db()
    assert box.state == "retired"
    response = act(staff_client, box, "resume", "oops")
    assert (
        "nothing to resume" in response.content.decode()
        or "not allowed" in response.content.decode()
    )
    assert Mailbox.objects.get(pk=box.pk).state == "retired"
    assert StateChange.objects.filter(mailbox=box).count() == 2


def test_it_resolves_an_unknown_message_once(activity: Activity, staff_client: Client) -> None:
    message = activity.messages[-1]
    url = reverse("dashboard:resolve_unknown", args=[message.pk])
    staff_client.post(url, {"decision": "resend", "reason": "not in the SES log"})
    message.refresh_from_db()
    assert message.state == "scheduled"
    assert message.mailbox is None and message.lease_expires_at is None
    assert "user:ann" in message.last_error and "not in the SES log" in message.last_error
    response = staff_client.post(url, {"decision": "sent", "reason": "again"}, follow=True)
    assert "no longer in the unknown state" in response.content.decode()
    assert Message.objects.get(pk=message.pk).state == "scheduled"


def test_it_pauses_and_resumes_a_campaign(activity: Activity, staff_client: Client) -> None:
    url = reverse("dashboard:campaign_state", args=["launch"])
    staff_client.post(url, {"action": "pause"})
    assert Campaign.objects.get(slug="launch").state == "paused"
    staff_client.post(url, {"action": "resume"})
    assert Campaign.objects.get(slug="launch").state == "active"


def test_it_adds_searches_and_removes_suppressions(
    activity: Activity, staff_client: Client
) -> None:
    add = reverse("dashboard:suppression_add")
    staff_client.post(
        add, {"value": " CEO@Acme.com ", "kind": "address", "reason": "asked by phone"}
    )
    staff_client.post(add, {"value": "competitor.io", "kind": "domain", "reason": "competitor"})
    response = staff_client.post(
        add, {"value": "not-an-address", "kind": "address", "reason": "x"}, follow=True
    )
    assert "is not an email address" in response.content.decode()
    assert suppression.is_suppressed("ceo@acme.com")
    assert suppression.is_suppressed("anyone@competitor.io")
    entry = Suppression.objects.get(value="ceo@acme.com")
    assert (entry.source, entry.reason, entry.created_by) == (
        "manual",
        "asked by phone",
        "user:ann",
    )

    response = staff_client.get(reverse("dashboard:suppression"), {"q": "acme"})
    assert [s.value for s in response.context["rows"]] == ["ceo@acme.com"]

    remove = reverse("dashboard:suppression_remove", args=[entry.pk])
    staff_client.post(remove, {"reason": ""})
    assert suppression.is_suppressed("ceo@acme.com")  # no reason, no removal
    staff_client.post(remove, {"reason": "added by mistake"})
    assert not suppression.is_suppressed("ceo@acme.com")


def test_it_exports_the_suppression_list_with_formula_safe_cells(
    activity: Activity, viewer_client: Client
) -> None:
    suppression.suppress("ann@acme.com", "manual", reason='=HYPERLINK("http://evil","x")')
    suppression.suppress("bob@acme.com", "manual", reason="+1 555", created_by="@admin")
    suppression.suppress("cy@acme.com", "manual", reason="-2", created_by="\tx")
    response = viewer_client.get(reverse("dashboard:suppression_export"))
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.getvalue().decode())))
    assert rows[0] == ["kind", "value", "source", "reason", "created_by", "created_at"]
    cells = [cell for row in rows[1:] for cell in row]
    assert '\'=HYPERLINK("http://evil","x")' in cells
    assert "'+1 555" in cells and "'@admin" in cells and "'-2" in cells and "'\tx" in cells
    assert not any(c[:1] in "=+-@\t\r" for c in cells if c)


def test_it_acknowledges_an_alert(activity: Activity, staff_client: Client) -> None:
    alert = Alert.objects.get()
    staff_client.post(reverse("dashboard:alert_ack", args=[alert.pk]))
    alert.refresh_from_db()
    assert alert.acknowledged_at == clock.now()
    entry = StateChange.objects.get(to_state="acknowledged")
    assert (entry.actor, entry.figures["via"], entry.figures["alert"]) == (
        "user:ann",
        "dashboard",
        alert.pk,
    )
    response = staff_client.get(reverse("dashboard:overview"))
    assert response.context["alerts"] == []
    assert f"alert #{alert.pk}" in staff_client.get(reverse("dashboard:audit")).content.decode()


def test_it_never_redirects_off_site_after_an_action(
    activity: Activity, staff_client: Client
) -> None:
    alert = Alert.objects.get()
    url = reverse("dashboard:alert_ack", args=[alert.pk])
    response = staff_client.post(url, {"next": "https://evil.example/phish"})
    assert response["Location"] == reverse("dashboard:alerts")
    response = staff_client.post(url, {"next": "/?from=ack"})
    assert response["Location"] == "/?from=ack"


def test_it_shows_the_dns_status_of_each_domain(activity: Activity, staff_client: Client) -> None:
    domain = activity.mailboxes[0].domain
    DnsCheck.objects.create(domain=domain, outcome="ok", checked_at=clock.now() - timedelta(days=1))
    DnsCheck.objects.create(
        domain=domain,
        outcome="critical",
        blocks_sending=True,
        findings=[
            {
                "check": "dmarc",
                "status": "fail",
                "severity": "critical",
                "message": "no DMARC record",
                "fix": "add TXT v=DMARC1; p=none at _dmarc",
            }
        ],
    )
    body = staff_client.get(reverse("dashboard:domains")).content.decode()
    assert "blocks sending" in body and "no DMARC record" in body
    assert body.count("not checked yet") == 1  # the other domain


@pytest.mark.parametrize("value", ["=cmd|'/C calc'!A0", "@SUM(1)", "-1+1", "+1", "\t=1", "\r=1"])
def test_it_prefixes_every_formula_start(value: str) -> None:
    from outreach.dashboard.exports import csv_lines

    line = list(csv_lines(["v"], [[value]]))[1]
    assert next(csv.reader([line]))[0] == "'" + value


def test_a_resend_goes_back_through_the_sending_layer_with_its_audit_entry(
    activity: Activity, staff_client: Client
) -> None:
    message = activity.messages[-1]
    url = reverse("dashboard:resolve_unknown", args=[message.pk])
    staff_client.post(url, {"decision": "resend", "reason": "not in the SES log"})
    entry = StateChange.objects.get(to_state="scheduled")
    assert (entry.from_state, entry.actor) == ("unknown", "user:ann")
    assert "not in the SES log" in entry.reason and entry.figures["message"] == message.pk
