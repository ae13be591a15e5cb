"""Opens and clicks over real HTTP against the running app: a sent message's pixel and links
fetched as people, proxies and scanners would, and the probes a tracking host must survive."""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from django.conf import settings
from django.core import signing
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from outreach.campaigns.models import Message
from outreach.events import tracking
from outreach.events.models import Event
from outreach.events.tests.tracking_helpers import GUIDE, PRICING, parts, send_messages
from outreach.lib import clock
from outreach.metrics import prometheus
from outreach.metrics.rollups import rebuild, window_figures
from outreach.testing import child_database_url
from outreach.tests.test_web import _spawn_run, free_port, wait_for

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)


@pytest.fixture(autouse=True)
def _clean(settings: object) -> Iterator[None]:
    settings.OUTREACH_BASE_URL = "https://outreach.example.com"  # type: ignore[attr-defined]
    tracking.reset()
    clock.set_now(T0)
    yield
    clock.set_now(None)
    tracking.reset()


class Sent:
    """One tracked message as sent, and its tracking URLs on the running server."""

    def __init__(self, server: str, outbox: Path, message: Message) -> None:
        self.message = message
        html = parts(outbox, message)[1]
        pixel = re.findall(r'<td background="([^"]+/o/[^"]+)"', html)[0]
        self.pixel = server + urlsplit(pixel).path
        links = re.findall(r"""href=["'](https://t\.[^"']+/c/[^"']+)["']""", html)
        self.links = [server + urlsplit(link).path for link in links]

    def events(self, kind: str) -> list[Event]:
        return list(Event.objects.filter(message=self.message, type=kind).order_by("id"))


def sent(live_server: object, tmp_path: Path, count: int = 1) -> list[Sent]:
    messages = send_messages(tmp_path, count, opens=True, clicks=True)
    clock.advance(timedelta(minutes=5))  # a person reads later than any scanner scans
    return [Sent(str(live_server), tmp_path, m) for m in messages]


def get(url: str, agent: str = BROWSER, ip: str = "", method: str = "GET") -> requests.Response:
    headers = {"User-Agent": agent, **({"X-Forwarded-For": ip} if ip else {})}
    return requests.request(method, url, headers=headers, timeout=5, allow_redirects=False)


@pytest.mark.django_db(transaction=True)
def test_a_person_opening_the_message_is_one_estimated_human_open(
    live_server: object, tmp_path: Path
) -> None:
    (one,) = sent(live_server, tmp_path)
    for _ in range(3):
        response = get(one.pixel, ip="198.51.100.7")
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "image/gif"
        assert response.content.startswith(b"GIF89a")
        assert "no-store" in response.headers["Cache-Control"]
    (opened,) = one.events(Event.Type.OPENED)
    assert opened.raw["visitor"] == "human"
    assert opened.raw["user_agent"] == BROWSER and opened.raw["ip"] == "198.51.100.7"
    assert opened.mailbox_id == one.message.mailbox_id
    figures = window_figures(days=1)
    assert (figures.opened, figures.opened_human) == (1, 1)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("agent", "ip", "delay", "reason"),
    [
        ("Mozilla/5.0", "", 300, "apple_mpp"),
        (BROWSER, "17.58.101.12", 300, "apple_mpp"),
        (GMAIL_PROXY, "", 300, "google_image_proxy"),
        (BROWSER, "66.249.84.10", 300, "google_image_proxy"),
        (BROWSER, "40.107.22.3", 300, "microsoft_proxy"),
        ("Mozilla/5.0 (compatible; Barracuda Sentinel)", "", 300, "scanner_agent"),
        ("python-requests/2.32", "", 300, "scanner_agent"),
        ("", "", 300, "no_agent"),
        (BROWSER, "198.51.100.7", 4, "soon_after_delivery"),
    ],
    ids=[
        "mpp-agent",
        "mpp-range",
        "gmail",
        "google-range",
        "microsoft",
        "gateway",
        "script",
        "no-agent",
        "on-delivery",
    ],
)
def test_proxies_scanners_and_fetches_on_delivery_are_machine_opens(
    live_server: object, tmp_path: Path, agent: str, ip: str, delay: int, reason: str
) -> None:
    messages = send_messages(tmp_path, opens=True)
    clock.advance(timedelta(seconds=delay))
    (one,) = [Sent(str(live_server), tmp_path, m) for m in messages]
    assert get(one.pixel, agent=agent, ip=ip).status_code == 200
    assert get(one.pixel, agent=agent, ip=ip).status_code == 200
    (opened,) = one.events(Event.Type.OPENED)
    assert (opened.raw["visitor"], opened.raw["reason"]) == ("machine", reason)
    figures = window_figures(days=1)
    assert (figures.opened, figures.opened_human, figures.open_rate) == (1, 0, 0.0)


