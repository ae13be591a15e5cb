"""The operator's cockpit in a real browser (Debian's Chromium, Playwright, the live app):
needs attention, bulk actions, the alerts page and the trends.

With ``OUTREACH_DOCS_SCREENSHOTS=1`` the tests also write the screenshots of
docs/dashboard.md under docs/images/ (CI leaves them alone, so the tree stays clean).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db.models import Sum

from outreach.alerts.models import Alert
from outreach.dashboard.tests import test_browser
from outreach.dashboard.tests.conftest import seed_activity
from outreach.dashboard.tests.test_browser import CHROMIUM, log_in
from outreach.lib import clock
from outreach.metrics.models import DailyRollup
from outreach.pool import states
from outreach.pool.models import Mailbox, StateChange

# The browser fixture of the dashboard's first browser tests, shared.
page = test_browser.page

DOCS_IMAGES = Path(__file__).resolve().parents[3] / "docs" / "images"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"Chromium not installed at {CHROMIUM}"),
]


def _docs_screenshot(page: Any, name: str) -> None:
    if os.environ.get("OUTREACH_DOCS_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_IMAGES / name), full_page=True)


def test_the_overview_lists_a_paused_mailbox_with_its_reason_and_resumes_it(
    page: Any, live_server: Any
) -> None:
    box = seed_activity().mailboxes[0]
    states.transition_mailbox(
        box, Mailbox.State.PAUSED, reason="bounce rate 6.1% over 5.0%", actor="rules"
    )
    log_in(page, live_server.url)
    row = page.locator(f'#attention-table tr[data-name="{box.address}"]')
    assert "bounce rate 6.1% over 5.0%" in row.inner_text()
    assert "a person resumes it" in row.inner_text()
    assert "warning" in page.inner_text("#pool-health")
    _docs_screenshot(page, "overview-attention.png")
    messages: list[str] = []

    def confirm(dialog: Any) -> None:
        messages.append(dialog.message)
        dialog.accept()

    page.once("dialog", confirm)
    row.locator("button.resume").click()
    page.wait_for_selector("text=paused → active")
    assert "bounce rate 6.1% over 5.0%" in messages[0]  # the confirmation shows the reason
    box.refresh_from_db()
    assert box.state == Mailbox.State.ACTIVE
    assert StateChange.objects.filter(mailbox=box).latest("id").actor == "user:ann"
    assert page.locator(f'#attention-table tr[data-name="{box.address}"]').count() == 0


def test_bulk_pause_then_bulk_resume_with_a_reason(page: Any, live_server: Any) -> None:
    boxes = seed_activity().mailboxes
    states.transition_mailbox(boxes[0], "paused", reason="complaint", actor="rules")
    states.transition_mailbox(boxes[1], "paused", reason="complaint", actor="rules")
    log_in(page, live_server.url)
    for box in boxes[:2]:
        page.check(f'#attention-table input[name=mailbox][value="{box.pk}"]')
    page.select_option("#bulk-form select[name=action]", "resume")
    page.fill("#bulk-form input[name=reason]", "complaints were test addresses")
    page.once("dialog", lambda d: d.accept())
    page.click("#bulk-form p.bulk button[type=submit]")
    page.wait_for_selector("text=resume: 2 mailboxes")
    for box in boxes[:2]:
        box.refresh_from_db()
        assert box.state == Mailbox.State.ACTIVE
        entry = StateChange.objects.filter(mailbox=box).latest("id")
        assert entry.reason == "complaints were test addresses"


def test_the_alerts_page_filters_and_acknowledges_all_of_a_kind(
    page: Any, live_server: Any
) -> None:
    seed_activity(1, 2)
    for n in range(3):
        Alert.objects.create(key=f"p{n}", kind="mailbox_paused", severity="critical",
                             text=f"paused number {n}")  # fmt: skip
    Alert.objects.create(key="d", kind="digest", severity="info", text="the daily digest")
    log_in(page, live_server.url)
    page.click("nav >> text=Alerts")
    table = page.inner_text("#alert-table")
    assert "paused number 2" in table and "the daily digest" not in table
    page.select_option("#alert-filters select[name=severity]", "critical")
    page.click("#alert-filters button[type=submit]")
    page.wait_for_url("**severity=critical**")
    assert page.locator("#alert-table tbody tr").count() == 3
    _docs_screenshot(page, "alerts.png")
    page.once("dialog", lambda d: d.accept())
    page.click('#ack-kinds button[data-kind="mailbox_paused"]')
    page.wait_for_selector("text=3 alerts acknowledged.")
    assert not Alert.objects.filter(kind="mailbox_paused", acknowledged_at=None).exists()
    assert Alert.objects.filter(kind="bounce_warning", acknowledged_at=None).exists()


def test_the_trend_charts_render_the_databases_figures(page: Any, live_server: Any) -> None:
    seed_activity(1, 2)
    today = clock.today("UTC")
    for i, sent in enumerate((70, 85, 92)):
        DailyRollup.objects.create(day=today - timedelta(days=i + 1), sent=sent, replied=i)
    log_in(page, live_server.url)
    page.click("#trends >> text=90 days")
    page.wait_for_url("**trend=90**")
    assert page.locator("#trends svg").count() == 2
    titles = page.locator("#trends svg rect.bar-sent title").evaluate_all(
        "nodes => nodes.map(n => n.textContent)"
    )
    assert len(titles) == 90
    # The chart sums a day's rollup rows (the seed's week has its own beside the ones above).
    per_day = (
        DailyRollup.objects.filter(day__lt=today).values("day").annotate(sent_that_day=Sum("sent"))
    )
    expected = {f"{r['day']:%d %b}: {r['sent_that_day']} sent" for r in per_day}
    assert expected <= set(titles)
    _docs_screenshot(page, "overview-trends.png")
