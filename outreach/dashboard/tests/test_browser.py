"""The dashboard in a real browser: Debian's Chromium driven by Playwright against the live app."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connections

from outreach.dashboard.tests.conftest import PASSWORD, seed_activity
from outreach.pool.models import Mailbox, StateChange

CHROMIUM = Path(os.environ.get("OUTREACH_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"Chromium not installed at {CHROMIUM}"),
]


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    # Playwright's sync API runs an event loop in this thread; Django refuses ORM calls from a
    # thread with a running loop unless told it is fine (the test thread is not async code).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(15_000)
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()
            # Inside Playwright's event loop the ORM gets a connection of its own (Django's
            # connections are per async context): close it, or PostgreSQL cannot drop the
            # test database at the end of the run.
            connections.close_all()


def log_in(page: Any, base: str) -> None:
    User.objects.create_user("ann", password=PASSWORD, is_staff=True)
    page.goto(base + "/")
    assert "/accounts/login/" in page.url  # anonymous: sent to the login page
    page.fill("input[name=username]", "ann")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#today-global")


def test_it_logs_in_shows_the_overview_and_pauses_a_mailbox(page: Any, live_server: Any) -> None:
    activity = seed_activity()
    box = activity.mailboxes[0]
    log_in(page, live_server.url)

    assert "Sent today / capacity" in page.inner_text("#today-global")
    assert page.locator("#rates tbody tr").count() == 4
    # The window's chart, then the trends' two (sends, mailboxes not sending).
    assert page.locator("figure.chart svg").count() == 3
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-overview.png"), full_page=True)

    page.click("text=Mailboxes")
    page.click(f"text={box.address}")
    page.select_option("#mailbox-action select[name=action]", "pause")
    page.fill("#mailbox-action input[name=reason]", "spam-folder placement reported by a seed")
    page.click("#mailbox-action button[type=submit]")
    page.wait_for_selector("text=active → paused")

    assert page.inner_text("#mailbox-state") == "paused"
    audit = page.inner_text("table.audit")
    assert "spam-folder placement reported by a seed" in audit and "user:ann" in audit
    box.refresh_from_db()
    assert box.state == Mailbox.State.PAUSED
    assert StateChange.objects.get(mailbox=box).actor == "user:ann"

    page.click("text=Audit log")
    assert "spam-folder placement reported by a seed" in page.inner_text("table.audit")


def test_it_imports_a_csv_from_the_browser(page: Any, live_server: Any, tmp_path: Path) -> None:
    seed_activity(1, 1)
    log_in(page, live_server.url)
    page.click("text=Import leads")
    csv_file = tmp_path / "leads.csv"
    csv_file.write_text("email,first_name,company\nzoe@gamma.example,Zoe,Gamma\nbad address,X,Y\n")
    page.set_input_files("#lead-import input[name=file]", str(csv_file))
    page.select_option("#lead-import select[name=campaign]", "launch")
    page.click("#lead-import button[type=submit]")
    page.wait_for_selector("#import-report")
    summary = page.inner_text("#import-summary")
    assert "imported" in summary
    errors = page.inner_text("#import-errors")
    assert "3" in errors  # the bad row, by its line number
