"""Database growth at the mission's volume (1,200 sends a day), with and without retention.

    .venv/bin/python bench/db_growth.py [--days 30] [--json] [--only sqlite|postgresql]
                                        [--postgres URL]

For each database (an SQLite file in a scratch directory; the PostgreSQL database
``bench_growth`` on ``--postgres``, dropped afterwards) in a child process:

1. **Warm-up.** Migrate, create the example's shape of pool (10 domains x 3 mailboxes, one
   provider account) and a 3-step campaign with 2 variants per step; fill 6 days as below
   (so steps 2 and 3 flow from the first measured day), prune all their bulk, and measure:
   the baseline every figure below is taken against.
2. **Fill.** ``--days`` simulated days, one after the other, with the real models and bulk
   inserts. A day has 400 new leads (each at its own company domain) and their enrollments;
   1,200 sent messages (step 1 to today's leads, steps 2 and 3 to those of 3 and 6 days
   before, as the campaign's delays); 1,224 send attempts (2% transient retries, with the
   provider's answer); the providers' events with raw payloads shaped as SES sends them
   (1.9-2.1 KB: delivered 97%, hard bounce 2%, soft bounce 1%, complaint 0.05%), unsubscribes
   (0.3%), replies (3%) and auto-replies (4%) read over IMAP, each of those kept in the inbox
   with its text, sanitized HTML and headers, and the operator's answer to a third of the
   replies; the day's cap counters (global, domain, mailbox, campaign and one per recipient
   domain, as claiming creates them); the day's rollups by ``rollups.rebuild``. Opens and
   clicks are off, as by default (tracking adds events without payloads of size).
3. **Retention.** Measure; then, for each retention window in turn, shortest first (the
   recipient-domain counters' 7 days, ``OUTREACH_RETAIN_RAW_DAYS``,
   ``OUTREACH_RETAIN_BODY_DAYS``; defaults 30 and 365), run ``outreach.retention.prune`` as
   if the clock stood just after it, with the longer windows switched off, and measure. A
   measure is the data in use, compacted: SQLite's pages in use after ``VACUUM``;
   PostgreSQL's tables (with indexes and TOAST) in a fresh ``pg_dump`` copy, since on a
   shared server a transaction open elsewhere keeps ``VACUUM FULL`` from removing old row
   versions. Every figure is taken against the measure after the warm-up.

The figures are linear extrapolations of the ``--days`` filled (the rows of one day do not
depend on the days before once steps 2 and 3 are flowing): bytes per day of what is kept for
ever and of each window's bulk, and from them a year without retention (365 days of
everything) and with it (365 days of what is kept for ever, and of each window's bulk
``min(window, 365)`` days), their ratio (``retained_vs_unretained_ratio``), and the
growth per further year once the windows are full. A live database is larger than the
vacuumed figure by its free pages (SQLite reuses the pages a prune frees but does not give
them back without VACUUM; PostgreSQL's autovacuum leaves some bloat).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PG_DB = "bench_growth"
SENDS_PER_DAY = 1200
LEADS_PER_DAY = SENDS_PER_DAY // 3
START = datetime(2026, 1, 5, tzinfo=UTC)
WARMUP_DAYS = 6
GB = 1e9
RATES = {
    "retry": 0.02,
    "hard_bounce": 0.02,
    "soft_bounce": 0.01,
    "complaint": 0.0005,
    "unsubscribe": 0.003,
    "reply": 0.03,
    "auto_reply": 0.04,
    "answered": 1 / 3,  # of replies
}
WORDS = (
    "thanks for reaching out we are looking at options this quarter could you send more "
    "details about pricing and how onboarding works for a team of our size next week works "
    "better for a call let me loop in my colleague who owns this budget"
).split()


# -- payloads as providers send them ----------------------------------------------------------


def ses_mail(rng: random.Random, to: str, sender: str, message_id: str, pk: int) -> dict[str, Any]:
    """The ``mail`` block SES puts in every event: the original headers, not truncated."""
    ses_id = f"0100018c{rng.getrandbits(64):016x}-{uuid.UUID(int=rng.getrandbits(128))}-000000"
    headers = [
        ("Received", f"from mail.{sender.split('@')[1]} by email-smtp.amazonaws.com"),
        ("From", f"Rep <{sender}>"),
        ("To", to),
        ("Subject", "Quick question about your outbound"),
        ("Message-ID", message_id),
        ("Date", "Mon, 05 Jan 2026 09:14:22 +0000"),
        ("MIME-Version", "1.0"),
        ("Content-Type", 'multipart/alternative; boundary="===============8187331532=="'),
        ("List-Unsubscribe", f"<https://{sender.split('@')[1]}/u/{rng.getrandbits(160):040x}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("X-Outreach-Message", str(pk)),
        ("Feedback-ID", f"1.us-east-1.{rng.getrandbits(96):024x}=:AmazonSES"),
    ]
    return {
        "timestamp": "2026-01-05T09:14:22.512Z",
        "source": sender,
        "sourceArn": f"arn:aws:ses:us-east-1:123456789012:identity/{sender.split('@')[1]}",
        "sendingAccountId": "123456789012",
        "messageId": ses_id,
        "destination": [to],
        "headersTruncated": False,
        "headers": [{"name": k, "value": v} for k, v in headers],
        "commonHeaders": {
            "from": [f"Rep <{sender}>"],
            "to": [to],
            "messageId": message_id,
            "subject": "Quick question about your outbound",
        },
        "tags": {"ses:configuration-set": ["outreach"], "ses:source-ip": ["198.51.100.7"]},
    }


def ses_event(kind: str, mail: dict[str, Any], to: str, rng: random.Random) -> dict[str, Any]:
    if kind == "delivered":
        detail: dict[str, Any] = {
            "delivery": {
                "timestamp": "2026-01-05T09:14:24.001Z",
                "processingTimeMillis": rng.randint(300, 3000),
                "recipients": [to],
                "smtpResponse": f"250 2.0.0 OK  1736068464 {rng.getrandbits(40):x} - gsmtp",
                "reportingMTA": "a8-70.smtp-out.amazonses.com",
                "remoteMtaIp": "142.250.27.26",
            }
        }
        return {"eventType": "Delivery", "mail": mail, **detail}
    if kind in ("hard_bounce", "soft_bounce"):
        hard = kind == "hard_bounce"
        detail = {
            "bounce": {
                "bounceType": "Permanent" if hard else "Transient",
                "bounceSubType": "General" if hard else "MailboxFull",
                "bouncedRecipients": [
                    {
                        "emailAddress": to,
                        "action": "failed",
                        "status": "5.1.1" if hard else "4.2.2",
                        "diagnosticCode": "smtp; 550 5.1.1 The email account that you tried "
                        "to reach does not exist. Please try double-checking the recipient's "
                        "email address for typos or unnecessary spaces."
                        if hard
                        else "smtp; 452 4.2.2 The recipient's inbox is out of storage space.",
                    }
                ],
                "timestamp": "2026-01-05T09:14:25.000Z",
                "feedbackId": f"0100018c-{uuid.UUID(int=rng.getrandbits(128))}-000000",
                "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com",
            }
        }
        return {"eventType": "Bounce", "mail": mail, **detail}
    detail = {
        "complaint": {
            "userAgent": "Yahoo!-Mail-Feedback/2.0",
            "complainedRecipients": [{"emailAddress": to}],
            "complaintFeedbackType": "abuse",
            "arrivalDate": "2026-01-05T10:01:00.000Z",
            "timestamp": "2026-01-05T10:01:05.000Z",
            "feedbackId": f"0100018c-{uuid.UUID(int=rng.getrandbits(128))}-000000",
        }
    }
    return {"eventType": "Complaint", "mail": mail, **detail}


def prose(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def reply_bodies(rng: random.Random, ours: str, sender: str) -> dict[str, Any]:
    """A reply as a mail client writes it: a few lines, a signature, our mail quoted below;
    the HTML part says the same with markup; the headers as kept (size-capped)."""
    visible = "\n\n".join(prose(rng, rng.randint(12, 40)) for _ in range(rng.randint(1, 3)))
    signature = "Best,\nJordan Miles\nHead of Growth, Acme Corp\n+1 415 555 0100"
    quoted = "\n".join(
        "> " + line
        for line in (
            f"On Mon, 5 Jan 2026 at 09:14, Rep <{sender}> wrote:\n"
            + prose(rng, 80)
            + "\n"
            + prose(rng, 40)
        ).splitlines()
    )
    text = f"{visible}\n\n{signature}\n\n{quoted}"
    html = (
        '<div dir="ltr">'
        + "".join(f"<p>{p}</p>" for p in visible.split("\n\n"))
        + f'<div class="gmail_signature">{signature.replace(chr(10), "<br>")}</div>'
        + f'<blockquote class="gmail_quote" style="margin:0 0 0 .8ex;border-left:1px solid '
        f'#ccc;padding-left:1ex">{quoted.replace(chr(10), "<br>")}</blockquote></div>'
    )
    headers = [
        ["Received", f"by 2002:a05:6a10:{rng.getrandbits(16):x} with SMTP id {i}; Mon, 5 Jan"]
        for i in range(6)
    ] + [
        ["DKIM-Signature", "v=1; a=rsa-sha256; c=relaxed/relaxed; d=acme.example; b=" + "x" * 344],
        ["ARC-Authentication-Results", "i=1; mx.google.com; dkim=pass; spf=pass; dmarc=pass"],
        ["From", "Jordan Miles <jordan@acme.example>"],
        ["To", sender],
        ["Subject", "Re: Quick question about your outbound"],
        ["In-Reply-To", ours],
        ["References", ours],
        ["Content-Type", 'multipart/alternative; boundary="000000000000a1b2c3"'],
    ]
    return {
        "text_body": text,
        "html_body": html,
        "visible_text": visible,
        "signature": signature,
        "quoted_text": quoted,
        "headers": headers,
        "size": len(text) + len(html) + 2000,
    }


# -- the child: fill, prune, measure -----------------------------------------------------------


def measure() -> int:
    """Bytes of live data, compacted (see the module's docstring)."""
    from django.db import connection

    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM")
            cursor.execute("PRAGMA page_count")
            pages = cursor.fetchone()[0]
            cursor.execute("PRAGMA page_size")
            return int(pages * cursor.fetchone()[0])
    return sum(_pg_copy_sizes().values())


def _pg_copy_sizes() -> dict[str, int]:
    """Bytes per table of a fresh copy of the database (pg_dump into a new database).

    Not VACUUM FULL: on a server shared with other work, a transaction open in another
    database can hold the horizon back, and VACUUM FULL then keeps every row version a
    prune left behind (seen here: "2000 dead row versions cannot be removed yet"). A fresh
    copy holds the live rows only, packed as a vacuumed table would be.
    """
    from django.db import connection

    params = connection.settings_dict
    base = ["-h", str(params["HOST"]), "-p", str(params["PORT"] or 5432)]
    base += ["-U", str(params["USER"])]
    copy = f"{params['NAME']}_copy"
    admin = ["psql", *base, "-d", "postgres", "-q", "-v", "ON_ERROR_STOP=1", "-c"]
    subprocess.run([*admin, f"DROP DATABASE IF EXISTS {copy}"], check=True)
    subprocess.run([*admin, f"CREATE DATABASE {copy}"], check=True)
    try:
        dump = subprocess.Popen(
            ["pg_dump", *base, "--no-owner", str(params["NAME"])], stdout=subprocess.PIPE
        )
        subprocess.run(
            ["psql", *base, "-d", copy, "-q", "-v", "ON_ERROR_STOP=1"],
            stdin=dump.stdout,
            stdout=subprocess.DEVNULL,
            check=True,
        )
        if dump.wait() != 0:
            raise RuntimeError("pg_dump failed")
        out = subprocess.run(
            [
                "psql",
                *base,
                "-d",
                copy,
                "-At",
                "-F",
                "\t",
                "-c",
                "ANALYZE; SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind = 'r'",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        subprocess.run([*admin, f"DROP DATABASE IF EXISTS {copy}"], check=True)
    sizes = (line.split("\t") for line in out.splitlines() if "\t" in line)
    return dict(sorted(((k, int(v)) for k, v in sizes), key=lambda kv: -kv[1]))


def table_sizes() -> dict[str, int]:
    """Bytes per table (with its indexes and TOAST), the largest first."""
    from django.db import connection

    if connection.vendor != "sqlite":
        return _pg_copy_sizes()
    with connection.cursor() as cursor:
        try:
            cursor.execute(
                "SELECT coalesce(m.tbl_name, s.name), sum(s.pgsize) FROM dbstat s "
                "LEFT JOIN sqlite_master m ON m.name = s.name GROUP BY 1"
            )
        except Exception:  # SQLite built without dbstat
            return {}
        rows = cursor.fetchall()
    return dict(sorted(((str(k), int(v)) for k, v in rows), key=lambda kv: -kv[1]))


class Filler:
    """Writes the simulated days (see the module's docstring) with bulk inserts."""

    def __init__(self, seed: int) -> None:
        from outreach.campaigns.models import Step, Variant
        from outreach.testing import make_campaign, make_pool

        self.rng = random.Random(seed)
        self.boxes = make_pool(domains=10, mailboxes_per_domain=3)
        self.campaign = make_campaign("mission", steps=3)
        for step in Step.objects.filter(campaign=self.campaign):
            Variant.objects.create(
                step=step, label="B", subject="Another angle", body_html="<p>B</p>"
            )
        self.steps = list(Step.objects.filter(campaign=self.campaign).order_by("position"))
        self.variants = {
            s.pk: list(Variant.objects.filter(step=s).order_by("label")) for s in self.steps
        }
        # Enrollments by the day they started: steps 2 and 3 follow 3 and 6 days later.
        self.cohorts: dict[int, list[Any]] = {}
        self.lead_seq = 0
        self.message_seq = 0
        self.counts: dict[str, int] = {}

    def _count(self, name: str, n: int) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def new_leads(self, day: int, at: datetime, n: int) -> list[Any]:
        from outreach.campaigns.models import Enrollment, Lead

        leads = []
        for _ in range(n):
            self.lead_seq += 1
            company = f"company{self.lead_seq}.example"
            leads.append(
                Lead(
                    email=f"jordan.miles{self.lead_seq}@{company}",
                    email_domain=company,
                    first_name="Jordan",
                    last_name="Miles",
                    company=f"Company {self.lead_seq} Inc",
                    title="Head of Growth",
                    timezone="America/New_York",
                    custom={"industry": "SaaS", "employees": "51-200", "source": "import.csv"},
                    created_at=at,
                    updated_at=at,
                )
            )
        leads = Lead.objects.bulk_create(leads, batch_size=500)
        enrollments = Enrollment.objects.bulk_create(
            [
                Enrollment(campaign=self.campaign, lead=lead, created_at=at, last_step=1)
                for lead in leads
            ],
            batch_size=500,
        )
        for e, lead in zip(enrollments, leads, strict=True):
            e.lead = lead
        self.cohorts.setdefault(day, []).extend(enrollments)
        self._count("leads", len(leads))
        return enrollments

    def day(self, day: int) -> None:
        """Write one simulated day (pool day ``START + day``)."""
        from outreach.campaigns.models import Message
        from outreach.events.models import Answer, Event, InboundMail
        from outreach.scheduler.models import DailyCounter
        from outreach.sending.models import SendAttempt

        rng = self.rng
        base = START + timedelta(days=day)
        plan: list[tuple[Any, Any]] = []  # (enrollment, step)
        for position, delay in ((2, 3), (3, 6)):
            plan += [(e, self.steps[position - 1]) for e in self.cohorts.get(day - delay, [])]
        fresh = self.new_leads(day, base, LEADS_PER_DAY)
        plan = [(e, self.steps[0]) for e in fresh] + plan
        messages = []
        for i, (enrollment, step) in enumerate(plan):
            self.message_seq += 1
            box = self.boxes[i % len(self.boxes)]
            sent_at = base + timedelta(hours=9, seconds=i * 25)
            first = f"<{uuid.UUID(int=rng.getrandbits(128))}@{box.domain.name}>"
            messages.append(
                Message(
                    enrollment=enrollment,
                    step=step,
                    variant=self.variants[step.pk][i % 2],
                    campaign=self.campaign,
                    to_email=enrollment.lead.email,
                    to_domain=enrollment.lead.email_domain,
                    mailbox=box,
                    provider_account=box.domain.provider,
                    state=Message.State.SENT,
                    not_before=sent_at,
                    quota_day=base.date(),
                    attempts=1,
                    claimed_by=f"worker@host-1:{4000 + i % 4}",
                    subject="Quick question about your outbound"
                    if step.position == 1
                    else "Re: Quick question about your outbound",
                    message_id_header=first,
                    in_reply_to=first if step.position > 1 else "",
                    references=" ".join([first] * (step.position - 1)),
                    provider_message_id=f"0100018c{rng.getrandbits(64):016x}-000000",
                    sent_at=sent_at,
                    created_at=base,
                    updated_at=sent_at,
                )
            )
        messages = Message.objects.bulk_create(messages, batch_size=500)
        self._count("messages", len(messages))
        attempts, events, mails = [], [], []
        for m in messages:
            box = m.mailbox
            for retry in range(2 if rng.random() < RATES["retry"] else 1):
                transient = retry == 0 and m.attempts > 1
                attempts.append(
                    SendAttempt(
                        message=m,
                        mailbox=box,
                        provider_account=box.domain.provider,
                        outcome=SendAttempt.Outcome.TRANSIENT
                        if transient
                        else SendAttempt.Outcome.SENT,
                        code="200",
                        response=json.dumps(
                            {
                                "MessageId": m.provider_message_id,
                                "ResponseMetadata": {
                                    "RequestId": str(uuid.UUID(int=rng.getrandbits(128))),
                                    "HTTPStatusCode": 200,
                                    "RetryAttempts": 0,
                                },
                            }
                        ),
                        at=m.sent_at,
                    )
                )
            draw = rng.random()
            kind = (
                "hard_bounce"
                if draw < RATES["hard_bounce"]
                else "soft_bounce"
                if draw < RATES["hard_bounce"] + RATES["soft_bounce"]
                else "delivered"
            )
            mail = ses_mail(rng, m.to_email, box.address, m.message_id_header, m.pk)
            kinds = [kind] + (["complaint"] if rng.random() < RATES["complaint"] else [])
            for k in kinds:
                events.append(
                    Event(
                        source="ses",
                        provider_event_id=str(uuid.UUID(int=rng.getrandbits(128))),
                        type={
                            "delivered": Event.Type.DELIVERED,
                            "hard_bounce": Event.Type.BOUNCED,
                            "soft_bounce": Event.Type.BOUNCED,
                            "complaint": Event.Type.COMPLAINED,
                        }[k],
                        bounce_type={"hard_bounce": "hard", "soft_bounce": "soft"}.get(k, ""),
                        diagnostic="smtp; 550 5.1.1 user unknown" if k == "hard_bounce" else "",
                        recipient=m.to_email,
                        message=m,
                        mailbox=box,
                        campaign=self.campaign,
                        provider_message_id=m.provider_message_id,
                        occurred_at=m.sent_at + timedelta(seconds=3),
                        received_at=m.sent_at + timedelta(seconds=4),
                        raw=ses_event(k, mail, m.to_email, rng),
                    )
                )
            if kind != "delivered":
                continue
            draw = rng.random()
            if draw < RATES["unsubscribe"]:
                events.append(self._imap_event(m, Event.Type.UNSUBSCRIBED, "Unsubscribe"))
            elif draw < RATES["unsubscribe"] + RATES["reply"] + RATES["auto_reply"]:
                auto = draw >= RATES["unsubscribe"] + RATES["reply"]
                typ = Event.Type.AUTO_REPLIED if auto else Event.Type.REPLIED
                events.append(self._imap_event(m, typ, "Re: " + m.subject))
                mails.append(self._inbound(m, auto))
        SendAttempt.objects.bulk_create(attempts, batch_size=500)
        Event.objects.bulk_create(events, batch_size=500)
        mails = InboundMail.objects.bulk_create(mails, batch_size=200)
        self._count("attempts", len(attempts))
        self._count("events", len(events))
        self._count("inbound_mails", len(mails))
        answers = []
        for mail in mails:
            if (
                mail.label != InboundMail.Label.OUT_OF_OFFICE
                and rng.random() < 3 * RATES["answered"] * RATES["reply"] / (RATES["reply"])
            ):
                answers.append(mail)
        replies = Message.objects.bulk_create(
            [
                Message(
                    kind=Message.Kind.REPLY,
                    to_email=mail.from_address,
                    to_domain=mail.from_address.split("@")[1],
                    mailbox_id=mail.mailbox_id,
                    state=Message.State.SENT,
                    subject="Re: Quick question about your outbound",
                    message_id_header=f"<{uuid.UUID(int=rng.getrandbits(128))}@answer.example>",
                    in_reply_to=mail.message_id_header,
                    references=mail.references + " " + mail.message_id_header,
                    sent_at=mail.occurred_at + timedelta(hours=2),
                    created_at=mail.occurred_at + timedelta(hours=2),
                )
                for mail in answers
            ]
        )
        Answer.objects.bulk_create(
            [
                Answer(
                    mail=mail,
                    message=reply,
                    text=prose(rng, rng.randint(30, 90)),
                    actor="user:ann",
                    at=reply.sent_at,
                )
                for mail, reply in zip(answers, replies, strict=True)
            ]
        )
        self._count("answers", len(answers))
        keys = [("global", "*")]
        keys += [("domain", str(b.domain_id)) for b in self.boxes[::3]]
        keys += [("mailbox", str(b.pk)) for b in self.boxes]
        keys += [("campaign", str(self.campaign.pk))]
        keys += [("recipient_domain", m.to_domain) for m in messages]
        counters = DailyCounter.objects.bulk_create(
            [DailyCounter(scope=s, key=k, day=base.date(), used=1) for s, k in keys],
            batch_size=500,
            ignore_conflicts=True,
        )
        self._count("daily_counters", len(counters))

    def _imap_event(self, m: Any, typ: str, subject: str) -> Any:
        from outreach.events.models import Event

        mail_id = f"<{uuid.UUID(int=self.rng.getrandbits(128))}@mail.{m.to_domain}>"
        return Event(
            source="imap",
            provider_event_id=f"imap:{mail_id}",
            type=typ,
            recipient=m.to_email,
            message=m,
            mailbox=m.mailbox,
            campaign=self.campaign,
            occurred_at=m.sent_at + timedelta(hours=3),
            received_at=m.sent_at + timedelta(hours=3, minutes=1),
            raw={
                "mailbox": m.mailbox.address,
                "from": f"Jordan Miles <{m.to_email}>",
                "subject": subject,
                "message_id": mail_id,
                "date": "Mon, 05 Jan 2026 12:14:22 -0500",
            },
        )

    def _inbound(self, m: Any, auto: bool) -> Any:
        from outreach.events.models import InboundMail

        key = f"<{uuid.UUID(int=self.rng.getrandbits(128))}@mail.{m.to_domain}>"
        bodies = reply_bodies(self.rng, m.message_id_header, m.mailbox.address)
        if auto:
            bodies["visible_text"] = "I am out of the office until Monday with limited access."
        return InboundMail(
            mailbox=m.mailbox,
            key=key,
            kind=InboundMail.Kind.REPLY,
            folder="INBOX",
            message_id_header=key,
            in_reply_to=m.message_id_header,
            references=(m.references + " " + m.message_id_header).strip(),
            from_address=m.to_email,
            from_name="Jordan Miles",
            to=m.mailbox.address,
            subject="Re: " + m.subject.removeprefix("Re: "),
            message=m,
            enrollment_id=m.enrollment_id,
            campaign=self.campaign,
            label=InboundMail.Label.OUT_OF_OFFICE if auto else InboundMail.Label.INTERESTED,
            label_reason="rules: out of office" if auto else "rules: asks for a call",
            occurred_at=m.sent_at + timedelta(hours=3),
            received_at=m.sent_at + timedelta(hours=3, minutes=1),
            **bodies,
        )


def child(days: int, seed: int) -> dict[str, Any]:
    """Runs in a process configured for one database; returns the figures."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "outreach.settings")
    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import override_settings

    from outreach import retention
    from outreach.lib import clock
    from outreach.metrics import rollups
    from outreach.metrics.models import DailyRollup

    call_command("migrate", verbosity=0, interactive=False)
    clock.set_now(START)
    filler = Filler(seed)

    def fill(first: int, last: int) -> None:
        for day in range(first, last):
            clock.set_now(START + timedelta(days=day, hours=23))
            filler.day(day)
            rollups.rebuild((START + timedelta(days=day)).date())

    # Warm-up: the campaign's delays (steps 2 and 3 after 3 and 6 days) fill up, so every
    # measured day sends 1,200 with 400 new leads; its bulk is pruned before the baseline.
    fill(0, WARMUP_DAYS)
    retention.prune(START + timedelta(days=WARMUP_DAYS + 3 * 365))
    filler.counts = {}
    baseline = measure()
    started = time.monotonic()
    fill(WARMUP_DAYS, WARMUP_DAYS + days)
    fill_seconds = time.monotonic() - started
    filler.counts["rollups"] = DailyRollup.objects.filter(
        day__gte=(START + timedelta(days=WARMUP_DAYS)).date()
    ).count()
    full = measure() - baseline
    tables_full = table_sizes()
    end = START + timedelta(days=WARMUP_DAYS + days)

    # Each retention window in turn, shortest first, the longer ones switched off meanwhile
    # (0: kept for ever): pruning as if the clock stood just after a window removes that
    # window's bulk from every filled day, and nothing else.
    windows = {
        "counters": retention.COUNTER_DAYS,
        "raw": int(settings.OUTREACH_RETAIN_RAW_DAYS),
        "bodies": int(settings.OUTREACH_RETAIN_BODY_DAYS),
    }
    kept = {name: w for name, w in windows.items() if w}
    order = sorted(kept, key=lambda name: kept[name])
    started = time.monotonic()
    size, per_day, pruned = full, {}, {}
    for i, name in enumerate(order):
        later = order[i + 1 :]
        off = {
            "OUTREACH_RETAIN_RAW_DAYS": 0 if "raw" in later else windows["raw"],
            "OUTREACH_RETAIN_BODY_DAYS": 0 if "bodies" in later else windows["bodies"],
        }
        with override_settings(**off):
            report = retention.prune(end + timedelta(days=kept[name] + 1))
        after = measure() - baseline
        per_day[name] = (size - after) / days
        pruned[name] = {k: v for k, v in report.counts.items() if v}
        size = after
    prune_seconds = time.monotonic() - started
    tables_kept = table_sizes()
    clock.set_now(None)

    forever = size / days
    unretained_year = 365 * full / days
    retained_year = 365 * forever + sum(min(kept[n], 365) * b for n, b in per_day.items())
    return {
        "database": connection.vendor,
        "days_filled": days,
        "sends_per_day": SENDS_PER_DAY,
        "rows": filler.counts,
        "retention_days": windows,
        "fill_seconds": round(fill_seconds, 1),
        "prune_seconds": round(prune_seconds, 1),
        "pruned_after_window": pruned,
        "bytes_filled": full,
        "bytes_after_prune": size,
        "bytes_per_day": round(full / days),
        "bytes_per_day_kept_for_ever": round(forever),
        **{f"bytes_per_day_{name}": round(b) for name, b in per_day.items()},
        "gb_per_year_without_retention": round(unretained_year / GB, 3),
        "gb_first_year_with_retention": round(retained_year / GB, 3),
        "gb_per_further_year_with_retention": round(365 * forever / GB, 3),
        "retained_vs_unretained_ratio": round(retained_year / unretained_year, 3),
        "goal_gb_per_year": 1.0,
        "largest_tables_filled": dict(list(tables_full.items())[:8]),
        "largest_tables_pruned": dict(list(tables_kept.items())[:8]),
    }


# -- the parent --------------------------------------------------------------------------------


def run_child(database: str, args: argparse.Namespace, scratch: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "OUTREACH_VAR_DIR": scratch,
        "SECRET_KEY": "bench-secret-key",
        "OUTREACH_LOG_LEVEL": "ERROR",
        "DATABASE_URL": f"sqlite:///{scratch}/growth.sqlite3",
    }
    if database == "postgresql":
        import psycopg

        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {PG_DB}")
        env["DATABASE_URL"] = args.postgres.rsplit("/", 1)[0] + f"/{PG_DB}"
    try:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                "--days",
                str(args.days),
                "--seed",
                str(args.seed),
            ],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
            timeout=args.max_seconds,
        )
    except subprocess.CalledProcessError as exc:
        sys.stderr.write(exc.stderr)
        raise
    finally:
        if database == "postgresql":
            import psycopg

            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def table(results: list[dict[str, Any]]) -> str:
    rows = [
        ("days filled (linear extrapolation)", "days_filled", "{}"),
        ("bytes per day, all", "bytes_per_day", "{:,}"),
        ("  kept for ever", "bytes_per_day_kept_for_ever", "{:,}"),
        ("  recipient-domain counters (7 days)", "bytes_per_day_counters", "{:,}"),
        ("  raw payloads (raw days)", "bytes_per_day_raw", "{:,}"),
        ("  bodies (body days)", "bytes_per_day_bodies", "{:,}"),
        ("GB per year without retention", "gb_per_year_without_retention", "{:.3f}"),
        ("GB first year with retention", "gb_first_year_with_retention", "{:.3f}"),
        ("GB per further year with retention", "gb_per_further_year_with_retention", "{:.3f}"),
        ("retained / unretained", "retained_vs_unretained_ratio", "{:.3f}"),
        ("fill seconds", "fill_seconds", "{}"),
        ("prune seconds", "prune_seconds", "{}"),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{'':<{width}}  " + "  ".join(f"{r['database']:>12}" for r in results)]
    for label, key, fmt in rows:
        lines.append(
            f"{label:<{width}}  " + "  ".join(f"{fmt.format(r[key]):>12}" for r in results)
        )
    r0 = results[0]
    lines.append(
        f"retention days: {r0['retention_days']}; "
        f"{r0['sends_per_day']} sends a day; rows: "
        + ", ".join(f"{k} {v:,}" for k, v in r0["rows"].items())
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--max-seconds", type=float, default=1800)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.days, args.seed)))
        return 0
    databases = [args.only] if args.only else ["sqlite", "postgresql"]
    results = []
    with tempfile.TemporaryDirectory(prefix="outreach-bench-growth-") as scratch:
        for database in databases:
            results.append(run_child(database, args, scratch))
    if args.json:
        print(json.dumps(results if len(results) > 1 else results[0], indent=2))
    else:
        print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
