"""The Telegram bot against a Bot API faked over HTTP: only allow-listed chats are answered,
every command, Telegram's 429 with retry_after, and the audit log under the Telegram user."""

from __future__ import annotations

import io
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from outreach.alerts import raise_alert
from outreach.alerts.models import Alert
from outreach.alerts.tests.conftest import send
from outreach.lib import clock
from outreach.lib.telegram_api import BotApi
from outreach.pool import states
from outreach.pool.models import Domain, Mailbox, StateChange
from outreach.scheduler.models import DailyCounter
from outreach.scheduler.status import pool_status
from outreach.telegram.bot import Bot
from outreach.telegram.models import BotCursor, IgnoredChat
from outreach.telegram.tests.fakebotapi import TOKEN, FakeBotApi, error
from outreach.testing import child_env, make_pool

pytestmark = pytest.mark.django_db

OPS = 424242  # the operator's private chat, allow-listed
TEAM = -1009876543210  # a group of the team, allow-listed
STRANGER = 777


@pytest.fixture
def api() -> Iterator[FakeBotApi]:
    fake = FakeBotApi().start()
    yield fake
    fake.stop()


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def bot(api: FakeBotApi, waits: list[float]) -> Bot:
    clock.set_now(datetime(2026, 11, 28, 12, 0, tzinfo=UTC))
    return Bot(BotApi(api.url, TOKEN), {OPS, TEAM}, poll_seconds=0, wait=waits.append)


@pytest.fixture
def boxes() -> list[Mailbox]:
    return make_pool(domains=2, mailboxes_per_domain=2)


def say(api: FakeBotApi, bot: Bot, text: str, chat: int = OPS, **sender: Any) -> str:
    """The operator writes ``text``; the bot polls once; its one answer."""
    before = len(api.replies_to(chat))
    api.write(chat, text, **sender)
    assert bot.handle_one()
    replies = api.replies_to(chat)
    assert len(replies) == before + 1, replies
    return replies[-1]


def test_it_ignores_and_counts_strangers(api: FakeBotApi, bot: Bot, boxes: list[Mailbox]) -> None:
    api.write(STRANGER, "/status", username="mallory")
    api.write(STRANGER, f"/pause {boxes[0].address} gotcha", username="mallory")
    assert bot.handle_one()
    assert api.replies_to(STRANGER) == []
    boxes[0].refresh_from_db()
    assert boxes[0].state == Mailbox.State.ACTIVE
    ignored = IgnoredChat.objects.get(chat_id=STRANGER)
    assert (ignored.messages, ignored.last_sender) == (2, "@mallory")
    # The allow-listed chats are answered, a group as well as a private chat.
    assert "capacity" in say(api, bot, "/status@outreach_bot", chat=TEAM)
    assert not IgnoredChat.objects.filter(chat_id=TEAM).exists()


def test_it_answers_status_with_capacity_and_the_reasons_of_paused_mailboxes(
    api: FakeBotApi, bot: Bot, boxes: list[Mailbox]
) -> None:
    states.transition_mailbox(
        boxes[1], Mailbox.State.PAUSED, reason="hard bounces 6.0% of 50", actor="rules"
    )
    # What the claim reserved today under the mailbox's cap: the count capacity is spent by.
    DailyCounter.objects.create(
        scope=DailyCounter.Scope.MAILBOX, key=str(boxes[0].pk), day=clock.now().date(), used=3
    )
    answer = say(api, bot, "/status")
    status = pool_status()
    assert status.sent_today == 3
    assert f"Today: 3 sent of {status.capacity_today} capacity." in answer
    assert f"{boxes[1].address} paused: hard bounces 6.0% of 50 (since 2026-11-28 12:00" in answer
    assert boxes[0].address not in answer


def test_it_answers_today_with_the_days_figures_and_open_alerts(
    api: FakeBotApi, bot: Bot, boxes: list[Mailbox]
) -> None:
    send(boxes[0], 4)
    alert = raise_alert("k1", "bounce_warning", "⚠️ rep1 bounces 4%\nmore", "warning")
    raise_alert("k2", "digest", "daily digest", "info")
    assert alert is not None
    answer = say(api, bot, "/today")
    assert "Today: 4 sent of" in answer
    assert "Open alerts of the last 24 h: 1" in answer
    assert f"#{alert.pk} [warning] ⚠️ rep1 bounces 4%" in answer
    assert "digest" not in answer


