"""Soak: a simulated month on PostgreSQL, three worker processes and a scheduler process.

The pool is the real one (10 domains x 3 mailboxes x 40/day, default caps and pacing), the
campaign has two steps (a follow-up three days later, pinned to the thread's mailbox) and a
daily cap of ``CAMPAIGN_CAP``; ``LEADS_PER_DAY`` new leads are enrolled every morning, so the
campaign cap binds every day once follow-ups come due. Mail goes over SMTP to a local aiosmtpd
sink. Every pool day has ``len(HOURS)`` passes; at each pass instant T:

1. the scheduler process plans and claims (``run_pass`` at T, health rules included);
2. at T+1 min hard bounces and spam complaints for some earlier sends arrive through the real
   Postmark webhook endpoint of the app (``live_server``), and the operator suppresses a few
   addresses by hand: between the claim and the send, so the sending side's re-check of
   mailbox state and suppression is what keeps them safe;
3. at T+2 min the three worker processes send what is claimed, competing for the same rows.

Scale, honestly: the issue asks for 1,200 a day; that is 36,000 SMTP sends, more than the
five minutes this test may take on two shared cores. The pool, its caps, its health rules and
the full 30 days are real; the volume is at most ``CAMPAIGN_CAP`` (120) a day, at most 3,600
in the month, which ran in 1 min 50 s to 2 min 40 s on two shared, busy cores.

Afterwards: no cap exceeded on any day (mailbox, domain, campaign, global; by the messages
and by the daily counters), nothing received twice, nothing sent to an address after it was
suppressed, and no complained-about mailbox sent anything after the complaint.
"""

from __future__ import annotations

import collections
import json
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import pytest
import requests
from django.db.models import Count

from outreach.campaigns.models import Message, Suppression
from outreach.campaigns.suppression import suppress
from outreach.events.models import Event
from outreach.lib import clock
from outreach.pool.models import Mailbox, PoolSettings, ProviderAccount
from outreach.providers.smtp.testserver import SmtpTestServer
from outreach.scheduler.models import DailyCounter
from outreach.testing import child_env, enroll, make_campaign, make_leads, make_pool

DAYS = 30
HOURS = range(8, 19, 2)  # a pass every two hours, 08:00-18:00 pool time
LEADS_PER_DAY = 90
CAMPAIGN_CAP = 120
WORKERS = 3
HARD_BOUNCE_RATE = 0.008
COMPLAINT_RATE = 0.0012
MANUAL_SUPPRESSIONS_PER_DAY = 3
START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
WEBHOOK_AUTH = ("outreach", "soak-webhook-secret")
POSTMARK_URL = "/webhooks/postmark/tracking/"


class Child:
    """One driven process (``outreach.tests.soakdriver``): an instant in, a JSON line out."""

    def __init__(self, role: str, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "outreach.tests.soakdriver", role],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )

    def send(self, now: datetime) -> None:
        stdin: IO[str] = self.proc.stdin  # type: ignore[assignment]
        stdin.write(now.isoformat() + "\n")
        stdin.flush()

    def answer(self) -> dict[str, Any]:
        stdout: IO[str] = self.proc.stdout  # type: ignore[assignment]
        line = stdout.readline()
        assert line, f"driver died: {self.log.read_text()[-3000:]}"
        result: dict[str, Any] = json.loads(line)
        return result

    def close(self) -> int:
        if self.proc.stdin:
            self.proc.stdin.close()
        return self.proc.wait(timeout=60)


