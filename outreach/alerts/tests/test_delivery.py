"""The outbox and its delivery: quiet periods, Apprise to a Telegram Bot API faked at the HTTP
seam (ok, 429 with retry_after, 403, 400 chat not found), backoff, and the log when no channel
is configured."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command

from outreach.alerts import delivery, outbox, raise_alert
from outreach.alerts.models import Alert
from outreach.alerts.tests.conftest import CHAT_ID, FakeTelegram, telegram_error
from outreach.lib import clock

pytestmark = pytest.mark.django_db


def _alert(key: str = "bounce-warning:mailbox:1") -> Alert:
    alert = raise_alert(
        key,
        "bounce_warning",
        "⚠️ rep1@send1.example.com\nhard bounces 4.0% of 100 sent",
        "warning",
        {"sent": 100},
    )
    assert alert is not None
    return alert


def test_it_does_not_repeat_a_key_within_its_quiet_period(noon: Any, settings: Any) -> None:
    settings.OUTREACH_ALERT_QUIET_MINUTES = 60
    assert _alert() is not None
    assert raise_alert("bounce-warning:mailbox:1", "bounce_warning", "again") is None
    assert raise_alert("bounce-warning:mailbox:2", "bounce_warning", "other") is not None
    clock.advance(timedelta(minutes=61))
    assert raise_alert("bounce-warning:mailbox:1", "bounce_warning", "later") is not None
    assert Alert.objects.filter(key="bounce-warning:mailbox:1").count() == 2


def test_quiet_keys_are_those_raise_alert_would_refuse(noon: Any, settings: Any) -> None:
    settings.OUTREACH_ALERT_QUIET_MINUTES = 60
    _alert("bounce-warning:mailbox:1")
    keys = ["bounce-warning:mailbox:1", "bounce-warning:mailbox:2"]
    assert outbox.quiet_keys(keys) == {"bounce-warning:mailbox:1"}
    clock.advance(timedelta(minutes=61))
    assert outbox.quiet_keys(keys) == set()


def test_it_logs_alerts_when_no_channel_is_configured(
    noon: Any, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.OUTREACH_ALERT_URLS = []
    alert = _alert()
    with caplog.at_level(logging.WARNING, logger="outreach.alerts.delivery"):
        assert delivery.deliver_one()
    assert "hard bounces 4.0%" in caplog.text
    alert.refresh_from_db()
    assert alert.state == Alert.State.SENT
    assert not delivery.deliver_one()


def test_it_delivers_to_telegram_through_apprise(noon: Any, telegram: FakeTelegram) -> None:
    alert = _alert()
    raise_alert("escape", "mailbox_paused", "bounce from <postmaster@example.org> & co")
    assert delivery.deliver_one()
    assert delivery.deliver_one()

    request, escaped = telegram.received
    assert "&lt;postmaster@example.org&gt; &amp; co" in escaped["text"]
    assert "/sendMessage" in request["url"]
    assert str(request["chat_id"]) == CHAT_ID
    assert "rep1@send1.example.com" in request["text"]
    alert.refresh_from_db()
    assert (alert.state, alert.attempts, alert.sent_at) == (Alert.State.SENT, 1, clock.now())


def test_it_waits_as_long_as_telegram_asks_on_429(noon: Any, telegram: FakeTelegram) -> None:
    alert = _alert()
    telegram.reply(429, telegram_error(429, "Too Many Requests: retry after 45", retry_after=45))

    assert delivery.deliver_one()
    alert.refresh_from_db()
    assert alert.state == Alert.State.PENDING
    assert alert.next_attempt_at == clock.now() + timedelta(seconds=45)
    assert "429" in alert.last_error

    clock.advance(timedelta(seconds=44))
    assert not delivery.deliver_one()  # not before retry_after
    assert len(telegram.received) == 1
    clock.advance(timedelta(seconds=1))
    assert delivery.deliver_one()
    alert.refresh_from_db()
    assert alert.state == Alert.State.SENT and alert.attempts == 2


@pytest.mark.parametrize(
    ("status", "description"),
    [
        (403, "Forbidden: bot was blocked by the user"),
        (400, "Bad Request: chat not found"),
        (401, "Unauthorized"),
    ],
)
def test_it_reports_permanent_telegram_errors_instead_of_retrying(
    noon: Any, telegram: FakeTelegram, status: int, description: str
) -> None:
    alert = _alert()
    telegram.reply(status, telegram_error(status, description))

    assert delivery.deliver_one()
    alert.refresh_from_db()
    assert alert.state == Alert.State.FAILED
    assert description in alert.last_error
    clock.advance(timedelta(days=1))
    assert not delivery.deliver_one()
    assert len(telegram.received) == 1


def test_it_backs_off_on_server_errors_and_gives_up_after_the_limit(
    noon: Any, telegram: FakeTelegram, settings: Any
) -> None:
    settings.OUTREACH_ALERT_MAX_ATTEMPTS = 3
    alert = _alert()
    for _ in range(3):
        telegram.reply(502, telegram_error(502, "Bad Gateway"))

    waits = []
    for _ in range(3):
        before = clock.now()
        assert delivery.deliver_one()
        alert.refresh_from_db()
        waits.append(alert.next_attempt_at - before)
        clock.set_now(max(clock.now(), alert.next_attempt_at))
    assert waits[:2] == [timedelta(seconds=30), timedelta(seconds=60)]
    assert alert.state == Alert.State.FAILED and alert.attempts == 3


def test_it_does_not_resend_to_a_channel_that_already_has_the_alert(
    noon: Any, telegram: FakeTelegram, settings: Any
) -> None:
    second_chat = "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/-1009876543210/"
    settings.OUTREACH_ALERT_URLS = [*settings.OUTREACH_ALERT_URLS, second_chat]
    alert = _alert()
    telegram.reply(200, {"ok": True, "result": {"message_id": 7, "date": 0, "chat": {}}})
    telegram.reply(500, telegram_error(500, "Internal Server Error"))

    delivery.deliver_one()
    clock.advance(timedelta(seconds=30))
    delivery.deliver_one()

    chats = [str(r["chat_id"]) for r in telegram.received]
    assert chats == [CHAT_ID, "-1009876543210", "-1009876543210"]
    alert.refresh_from_db()
    assert alert.state == Alert.State.SENT


def test_the_alerts_command_runs_a_pass_and_delivers(noon: Any, telegram: FakeTelegram) -> None:
    _alert()
    call_command("alerts", "--once")  # noon: past the digest hour, so the digest goes too
    assert len(telegram.received) == 2
    assert "digest" in telegram.received[1]["text"]
    assert set(Alert.objects.values_list("state", flat=True)) == {Alert.State.SENT}


@pytest.mark.django_db(transaction=True)
def test_the_loop_delivers_and_stops_cleanly(noon: Any, telegram: FakeTelegram) -> None:
    import threading
    import time

    from django.db import connection

    from outreach.alerts.loop import make_loop
    from outreach.lib.loop import run_loop

    alert = _alert()
    stop = threading.Event()
    loop = make_loop(stop)
    loop.idle_seconds = 0.05

    def run() -> None:
        try:
            run_loop(loop)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alert.refresh_from_db()
        if alert.state == Alert.State.SENT:
            break
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert alert.state == Alert.State.SENT
