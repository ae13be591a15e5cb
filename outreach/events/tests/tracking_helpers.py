"""Builders of the tracking tests: a campaign whose messages carry links, sent through the
sandbox provider, and the parts of what was sent."""

from __future__ import annotations

import email
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import cast

from outreach.campaigns.models import Campaign, Message
from outreach.lib import clock
from outreach.sending.engine import send_due
from outreach.sending.tests.helpers import claimed_campaign_messages
from outreach.testing import make_provider

BODY_HTML = (
    "<html><body><p>Hi {{ first_name }},</p>"
    '<p>See <a href="https://docs.example.net/guide?a=1&amp;b=2#top">our guide</a> and '
    "<a class='x' href='http://example.org/pricing'>pricing</a>, or "
    '<a href="mailto:sales@example.org">write</a>.</p></body></html>'
)
GUIDE = "https://docs.example.net/guide?a=1&b=2#top"
PRICING = "http://example.org/pricing"


def send_messages(
    outbox: Path,
    count: int = 1,
    *,
    opens: bool = False,
    clicks: bool = False,
    lead_domain: str = "prospect.example.org",
) -> list[Message]:
    """``count`` messages of a campaign with tracking as given, built and sent now."""
    provider = make_provider("sandbox-tracking", settings={"outbox_dir": str(outbox)})
    campaign = Campaign.objects.filter(slug="launch").first()
    messages = claimed_campaign_messages(
        count, provider=provider, campaign=campaign, lead_domain=lead_domain
    )
    campaign = Campaign.objects.get(slug="launch")
    if campaign.track_opens != opens or campaign.track_clicks != clicks:
        Campaign.objects.filter(pk=campaign.pk).update(track_opens=opens, track_clicks=clicks)
    campaign.steps.get(position=1).variants.update(body_html=BODY_HTML)
    assert send_due(clock.now()) == count
    for m in messages:
        m.refresh_from_db()
    return messages


def parts(outbox: Path, message: Message) -> tuple[str, str]:
    """The (text, html) parts of the .eml the sandbox wrote for ``message``."""
    (path,) = outbox.glob(f"{message.pk}-*.eml")
    mail = cast(EmailMessage, email.message_from_bytes(path.read_bytes(), policy=default))
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def raw(outbox: Path, message: Message) -> bytes:
    (path,) = outbox.glob(f"{message.pk}-*.eml")
    return path.read_bytes()
