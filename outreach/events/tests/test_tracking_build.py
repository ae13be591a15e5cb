"""Tracking as messages are built: off by default, per campaign, on the sending domain's own
host, in the HTML part only, never on the unsubscribe link."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.test import Client

from outreach.campaigns import config
from outreach.campaigns.models import Campaign
from outreach.campaigns.unsubscribe import read_token, unsubscribe_url
from outreach.events import tracking
from outreach.events.tests.tracking_helpers import GUIDE, PRICING, parts, send_messages
from outreach.pool.models import Domain
from outreach.testing import make_provider

pytestmark = pytest.mark.django_db

MINIMAL = """
slug = "mini"
postal_address = "1 Main Street"

[[steps]]
subject = "Hi"
html = "<p>Hello</p>"
"""


@pytest.fixture(autouse=True)
def _base_url(settings: object) -> None:
    settings.OUTREACH_BASE_URL = "https://outreach.example.com"  # type: ignore[attr-defined]


def test_it_turns_tracking_off_unless_the_campaign_file_turns_it_on() -> None:
    fields = config.parse(MINIMAL).fields
    assert fields["track_opens"] is False and fields["track_clicks"] is False
    spec = config.parse("track_opens = true\ntrack_clicks = true\n" + MINIMAL)
    assert spec.fields["track_opens"] and spec.fields["track_clicks"]
    with pytest.raises(config.ConfigError, match="track_opens: must be true or false"):
        config.parse('track_opens = "yes"\n' + MINIMAL)
    assert Campaign._meta.get_field("track_opens").default is False


def test_an_untracked_message_has_no_pixel_and_its_own_links(tmp_path: Path) -> None:
    (message,) = send_messages(tmp_path)
    text, html = parts(tmp_path, message)
    assert "/o/" not in html and "/c/" not in html
    assert 'href="https://docs.example.net/guide?a=1&amp;b=2#top"' in html
    assert GUIDE in text


def test_turning_tracking_on_applies_to_messages_built_from_then_on(tmp_path: Path) -> None:
    (before,) = send_messages(tmp_path)
    (after,) = send_messages(tmp_path, opens=True, clicks=True, lead_domain="later.example.org")
    assert "t.send1.example.com" not in parts(tmp_path, before)[1]
    assert "https://t.send1.example.com/o/" in parts(tmp_path, after)[1]


def test_it_rewrites_html_links_on_the_domains_own_host_and_keeps_the_text_part(
    tmp_path: Path,
) -> None:
    (message,) = send_messages(tmp_path, opens=True, clicks=True)
    text, html = parts(tmp_path, message)
    # The text part shows the original links and nothing of the tracking.
    assert GUIDE in text and PRICING in text and "t.send1.example.com" not in text
    hrefs = re.findall(r"""href=["']([^"']+)["']""", html)
    tracked = [h for h in hrefs if h.startswith("https://t.send1.example.com/c/")]
    assert len(tracked) == 2
    targets = [tracking.read_click(urlsplit(h.replace("&amp;", "&")).path[3:]) for h in tracked]
    assert [(t.message_pk, t.index, t.url) for t in targets if t] == [
        (message.pk, 0, GUIDE),
        (message.pk, 1, PRICING),
    ]
    # Mail links and the unsubscribe link are never rewritten.
    assert "mailto:sales@example.org" in hrefs
    # The token is timestamped: compare what it stands for, not its text.
    prefix = unsubscribe_url(message.pk).rpartition("/")[0] + "/"
    unsubscribes = [h for h in hrefs if h.startswith(prefix)]
    assert [read_token(h.removeprefix(prefix)) for h in unsubscribes] == [message.pk]
    (pixel,) = re.findall(r'<td background="(https://t\.send1\.example\.com/o/[^"]+)"', html)
    assert tracking.read_open(urlsplit(pixel).path[3:]) == message.pk
    assert html.index(pixel) < html.index("</body>")


def test_a_domain_may_name_its_own_tracking_host(tmp_path: Path) -> None:
    (message,) = send_messages(tmp_path, opens=True)
    Domain.objects.update(tracking_host="links.send1.example.com")
    (second,) = send_messages(tmp_path, opens=True, lead_domain="later.example.org")
    assert "https://t.send1.example.com/o/" in parts(tmp_path, message)[1]
    assert "https://links.send1.example.com/o/" in parts(tmp_path, second)[1]


def test_clicks_alone_add_no_pixel(tmp_path: Path) -> None:
    (message,) = send_messages(tmp_path, clicks=True)
    html = parts(tmp_path, message)[1]
    assert "/o/" not in html and html.count("https://t.send1.example.com/c/") == 2


def test_caddy_gets_certificates_only_for_the_pools_tracking_hosts(client: Client) -> None:
    provider = make_provider("sandbox-tls")
    Domain.objects.create(name="send9.example.com", provider=provider)
    Domain.objects.create(
        name="send8.example.com", provider=provider, tracking_host="links.send8.example.com"
    )
    Domain.objects.create(name="old.example.com", provider=provider, state="retired")

    def ask(host: str) -> int:
        return client.get("/tracking/tls-ask", {"domain": host}).status_code

    assert ask("t.send9.example.com") == 200
    assert ask("links.send8.example.com") == 200
    assert ask("t.send8.example.com") == 404
    assert ask("t.old.example.com") == 404
    assert ask("attacker.example.org") == 404
    assert ask("") == 404
