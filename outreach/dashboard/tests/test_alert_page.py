"""The alerts page: digests and info notices are not open alerts; filters by severity, kind
and state (bad input is a 400); acknowledge a selection or every open alert of a kind; pages."""

from __future__ import annotations

from datetime import timedelta

from django.http import QueryDict
from django.test import Client
from django.urls import reverse

from outreach.alerts.models import Alert
from outreach.dashboard.tests.conftest import Activity
from outreach.lib import clock
from outreach.pool.models import StateChange


def _alert(kind: str, severity: str = "warning", n: int = 0) -> Alert:
    return Alert.objects.create(
        key=f"{kind}:{n}",
        kind=kind,
        severity=severity,
        text=f"{kind} number {n}",
        created_at=clock.now() - timedelta(minutes=n),
    )


def test_digests_and_info_notices_are_not_open_alerts(
    staff_client: Client, activity: Activity
) -> None:
    _alert("digest", "info")
    _alert("warmup_graduated", "info")
    _alert("mailbox_paused", "critical")
    body = staff_client.get(reverse("dashboard:alerts")).content.decode()
    assert "mailbox_paused number 0" in body
    assert "digest number 0" not in body and "warmup_graduated number 0" not in body
    notices = staff_client.get(reverse("dashboard:alerts"), {"show": "notices"})
    assert "digest number 0" in notices.content.decode()
    overview = staff_client.get(reverse("dashboard:overview")).content.decode()
    assert "digest number 0" not in overview and "mailbox_paused number 0" in overview


def test_it_filters_by_severity_and_kind(staff_client: Client, activity: Activity) -> None:
    _alert("mailbox_paused", "critical")
    _alert("bounce_warning", "warning", 1)
    url = reverse("dashboard:alerts")
    body = staff_client.get(url, {"severity": "critical"}).content.decode()
    assert "mailbox_paused number 0" in body and "bounce_warning number 1" not in body
    body = staff_client.get(url, {"kind": "bounce_warning"}).content.decode()
    assert "mailbox_paused number 0" not in body and "bounce_warning number 1" in body


def test_it_refuses_a_bad_filter_with_a_400(staff_client: Client, activity: Activity) -> None:
    url = reverse("dashboard:alerts")
    for params in ({"severity": "fatal"}, {"kind": "x' OR 1=1"}, {"show": "everything"},
                   {"before": "yesterday"}):  # fmt: skip
        response = staff_client.get(url, params)
        assert response.status_code == 400, params


def test_it_acknowledges_every_open_alert_of_a_kind_and_no_other(
    staff_client: Client, activity: Activity
) -> None:
    for n in range(3):
        _alert("bounce_warning", n=n)
    other = _alert("mailbox_paused", "critical")
    response = staff_client.post(reverse("dashboard:alert_ack_many"), {"kind": "bounce_warning"})
    assert response.status_code == 302
    assert not Alert.objects.filter(kind="bounce_warning", acknowledged_at__isnull=True).exists()
    other.refresh_from_db()
    assert other.acknowledged_at is None
    entry = StateChange.objects.get(to_state="acknowledged")
    assert entry.actor == "user:ann"
    assert entry.figures["kind"] == "bounce_warning"
    warnings = sorted(Alert.objects.filter(kind="bounce_warning").values_list("pk", flat=True))
    assert sorted(entry.figures["alerts"]) == warnings
    assert entry.reason.startswith(f"{len(warnings)} alerts acknowledged")


def test_it_acknowledges_a_selection(staff_client: Client, activity: Activity) -> None:
    a, b, c = (_alert("mailbox_paused", n=n) for n in range(3))
    staff_client.post(reverse("dashboard:alert_ack_many"), {"alert": [a.pk, c.pk]})
    seen = Alert.objects.filter(pk__in=[a.pk, b.pk, c.pk]).order_by("pk")
    assert [x.acknowledged_at is not None for x in seen] == [True, False, True]
    entry = StateChange.objects.get(to_state="acknowledged")
    assert entry.figures["alerts"] == [a.pk, c.pk]
    response = staff_client.post(reverse("dashboard:alert_ack_many"), {}, follow=True)
    assert "select alerts, or name a kind" in response.content.decode()
    response = staff_client.post(reverse("dashboard:alert_ack_many"), {"alert": ["x"]}, follow=True)
    b.refresh_from_db()
    assert b.acknowledged_at is None


def test_it_pages_through_many_alerts(staff_client: Client, activity: Activity) -> None:
    for n in range(120):
        _alert("bounce_warning", n=n)
    url = reverse("dashboard:alerts")
    seen: list[str] = []
    params = QueryDict("kind=bounce_warning")
    for _ in range(5):
        response = staff_client.get(url, params)
        seen += [a.text for a in response.context["alerts"]]
        if not response.context["next_query"]:
            break
        params = QueryDict(response.context["next_query"])
    assert len(seen) == 121 == len(set(seen))  # the 120 and the one seeded