def test_it_pauses_a_mailbox_in_the_audit_log_as_the_telegram_user(
    api: FakeBotApi, bot: Bot, boxes: list[Mailbox]
) -> None:
    answer = say(api, bot, f"/pause {boxes[0].address.upper()} complaint from a big client")
    assert answer == f"Paused {boxes[0].address}: complaint from a big client"
    boxes[0].refresh_from_db()
    assert boxes[0].state == Mailbox.State.PAUSED
    change = StateChange.objects.get(mailbox=boxes[0])
    assert (change.actor, change.reason, change.figures) == (
        "telegram:@alice",
        "complaint from a big client",
        {"via": "telegram"},
    )
    # A user without a user name is recorded by id; a missing reason changes nothing.
    assert "Usage" in say(api, bot, f"/pause {boxes[1].address}")
    say(api, bot, f"/pause {boxes[1].address} checking", user_id=9001, username="")
    assert StateChange.objects.get(mailbox=boxes[1]).actor == "telegram:9001"
    assert "Nothing changed" in say(api, bot, f"/pause {boxes[1].address} again")
    assert say(api, bot, "/pause nobody@nowhere.example x") == "No mailbox nobody@nowhere.example."


def test_it_pauses_every_sending_mailbox_of_a_domain(
    api: FakeBotApi, bot: Bot, boxes: list[Mailbox]
) -> None:
    domain = boxes[0].domain
    answer = say(api, bot, f"/pause {domain.name} blocklisted at Spamhaus")
    assert answer.startswith(f"Paused 2 mailbox(es) of {domain.name}")
    changes = StateChange.objects.filter(domain=domain, to_state=Mailbox.State.PAUSED)
    assert {c.mailbox_id for c in changes} == {boxes[0].pk, boxes[1].pk}
    assert {c.actor for c in changes} == {"telegram:@alice"}
    assert Mailbox.objects.get(pk=boxes[2].pk).state == Mailbox.State.ACTIVE  # other domain
    assert "nothing to pause" in say(api, bot, f"/pause {domain.name} again")


def test_it_shows_the_evidence_and_resumes_only_after_confirm(
    api: FakeBotApi, bot: Bot, boxes: list[Mailbox]
) -> None:
    mailbox = boxes[0]
    states.transition_mailbox(
        mailbox,
        Mailbox.State.PAUSED,
        reason="hard bounces 6.0% of 50",
        actor="rules",
        figures={"sent": 50, "bounced_hard": 3},
    )
    Domain.objects.filter(pk=mailbox.domain_id).update(
        state=Domain.State.COOLDOWN, cooldown_until=clock.now() + timedelta(days=14)
    )
    assert "Nothing to confirm" in say(api, bot, "/confirm")
    answer = say(api, bot, f"/resume {mailbox.address} list cleaned")
    assert "by rules: hard bounces 6.0% of 50" in answer
    assert "Evidence: sent 50, bounced_hard 3" in answer
    assert "domain in cooldown until 2026-12-12 12:00" in answer
    assert "/confirm" in answer
    mailbox.refresh_from_db()
    assert mailbox.state == Mailbox.State.PAUSED  # nothing yet
    # Another chat's /confirm does not confirm this one.
    assert "Nothing to confirm" in say(api, bot, "/confirm", chat=TEAM)

    assert "paused → active" in say(api, bot, "/confirm")
    mailbox.refresh_from_db()
    assert mailbox.state == Mailbox.State.ACTIVE
    change = StateChange.objects.filter(mailbox=mailbox).latest("id")
    assert (change.actor, change.reason, change.figures["via"]) == (
        "telegram:@alice",
        "list cleaned",
        "telegram",
    )
    assert "nothing to resume" in say(api, bot, f"/resume {mailbox.address}")


def test_a_confirm_after_the_state_changed_or_too_late_does_nothing(
    api: FakeBotApi, bot: Bot, boxes: list[Mailbox]
) -> None:
    mailbox = boxes[0]
    states.transition_mailbox(mailbox, Mailbox.State.PAUSED, reason="r", actor="rules")
    say(api, bot, f"/resume {mailbox.address}")
    states.transition_mailbox(mailbox, Mailbox.State.RETIRED, reason="gone", actor="ops")
    assert "is now retired: nothing changed" in say(api, bot, "/confirm")

    states.transition_mailbox(boxes[1], Mailbox.State.PAUSED, reason="r", actor="rules")
    say(api, bot, f"/resume {boxes[1].address}")
    clock.advance(timedelta(minutes=11))
    assert "Nothing to confirm" in say(api, bot, "/confirm")
    assert Mailbox.objects.get(pk=boxes[1].pk).state == Mailbox.State.PAUSED