def _postmark(record: str, message: Message, event_id: int, at: datetime) -> dict[str, Any]:
    """A Postmark bounce or spam complaint webhook as Postmark documents it; the metadata
    carries our message id, as the Postmark sender sets it."""
    hard = record == "HardBounce"
    return {
        "RecordType": "Bounce" if hard else "SpamComplaint",
        "MessageStream": "outbound",
        "ID": event_id,
        "Type": record,
        "TypeCode": 1 if hard else 512,
        "Name": "Hard bounce" if hard else "Spam complaint",
        "Tag": "outreach",
        "MessageID": f"soak-{message.pk}",
        "Metadata": {"outreach_message_id": str(message.pk)},
        "ServerID": 23,
        "Description": "The server was unable to deliver your message." if hard else "",
        "Details": "smtp;550 5.1.1 The email account does not exist." if hard else "",
        "Email": message.to_email,
        "From": message.mailbox.address if message.mailbox else "",
        "BouncedAt": at.isoformat().replace("+00:00", "Z"),
        "DumpAvailable": False,
        "Inactive": True,
        "CanActivate": hard,
        "Subject": message.subject,
        "Content": "",
    }


def _inject_events(
    base_url: str, at: datetime, since: datetime, rng: random.Random, next_id: list[int]
) -> None:
    """Bounces and complaints for messages sent since ``since``, through the webhook."""
    recent = Message.objects.filter(
        state=Message.State.SENT, sent_at__gt=since, sent_at__lte=at
    ).select_related("mailbox")
    for message in recent:
        roll = rng.random()
        if roll < COMPLAINT_RATE:
            record = "SpamComplaint"
        elif roll < COMPLAINT_RATE + HARD_BOUNCE_RATE:
            record = "HardBounce"
        else:
            continue
        next_id[0] += 1
        response = requests.post(
            base_url + POSTMARK_URL,
            json=_postmark(record, message, next_id[0], at),
            auth=WEBHOOK_AUTH,
            timeout=30,
        )
        assert response.status_code == 200, response.text


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_keeps_every_promise_over_a_simulated_month(
    sink: SmtpTestServer, live_server: Any, settings: Any, tmp_path: Path, on_postgres: bool
) -> None:
    if not on_postgres:
        pytest.skip("several processes sharing a month of work: PostgreSQL")
    settings.ANYMAIL = {"WEBHOOK_SECRET": [f"{WEBHOOK_AUTH[0]}:{WEBHOOK_AUTH[1]}"]}
    clock.set_now(START - timedelta(hours=1))
    account = ProviderAccount.objects.create(
        name="sink",
        kind=ProviderAccount.Kind.SMTP,
        settings={"host": "127.0.0.1", "port": sink.port, "security": "none", "timeout": 5},
    )
    make_pool(10, 3, provider=account)
    campaign = make_campaign(steps=2, daily_cap=CAMPAIGN_CAP)
    limits = PoolSettings.load().limits
    rng = random.Random(20260302)
    env = child_env()
    scheduler = Child("scheduler", env, tmp_path / "scheduler.log")
    workers = [Child("worker", env, tmp_path / f"worker{i}.log") for i in range(WORKERS)]
    event_ids = [1000]
    last_injection = START - timedelta(days=1)
    try:
        for day in range(DAYS):
            morning = START + timedelta(days=day, hours=7)
            clock.set_now(morning)
            enroll(campaign, make_leads(LEADS_PER_DAY, domain=f"day{day:02d}.example.org"))
            for hour in HOURS:
                at = START + timedelta(days=day, hours=hour)
                scheduler.send(at)
                scheduler.answer()

                clock.set_now(at + timedelta(minutes=1))
                _inject_events(live_server.url, clock.now(), last_injection, rng, event_ids)
                last_injection = clock.now()
                if hour == HOURS[len(HOURS) // 2]:
                    _suppress_some_pending(rng)

                for worker in workers:
                    worker.send(at + timedelta(minutes=2))
                for worker in workers:
                    worker.answer()
    finally:
        codes = [child.close() for child in (scheduler, *workers)]
    assert codes == [0] * (WORKERS + 1), codes

    sent: list[dict[str, Any]] = [
        dict(row)
        for row in Message.objects.filter(sent_at__isnull=False).values(
            "pk",
            "mailbox_id",
            "mailbox__domain_id",
            "quota_day",
            "to_email",
            "to_domain",
            "sent_at",
            "campaign_id",
        )
    ]
    assert len(sent) > (DAYS - 3) * CAMPAIGN_CAP * 0.8, len(sent)

    # Nothing received twice, and everything received is a message marked sent.
    tags = [int(r.message["X-Outreach-Message"]) for r in sink.received]
    assert len(tags) == len(set(tags)), "a message arrived twice"
    assert set(tags) == {m["pk"] for m in sent}

    # No cap exceeded on any day, by the messages themselves ...
    def most(*keys: str) -> int:
        counts = collections.Counter(tuple(m[k] for k in keys) for m in sent)
        return max(counts.values())

    assert most("quota_day", "mailbox_id") <= limits.mailbox_daily_cap
    assert most("quota_day", "mailbox__domain_id") <= limits.domain_daily_cap
    assert most("quota_day", "campaign_id") <= CAMPAIGN_CAP
    assert most("quota_day") <= limits.global_daily_cap
    # ... and by the daily counters that reserved them.
    caps = {
        "mailbox": limits.mailbox_daily_cap,
        "domain": limits.domain_daily_cap,
        "campaign": CAMPAIGN_CAP,
        "global": limits.global_daily_cap,
    }
    for scope, cap in caps.items():
        top = DailyCounter.objects.filter(scope=scope).order_by("-used").first()
        assert top is not None and top.used <= cap, (scope, top)
    # The campaign cap binds: it was reached on many days (the health rules pause mailboxes
    # and cool domains down as bounces and complaints come in, so the pool shrinks).
    full_days = (
        Message.objects.filter(sent_at__isnull=False).values("quota_day").annotate(n=Count("pk"))
    )
    assert sum(1 for row in full_days if row["n"] == CAMPAIGN_CAP) >= DAYS // 3

    # Nothing sent to an address (or domain) after it was suppressed.
    by_address: collections.defaultdict[str, list[datetime]] = collections.defaultdict(list)
    for m in sent:
        by_address[m["to_email"]].append(m["sent_at"])
    suppressions = list(Suppression.objects.values_list("kind", "value", "created_at"))
    manual = list(
        Suppression.objects.filter(source=Suppression.Source.MANUAL).values_list("value", flat=True)
    )
    assert len(manual) >= DAYS  # on most days, once follow-ups begin (day 4)
    # Their planned or claimed follow-ups were stopped, not sent.
    assert Message.objects.filter(to_email__in=manual, state=Message.State.CANCELLED).exists()
    for kind, value, created_at in suppressions:
        late: list[datetime] = (
            [m["sent_at"] for m in sent if m["to_domain"] == value and m["sent_at"] > created_at]
            if kind == Suppression.Kind.DOMAIN
            else [t for t in by_address.get(value, []) if t > created_at]
        )
        assert not late, (kind, value, created_at, late)

    # Every complaint paused its mailbox, which sent nothing afterwards.
    complaints = list(
        Event.objects.filter(type="complained").values_list("mailbox_id", "occurred_at")
    )
    assert complaints, "no complaint was injected: raise COMPLAINT_RATE"
    for mailbox_id, occurred_at in complaints:
        assert mailbox_id is not None
        assert Mailbox.objects.get(pk=mailbox_id).state == Mailbox.State.PAUSED
        after = [m for m in sent if m["mailbox_id"] == mailbox_id and m["sent_at"] > occurred_at]
        assert not after, (mailbox_id, occurred_at, after)


def _suppress_some_pending(rng: random.Random) -> None:
    """The operator suppresses a few addresses whose follow-up is planned or claimed."""
    pending = list(
        Message.objects.filter(
            state__in=[Message.State.SCHEDULED, Message.State.CLAIMED], step__position=2
        ).values_list("to_email", flat=True)[:200]
    )
    for address in rng.sample(pending, min(MANUAL_SUPPRESSIONS_PER_DAY, len(pending))):
        suppress(address, Suppression.Source.MANUAL, reason="soak: asked to be left alone")