@pytest.mark.django_db(transaction=True)
def test_a_machine_open_then_a_person_counts_once_in_each_class(
    live_server: object, tmp_path: Path
) -> None:
    (one,) = sent(live_server, tmp_path)
    get(one.pixel, agent="Mozilla/5.0")
    get(one.pixel, agent="Mozilla/5.0")
    get(one.pixel)
    get(one.pixel)
    assert sorted(e.raw["visitor"] for e in one.events(Event.Type.OPENED)) == ["human", "machine"]
    figures = window_figures(days=1)
    assert (figures.opened, figures.opened_human) == (2, 1)


@pytest.mark.django_db(transaction=True)
def test_a_click_redirects_to_the_exact_original_url_and_counts_a_person(
    live_server: object, tmp_path: Path
) -> None:
    (one,) = sent(live_server, tmp_path)
    get(one.pixel)
    guide, pricing = one.links
    response = get(guide)
    assert response.status_code == 302 and response.headers["Location"] == GUIDE
    assert get(pricing).headers["Location"] == PRICING
    (clicked,) = one.events(Event.Type.CLICKED)
    assert clicked.raw["visitor"] == "human" and clicked.raw["url"] == GUIDE
    figures = window_figures(days=1)
    assert (figures.clicked, figures.clicked_human, figures.click_rate) == (1, 1, 1.0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("method", "agent", "opened", "reason"),
    [
        ("HEAD", BROWSER, True, "head"),
        ("GET", "Mozilla/5.0 (compatible; Mimecast URL Protect)", True, "scanner_agent"),
        ("GET", BROWSER, False, "click_before_open"),
    ],
    ids=["head", "gateway-agent", "before-open"],
)
def test_a_scanners_prefetch_still_redirects_but_is_not_counted(
    live_server: object, tmp_path: Path, method: str, agent: str, opened: bool, reason: str
) -> None:
    (one,) = sent(live_server, tmp_path)
    if opened:
        get(one.pixel)
    response = get(one.links[0], agent=agent, method=method)
    assert response.status_code == 302 and response.headers["Location"] == GUIDE
    (clicked,) = one.events(Event.Type.CLICKED)
    assert (clicked.raw["visitor"], clicked.raw["reason"]) == ("machine", reason)
    figures = window_figures(days=1)
    assert (figures.clicked, figures.clicked_human) == (1, 0)


@pytest.mark.django_db(transaction=True)
def test_a_click_within_seconds_of_delivery_is_a_scanner(
    live_server: object, tmp_path: Path
) -> None:
    (message,) = send_messages(tmp_path, opens=True, clicks=True)
    one = Sent(str(live_server), tmp_path, message)
    clock.advance(timedelta(seconds=3))
    get(one.pixel)
    assert get(one.links[1]).headers["Location"] == PRICING
    (clicked,) = one.events(Event.Type.CLICKED)
    assert clicked.raw["reason"] == "soon_after_delivery"


@pytest.mark.django_db(transaction=True)
def test_forged_and_tampered_tokens_redirect_nowhere(live_server: object, tmp_path: Path) -> None:
    (one,) = sent(live_server, tmp_path)
    server = str(live_server)
    token = urlsplit(one.links[0]).path.removeprefix("/c/")
    attacker = "https://evil.example.com/phish"
    # A token whose target is an attacker's URL, signed with any key but the server's.
    forged = signing.dumps(
        [one.message.pk, 0, attacker, 1], key="not-the-secret", salt=tracking.CLICK_PURPOSE
    )
    # The signed payload of a real token with the attacker's URL put in, signature kept.
    payload, stamp, signature = token.split(":")
    swapped = signing.dumps([one.message.pk, 0, attacker, 1], salt="other").split(":")[0]
    probes = {
        "forged": f"{server}/c/{forged}",
        "payload swapped": f"{server}/c/{swapped}:{stamp}:{signature}",
        "signature changed": f"{server}/c/{payload}:{stamp}:{signature[:-2]}xx",
        "open token as link": f"{server}/c/{urlsplit(one.pixel).path.removeprefix('/o/')}",
        "link token as pixel": f"{server}/o/{token}",
        "garbage": f"{server}/c/%00%ff'\"<script>",
    }
    for name, url in probes.items():
        response = get(url)
        assert response.status_code == 404, name
        assert "Location" not in response.headers, name
        assert "evil.example.com" not in response.text, name
    assert get(f"{one.links[0]}?{'x=1&' * 500}").status_code == 400
    assert get(f"{one.pixel}?{'x' * 5000}").status_code == 400
    assert not Event.objects.filter(type__in=[Event.Type.OPENED, Event.Type.CLICKED]).exists()