def test_a_resume_awaiting_confirm_survives_a_restart_of_the_bot(
    api: FakeBotApi, bot: Bot, boxes: list[Mailbox]
) -> None:
    mailbox = boxes[0]
    states.transition_mailbox(mailbox, Mailbox.State.PAUSED, reason="r", actor="rules")
    assert "/confirm" in say(api, bot, f"/resume {mailbox.address} list cleaned")
    # The bot loop restarts (a deploy, a crash): a new Bot, nothing kept in memory.
    restarted = Bot(bot.api, {OPS, TEAM}, poll_seconds=0, wait=lambda s: None)
    assert "paused → active" in say(api, restarted, "/confirm")
    change = StateChange.objects.filter(mailbox=mailbox).latest("id")
    assert (change.actor, change.reason) == ("telegram:@alice", "list cleaned")
    # Confirmed once: a second /confirm finds nothing, after a restart as before it.
    again = Bot(bot.api, {OPS, TEAM}, poll_seconds=0, wait=lambda s: None)
    assert "Nothing to confirm" in say(api, again, "/confirm")

    # The expiry holds across a restart too.
    states.transition_mailbox(boxes[1], Mailbox.State.PAUSED, reason="r", actor="rules")
    say(api, again, f"/resume {boxes[1].address}")
    clock.advance(timedelta(minutes=11))
    later = Bot(bot.api, {OPS, TEAM}, poll_seconds=0, wait=lambda s: None)
    assert "Nothing to confirm" in say(api, later, "/confirm")
    assert Mailbox.objects.get(pk=boxes[1].pk).state == Mailbox.State.PAUSED


