"""The inbox in a real browser (Debian's Chromium, Playwright): open the inbox, relabel a reply
and answer it; the answer reaches a real SMTP server from the receiving mailbox, in the
thread."""

from __future__ import annotations

from typing import Any

import pytest

from outreach.dashboard.tests.test_browser import ARTIFACTS, CHROMIUM, log_in, page
from outreach.dashboard.tests.test_inbox_pages import (
    Conversation,
    conversation,
    receive,
    smtp,
    tls,
)
from outreach.events.models import InboundMail, LabelChange

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"Chromium not installed at {CHROMIUM}"),
]

__all__ = ["conversation", "page", "smtp", "tls"]


def test_it_opens_the_inbox_relabels_and_answers_in_the_thread(
    page: Any, live_server: Any, conversation: Conversation
) -> None:
    mail = receive(conversation, "Hmm. Who are you with, again?")
    log_in(page, live_server.url)

    assert page.inner_text("#inbox-unread") == "1"
    page.click("#nav-inbox")
    page.click(f'tr[data-mail="{mail.pk}"] a')
    assert "Who are you with, again?" in page.inner_text("#thread")
    assert page.inner_text("#current-label") == "other"
    assert "(campaign message, step 1)" in page.inner_text("#thread li.ours")

    page.select_option("#relabel select", "interested")
    page.click("#relabel button")
    page.wait_for_selector("text=Labeled interested.")
    assert page.inner_text("#current-label") == "interested"
    assert LabelChange.objects.get().actor == "user:ann"

    page.fill("textarea[name=text]", "We help sales teams reply faster. Shall we talk?")
    page.click("#send-answer")
    page.wait_for_selector("text=Sent from")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "inbox-thread.png"), full_page=True)

    [delivered] = conversation.smtp.handler.received
    assert delivered.login == conversation.mailbox.address
    assert delivered.rcpt_tos == ["lead0@prospect.example.org"]
    message = delivered.message
    assert message["From"].addresses[0].addr_spec == conversation.mailbox.address
    assert message["Subject"] == "Re: Quick question, Lead0"
    assert message["In-Reply-To"] == mail.message_id_header
    assert mail.message_id_header in message["References"]
    assert page.locator("#thread li.ours", has_text="We help sales teams").count() == 1
    assert InboundMail.objects.get().answered_at is not None