@pytest.mark.django_db(transaction=True)
def test_the_tokens_of_a_deleted_message_are_not_found(live_server: object, tmp_path: Path) -> None:
    (one,) = sent(live_server, tmp_path)
    Message.objects.filter(pk=one.message.pk).delete()
    assert get(one.pixel).status_code == 404
    assert get(one.links[0]).status_code == 404
    assert not Event.objects.filter(type__in=[Event.Type.OPENED, Event.Type.CLICKED]).exists()


@pytest.mark.django_db(transaction=True)
def test_a_flood_of_pixel_fetches_is_one_event_and_is_rate_limited(
    live_server: object, tmp_path: Path
) -> None:
    (one,) = sent(live_server, tmp_path)
    codes = [get(one.pixel).status_code for _ in range(tracking.RATE.requests + 5)]
    assert codes == [200] * tracking.RATE.requests + [429] * 5
    assert len(one.events(Event.Type.OPENED)) == 1


@pytest.mark.django_db
def test_a_repeated_fetch_costs_no_database_query(tmp_path: Path, client: Client) -> None:
    (message,) = send_messages(tmp_path, opens=True, clicks=True)
    clock.advance(timedelta(minutes=5))
    pixel = urlsplit(re.findall(r'<td background="([^"]+)"', parts(tmp_path, message)[1])[0]).path
    link = urlsplit(re.findall(r'href="(https://t\.[^"]+)"', parts(tmp_path, message)[1])[0]).path
    assert client.get(pixel, HTTP_USER_AGENT=BROWSER).status_code == 200
    assert client.get(link, HTTP_USER_AGENT=BROWSER).status_code == 302
    with CaptureQueriesContext(connection) as queries:
        assert client.get(pixel, HTTP_USER_AGENT=BROWSER).status_code == 200
        assert client.get(link, HTTP_USER_AGENT=BROWSER).status_code == 302
    assert [q["sql"] for q in queries.captured_queries] == []


@pytest.mark.django_db(transaction=True)
def test_the_served_app_answers_probes_and_long_links_without_a_500(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``outreach run`` itself (waitress), not the test server: tokens longer than a file name,
    a link of the longest tracked length, and probes that must end in 404 or 400."""
    long_url = "https://docs.example.net/a?" + "q=1&" * 480
    assert len(long_url) <= tracking.MAX_URL
    (message,) = send_messages(tmp_path, opens=True, clicks=True)
    long_link = tracking.click_url("t.x", message.pk, 9, long_url, opens=True)
    port = free_port()
    # The child verifies the tokens this process signed, with the same key.
    monkeypatch.setenv("SECRET_KEY", settings.SECRET_KEY)
    monkeypatch.setenv("OUTREACH_UNSUBSCRIBE_KEY", settings.OUTREACH_UNSUBSCRIBE_KEY)
    proc = _spawn_run(tmp_path, child_database_url(), port)
    try:
        server = f"http://127.0.0.1:{port}"
        wait_for(f"{server}/healthz")
        followed = get(server + urlsplit(long_link).path)
        assert followed.status_code == 302 and followed.headers["Location"] == long_url
        probes = {
            f"{server}/c/{'A' * 6000}": 404,
            f"{server}/o/{'A' * 6000}": 404,
            f"{server}/c/{'A' * 20000}": (404, 414, 431, 400),
            f"{server}{urlsplit(long_link).path}?{'x' * 5000}": 400,
            f"{server}/o/%ff%fe%00": 404,
        }
        for url, expected in probes.items():
            code = get(url).status_code
            assert code in (expected if isinstance(expected, tuple) else (expected,)), url[:80]
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert "Traceback" not in output, output


@pytest.mark.django_db(transaction=True)
def test_opens_and_clicks_reach_rebuilt_rollups_and_metrics_per_step_and_variant(
    live_server: object, tmp_path: Path
) -> None:
    first, second = sent(live_server, tmp_path, count=2)
    get(first.pixel)
    get(first.links[0])
    get(second.pixel, agent="Mozilla/5.0")
    before = window_figures(days=1)
    assert (before.sent, before.opened, before.opened_human, before.clicked_human) == (2, 2, 1, 1)
    assert (before.open_rate, before.click_rate) == (0.5, 0.5)
    rebuild(clock.today())
    assert window_figures(days=1) == before
    exposition = prometheus.render()
    labels = 'campaign="launch",step="1",variant="A"'
    assert f'outreach_campaign_events_total{{{labels},type="opened"}} 2' in exposition
    assert f'outreach_campaign_events_total{{{labels},type="opened_human"}} 1' in exposition
    assert f'outreach_campaign_events_total{{{labels},type="clicked_human"}} 1' in exposition