def test_it_acknowledges_an_alert_as_the_telegram_user(
    api: FakeBotApi, bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    alert = raise_alert("k", "mailbox_paused", "paused", "critical")
    assert alert is not None
    with caplog.at_level(logging.INFO, logger="outreach.dashboard.actions"):
        assert say(api, bot, f"/ack {alert.pk}") == f"Alert #{alert.pk} acknowledged."
    alert.refresh_from_db()
    assert alert.acknowledged_at == clock.now()
    assert f"alert {alert.pk} acknowledged by telegram:@alice" in caplog.text
    # In the audit log as the Telegram user, like /pause and /resume.
    entry = StateChange.objects.get()
    assert (entry.actor, entry.from_state, entry.to_state, entry.figures) == (
        "telegram:@alice",
        "open",
        "acknowledged",
        {"via": "telegram", "alert": alert.pk, "kind": "mailbox_paused"},
    )
    assert entry.reason == f"alert #{alert.pk} (mailbox_paused): paused"
    assert "already acknowledged" in say(api, bot, f"/ack #{alert.pk}")
    assert say(api, bot, "/ack 999999") == "No alert #999999."
    assert "Usage" in say(api, bot, "/ack all")
    assert StateChange.objects.count() == 1  # nothing acknowledged, nothing audited


def test_it_answers_help_and_unknown_commands(api: FakeBotApi, bot: Bot) -> None:
    assert "/resume ADDRESS" in say(api, bot, "/start")
    assert say(api, bot, "/frobnicate").startswith("Unknown command /frobnicate.")
    assert say(api, bot, "hello").startswith("Commands start with /")


def test_it_waits_as_long_as_telegram_asks_on_429(
    api: FakeBotApi, bot: Bot, waits: list[float]
) -> None:
    api.scripted["sendMessage"].append(
        (429, error(429, "Too Many Requests: retry after 7", retry_after=7))
    )
    say(api, bot, "/help")
    assert waits == [7]
    assert [m for m, _ in api.calls].count("sendMessage") == 2

    api.scripted["getUpdates"].append(
        (429, error(429, "Too Many Requests: retry after 12", retry_after=12))
    )
    assert not bot.handle_one()
    assert waits == [7, 12]


def test_it_gives_up_a_reply_after_repeated_429s(
    api: FakeBotApi, bot: Bot, waits: list[float]
) -> None:
    for _ in range(3):
        api.scripted["sendMessage"].append((429, error(429, "Too Many Requests", retry_after=2)))
    api.write(OPS, "/help")
    assert bot.handle_one()
    assert api.sent == [] and waits == [2, 2]


def test_it_never_handles_an_update_twice(api: FakeBotApi, bot: Bot, boxes: list[Mailbox]) -> None:
    update_id = api.write(OPS, f"/pause {boxes[0].address} once")
    assert bot.handle_one()
    assert BotCursor.load().offset == update_id + 1
    # A restarted bot starts from the saved offset.
    again = Bot(bot.api, {OPS}, poll_seconds=0, wait=lambda s: None)
    assert not again.handle_one()
    assert StateChange.objects.filter(mailbox=boxes[0]).count() == 1
    assert api.calls[-1] == ("getUpdates", {**api.calls[-1][1], "offset": update_id + 1})


def test_the_command_polls_once(api: FakeBotApi, settings: Any, boxes: list[Mailbox]) -> None:
    settings.OUTREACH_TELEGRAM_BOT_TOKEN = TOKEN
    settings.OUTREACH_TELEGRAM_API_URL = api.url
    settings.OUTREACH_TELEGRAM_CHAT_IDS = [OPS]
    settings.OUTREACH_TELEGRAM_POLL_SECONDS = 0
    api.write(OPS, "/status")
    call_command("telegram", "--once")
    assert "capacity" in api.replies_to(OPS)[0]
    settings.OUTREACH_TELEGRAM_BOT_TOKEN = ""
    with pytest.raises(CommandError, match="OUTREACH_TELEGRAM_BOT_TOKEN"):
        call_command("telegram", "--once")


def test_alerts_test_says_which_channel_failed(api: FakeBotApi, settings: Any) -> None:
    settings.OUTREACH_TELEGRAM_BOT_TOKEN = TOKEN
    settings.OUTREACH_TELEGRAM_API_URL = api.url
    settings.OUTREACH_TELEGRAM_CHAT_IDS = [OPS, STRANGER]
    api.failing_chats[STRANGER] = (400, error(400, "Bad Request: chat not found"))
    port = api.url.rsplit(":", 1)[1]
    settings.OUTREACH_ALERT_URLS = [
        f"json://127.0.0.1:{port}/hook-ok",
        f"json://127.0.0.1:{port}/hook-broken",
    ]
    out = io.StringIO()
    with pytest.raises(CommandError, match="2 of 4 channel"):
        call_command("alerts", "--test", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("alert URL 1 (json, ") and lines[0].endswith(": ok")
    assert lines[1].startswith("alert URL 2 (json, ") and ": FAILED" in lines[1]
    assert lines[2] == f"telegram bot, chat {OPS}: ok"
    assert lines[3] == f"telegram bot, chat {STRANGER}: FAILED: 400 Bad Request: chat not found"
    assert [h["path"] for h in api.hooks] == ["/hook-ok", "/hook-broken"]
    assert "test alert" in api.replies_to(OPS)[0]
    assert not Alert.objects.exists()  # a test is not an alert

    settings.OUTREACH_ALERT_URLS = [f"json://127.0.0.1:{port}/hook-ok"]
    settings.OUTREACH_TELEGRAM_CHAT_IDS = [OPS]
    call_command("alerts", "--test", stdout=out)
    assert "test alert delivered on 2 channel(s)" in out.getvalue()

    settings.OUTREACH_ALERT_URLS = []
    settings.OUTREACH_TELEGRAM_BOT_TOKEN = ""
    with pytest.raises(CommandError, match="no alert channel is configured"):
        call_command("alerts", "--test", stdout=out)


def test_doctor_reports_the_bot_and_the_strangers_it_ignored(
    api: FakeBotApi, bot: Bot, settings: Any
) -> None:
    from outreach.doctor import check_alerts

    settings.OUTREACH_TELEGRAM_BOT_TOKEN = TOKEN
    settings.OUTREACH_TELEGRAM_CHAT_IDS = []
    assert check_alerts()[-1].severity == "warning"
    settings.OUTREACH_TELEGRAM_CHAT_IDS = [OPS]
    api.write(STRANGER, "/status")
    api.write(STRANGER, "/today")
    bot.handle_one()
    finding = check_alerts()[-1]
    assert (finding.area, finding.severity) == ("telegram bot", "ok")
    assert finding.message == "answers 1 chat(s); 2 message(s) from other chats ignored"


@pytest.mark.django_db(transaction=True)
def test_outreach_run_runs_the_bot_beside_the_engine(api: FakeBotApi) -> None:
    boxes = make_pool(domains=1, mailboxes_per_domain=1)
    env = child_env(
        OUTREACH_TELEGRAM_BOT_TOKEN=TOKEN,
        OUTREACH_TELEGRAM_API_URL=api.url,
        OUTREACH_TELEGRAM_CHAT_IDS=str(OPS),
        OUTREACH_TELEGRAM_POLL_SECONDS="1",
    )
    api.write(OPS, f"/pause {boxes[0].address} paused from the phone")
    process = subprocess.Popen(
        [sys.executable, "-m", "outreach", "run", "--bind", "127.0.0.1:0", "--threads", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not api.replies_to(OPS) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert api.replies_to(OPS) == [f"Paused {boxes[0].address}: paused from the phone"], output
    assert "telegram" in output.split("(loops: ", 1)[1].split(")", 1)[0]
    change = StateChange.objects.get(mailbox=boxes[0])
    assert (change.actor, change.to_state) == ("telegram:@alice", Mailbox.State.PAUSED)
    assert process.returncode == 0, output
