"""The commands: `outreach tick --now`, `outreach status [--json]`, the scheduler loop."""

from __future__ import annotations

import json
import threading
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from outreach.campaigns.models import Message
from outreach.pool.models import Mailbox
from outreach.scheduler.engine import make_loop, run_pass
from outreach.scheduler.tests.conftest import NOON
from outreach.testing import enroll, make_campaign, make_leads, make_pool

pytestmark = pytest.mark.django_db


def test_it_runs_one_pass_as_if_it_were_the_given_time() -> None:
    make_pool(1, 2)
    enroll(make_campaign(), make_leads(5))
    out = StringIO()
    call_command("tick", "--now", "2026-03-04T12:00:00+00:00", "--no-send", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert report["now"] == "2026-03-04T12:00:00+00:00"
    assert report["planned"] == 5
    assert report["claimed"] == 2  # one per mailbox: then the pacing gap
    claimed = Message.objects.filter(state=Message.State.CLAIMED)
    assert claimed.count() == 2
    out = StringIO()
    call_command("tick", "--now", "2026-03-04T12:05:00", "--no-send", stdout=out)
    assert "claimed=2" in out.getvalue()


def test_it_refuses_a_malformed_now() -> None:
    with pytest.raises(CommandError, match="ISO 8601"):
        call_command("tick", "--now", "yesterday")


def test_it_hands_claimed_messages_to_the_sending_engine_when_there_is_one() -> None:
    make_pool(1, 1)
    enroll(make_campaign(), make_leads(1))
    report = run_pass(NOON, health=False)
    assert report.claimed == 1
    message = Message.objects.get()
    if report.sent is None:  # no sending engine installed
        assert message.state == Message.State.CLAIMED
    else:
        assert message.state != Message.State.SCHEDULED


def test_it_lists_the_pool_with_caps_and_sends_today() -> None:
    boxes = make_pool(1, 2)
    Mailbox.objects.filter(pk=boxes[1].pk).update(state=Mailbox.State.WARMING)
    schedule_and_claim()
    out = StringIO()
    call_command("status", "--json", stdout=out)
    rows = json.loads(out.getvalue())
    assert rows == [
        {
            "address": "rep1@send1.example.com",
            "domain": "send1.example.com",
            "state": "active",
            "cap_today": 40,
            "sent_today": 1,
            "held": "",
        },
        {
            "address": "rep2@send1.example.com",
            "domain": "send1.example.com",
            "state": "warming",
            "cap_today": 5,
            "sent_today": 0,
            "held": "",
        },
    ]
    out = StringIO()
    call_command("status", stdout=out)
    assert "rep1@send1.example.com" in out.getvalue() and "1/45 sent today" in out.getvalue()


def schedule_and_claim() -> None:
    enroll(make_campaign(), make_leads(1))
    run_pass(NOON, send=False, health=False)


def test_it_runs_the_scheduler_loop_until_stopped() -> None:
    make_pool(1, 1)
    enroll(make_campaign(), make_leads(1))
    stop = threading.Event()
    loop = make_loop(stop)
    assert loop.name == "scheduler"
    assert loop.handle_one() is True  # planned and claimed
    assert Message.objects.get().state == Message.State.CLAIMED
    assert loop.handle_one() is False  # nothing more until pacing frees the mailbox
