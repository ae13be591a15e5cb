"""Retention: old raw payloads and bodies go, young ones and everything rules need stay."""

from __future__ import annotations

from datetime import datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from outreach import retention
from outreach.campaigns.models import Campaign, Message, Suppression
from outreach.events import normalize as n
from outreach.events.models import Answer, Event, InboundMail
from outreach.events.record import find_message, record
from outreach.lib import clock
from outreach.metrics import rollups
from outreach.metrics.models import DailyRollup
from outreach.pool.models import Mailbox, StateChange
from outreach.scheduler.models import DailyCounter
from outreach.sending.models import SendAttempt
from outreach.testing import enroll, make_campaign, make_leads, make_pool

NOW = datetime.fromisoformat("2026-06-01T12:00:00+00:00")
SES_PAYLOAD = {
    "eventType": "Delivery",
    "mail": {"messageId": "x", "headers": [{"name": "Subject", "value": "Hi"}] * 10},
    "delivery": {"smtpResponse": "250 2.0.0 OK", "processingTimeMillis": 912},
}
OPEN_PAYLOAD = {"visitor": "human", "ip": "192.0.2.1", "user_agent": "Mozilla/5.0"}


def _day(
    age_days: int,
    tag: str,
    mailbox: Mailbox,
    campaign: Campaign,
    leads: list[Any],
) -> dict[str, Any]:
    """One message of each lead sent ``age_days`` ago, with what follows a send: an
    attempt, a delivery, an open by a person, a reply kept in the inbox and our answer."""
    at = NOW - timedelta(days=age_days)
    clock.set_now(at)
    step = campaign.steps.get(position=1)
    made: dict[str, Any] = {"at": at, "messages": [], "mails": []}
    for i, enrollment in enumerate(enroll(campaign, leads)):
        message = Message.objects.create(
            enrollment=enrollment,
            step=step,
            variant=step.variants.get(),
            campaign=campaign,
            to_email=enrollment.lead.email,
            to_domain=enrollment.lead.email_domain,
            mailbox=mailbox,
            provider_account=mailbox.domain.provider,
            state=Message.State.SENT,
            message_id_header=f"<{tag}{i}@send1.example.com>",
            sent_at=at,
        )
        made["messages"].append(message)
        SendAttempt.objects.create(
            message=message,
            mailbox=mailbox,
            provider_account=mailbox.domain.provider,
            outcome=SendAttempt.Outcome.SENT,
            code="250",
            response="250 2.0.0 OK 1717243200 queued as " + tag,
        )
        common = {"message": message, "mailbox": mailbox, "campaign": campaign}
        Event.objects.create(
            source="ses",
            provider_event_id=f"{tag}-delivery-{i}",
            type=Event.Type.DELIVERED,
            recipient=message.to_email,
            occurred_at=at,
            raw=SES_PAYLOAD,
            **common,
        )
        Event.objects.create(
            source="tracking",
            provider_event_id=f"o:{message.pk}:human",
            type=Event.Type.OPENED,
            recipient=message.to_email,
            occurred_at=at,
            raw=OPEN_PAYLOAD,
            **common,
        )
        mail = InboundMail.objects.create(
            mailbox=mailbox,
            key=f"<reply-{tag}{i}@prospect.example.org>",
            kind=InboundMail.Kind.REPLY,
            message_id_header=f"<reply-{tag}{i}@prospect.example.org>",
            in_reply_to=message.message_id_header or "",
            references=message.message_id_header or "",
            from_address=message.to_email,
            subject="Re: Quick question",
            headers=[["Subject", "Re: Quick question"]],
            text_body="Sounds good, call me.\n> quoted",
            html_body="<p>Sounds good, call me.</p>",
            visible_text="Sounds good, call me.",
            quoted_text="> quoted",
            message=message,
            occurred_at=at,
        )
        made["mails"].append(mail)
        ours = Message.objects.create(
            kind=Message.Kind.REPLY,
            to_email=message.to_email,
            to_domain=message.to_domain,
            mailbox=mailbox,
            state=Message.State.SENT,
            message_id_header=f"<answer-{tag}{i}@send1.example.com>",
            sent_at=at,
        )
        Answer.objects.create(mail=mail, message=ours, text="Tuesday at 10?", actor="ann")
    clock.set_now(None)
    return made


@pytest.fixture
def history(settings: Any) -> dict[str, dict[str, Any]]:
    """Three days of traffic: 400 days old, 200 days old and 10 days old."""
    settings.OUTREACH_RETAIN_RAW_DAYS = 90
    settings.OUTREACH_RETAIN_BODY_DAYS = 365
    mailbox = make_pool(1, 1)[0]
    campaign = make_campaign()
    Suppression.objects.create(value="gone@prospect.example.org", source="hard_bounce")
    return {
        "ancient": _day(400, "a", mailbox, campaign, make_leads(3, domain="a.example.org")),
        "old": _day(200, "o", mailbox, campaign, make_leads(3, domain="o.example.org")),
        "young": _day(10, "y", mailbox, campaign, make_leads(3, domain="y.example.org")),
    }


def _raws(made: dict[str, Any]) -> list[dict[str, Any]]:
    return list(
        Event.objects.filter(message__in=made["messages"])
        .order_by("pk")
        .values_list("raw", flat=True)
    )


@pytest.mark.django_db
def test_it_blanks_old_payloads_and_bodies_and_keeps_young_ones(
    history: dict[str, dict[str, Any]],
) -> None:
    report = retention.prune(NOW)

    # Older than 90 days: raw payloads and attempts' answers go; a person's open keeps
    # what the rollups count it by.
    for age in ("ancient", "old"):
        assert _raws(history[age]) == [{}, {"visitor": "human"}] * 3
        assert set(
            SendAttempt.objects.filter(message__in=history[age]["messages"]).values_list(
                "response", flat=True
            )
        ) == {""}
    assert _raws(history["young"]) == [SES_PAYLOAD, OPEN_PAYLOAD] * 3
    assert "" not in SendAttempt.objects.filter(
        message__in=history["young"]["messages"]
    ).values_list("response", flat=True)
    # Bodies: only those older than 365 days.
    ancient = InboundMail.objects.filter(pk__in=[m.pk for m in history["ancient"]["mails"]])
    assert {(m.text_body, m.html_body, m.visible_text, m.quoted_text) for m in ancient} == {
        ("", "", "", "")
    }
    assert all(m.headers == [] for m in ancient)
    assert set(Answer.objects.filter(mail__in=ancient).values_list("text", flat=True)) == {""}
    for age in ("old", "young"):
        kept = InboundMail.objects.filter(pk__in=[m.pk for m in history[age]["mails"]])
        assert {m.visible_text for m in kept} == {"Sounds good, call me."}
        assert set(Answer.objects.filter(mail__in=kept).values_list("text", flat=True)) == {
            "Tuesday at 10?"
        }
    assert report.counts == {
        "events.raw": 12,
        "send_attempts.response": 6,
        "webhook_deliveries.payload": 0,
        "inbound_mails.bodies": 3,
        "answers.text": 3,
        "daily_counters.recipient_domain": 0,
        "dead_letters": 0,
    }


@pytest.mark.django_db
def test_it_keeps_what_rules_threading_dedup_and_rollups_read(
    history: dict[str, dict[str, Any]],
) -> None:
    tz = rollups.pool_timezone()
    days = [rollups.day_of(made["at"], tz) for made in history.values()]
    for day in days:
        rollups.rebuild(day)
    before = sorted(DailyRollup.objects.values_list("day", "sent", "delivered", "opened_human"))
    messages = sorted(Message.objects.values_list("pk", "message_id_header", "state"))

    retention.prune(NOW)

    # Rollups rebuilt from the pruned rows come out the same (people's opens included).
    for day in days:
        rollups.rebuild(day)
    after = sorted(DailyRollup.objects.values_list("day", "sent", "delivered", "opened_human"))
    assert after == before
    assert all(row[3] == 3 for row in after)
    # Every message with its Message-ID: a late reply to the oldest one still threads.
    assert sorted(Message.objects.values_list("pk", "message_id_header", "state")) == messages
    oldest = history["ancient"]["messages"][0]
    late = n.Incoming(
        source="imap",
        type=n.REPLIED,
        recipient=oldest.to_email,
        occurred_at=NOW,
        referenced_message_ids=[oldest.message_id_header],
    )
    assert find_message(late) == oldest
    mail = InboundMail.objects.get(pk=history["ancient"]["mails"][0].pk)
    assert (mail.message_id_header, mail.in_reply_to, mail.references, mail.subject) == (
        "<reply-a0@prospect.example.org>",
        oldest.message_id_header,
        oldest.message_id_header,
        "Re: Quick question",
    )
    # A provider retrying an old event is still recognised by its id.
    again = n.Incoming(
        source="ses",
        type=n.DELIVERED,
        recipient=oldest.to_email,
        occurred_at=history["ancient"]["at"],
        provider_event_id="a-delivery-0",
        raw=SES_PAYLOAD,
    )
    assert record(again) is None
    assert Suppression.objects.filter(value="gone@prospect.example.org").exists()


@pytest.mark.django_db
def test_it_prunes_in_bounded_batches_and_is_idempotent(
    history: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "BATCH_ROWS", 4)
    events = next(rule for rule in retention.RULES if rule.name == "events.raw")
    limit = events.limit(NOW)
    assert limit is not None

    # One batch looks at 4 rows: the ancient day's 6 events need two.
    assert retention.prune_batch(events, limit, NOW) == (4, True)
    assert Event.objects.filter(raw={}).count() == 2
    first = retention.prune(NOW, max_batches=1)
    assert first.counts["events.raw"] == 4 and "events.raw" in first.unfinished
    assert StateChange.objects.filter(actor=retention.ACTOR).count() == 1

    rest = retention.prune(NOW)
    assert rest.counts["events.raw"] == 4 and not rest.unfinished
    assert retention.prune(NOW).total == 0
    assert retention.prune(NOW, dry_run=True).total == 0
    # One summary entry per prune that removed something, none for the empty one.
    entries = StateChange.objects.filter(actor=retention.ACTOR).order_by("pk")
    assert entries.count() == 2
    assert entries.last().figures["events.raw"] == 4  # type: ignore[union-attr]
    assert entries.last().to_state == "pruned"  # type: ignore[union-attr]


@pytest.mark.django_db
def test_dry_run_counts_what_the_prune_then_removes(
    history: dict[str, dict[str, Any]],
) -> None:
    raws = sorted(Event.objects.values_list("pk", "raw"))
    dry = retention.prune(NOW, dry_run=True)
    assert sorted(Event.objects.values_list("pk", "raw")) == raws
    assert not StateChange.objects.filter(actor=retention.ACTOR).exists()
    assert retention.prune(NOW).counts == dry.counts


@pytest.mark.django_db
def test_zero_days_keeps_for_ever(history: dict[str, dict[str, Any]], settings: Any) -> None:
    settings.OUTREACH_RETAIN_RAW_DAYS = 0
    settings.OUTREACH_RETAIN_BODY_DAYS = 0
    report = retention.prune(NOW)
    assert report.total == 0
    assert not Event.objects.filter(raw={}).exists()
    assert not InboundMail.objects.filter(text_body="").exists()


@pytest.mark.django_db
def test_outreach_prune_prints_each_table(history: dict[str, dict[str, Any]]) -> None:
    clock.set_now(NOW)
    out = StringIO()
    call_command("prune", "--dry-run", stdout=out)
    assert "events.raw                   would remove 12" in out.getvalue()
    assert "inbound_mails.bodies         would remove 3" in out.getvalue()
    out = StringIO()
    call_command("prune", stdout=out)
    assert "events.raw                   removed 12" in out.getvalue()
    assert "removed 24 in all" in out.getvalue()


@pytest.mark.django_db
def test_the_periodic_pass_prunes_once_a_day(
    history: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention._Due, "next_at", float("-inf"))
    clock.set_now(NOW)
    assert retention.prune_if_due() is not None
    assert Event.objects.filter(raw={}).count() == 6
    assert retention.prune_if_due() is None  # not due again for a day


@pytest.mark.django_db
def test_it_deletes_past_recipient_domain_counters_only() -> None:
    today = NOW.date()
    for age in (0, 7, 8, 300):
        day = today - timedelta(days=age)
        DailyCounter.objects.create(scope="recipient_domain", key="acme.example", day=day, used=1)
        DailyCounter.objects.create(scope="mailbox", key="1", day=day, used=1)
    report = retention.prune(NOW)
    assert report.counts["daily_counters.recipient_domain"] == 2
    kept = DailyCounter.objects.filter(scope="recipient_domain").values_list("day", flat=True)
    assert sorted(kept) == [today - timedelta(days=7), today]
    assert DailyCounter.objects.filter(scope="mailbox").count() == 4


@pytest.mark.django_db
def test_the_dashboard_says_what_was_not_kept(history: dict[str, dict[str, Any]]) -> None:
    from django.contrib.auth.models import User
    from django.test import Client
    from django.urls import reverse

    retention.prune(NOW)
    client = Client()
    client.force_login(User.objects.create_user("ops", is_staff=True))
    clock.set_now(NOW)
    mail = history["ancient"]["mails"][0]
    page = client.get(reverse("dashboard:inbox_thread", args=[mail.pk])).content.decode()
    assert "(text not kept: older than 365 days, OUTREACH_RETAIN_BODY_DAYS)" in page
    assert "Re: Quick question" in page
    audit = client.get(reverse("dashboard:audit")).content.decode()
    assert "database" in audit and "retention: removed" in audit


@pytest.mark.django_db
def test_a_providers_open_without_a_visitor_class_loses_its_payload() -> None:
    clock.set_now(NOW - timedelta(days=100))
    for i, raw in enumerate(({"event": "opened", "ip": "192.0.2.1"}, {"visitor": "machine"})):
        Event.objects.create(
            source="mailgun",
            provider_event_id=f"open-{i}",
            type=Event.Type.OPENED,
            recipient="lead@prospect.example.org",
            occurred_at=clock.now(),
            raw=raw,
        )
    clock.set_now(None)
    assert retention.prune(NOW).counts["events.raw"] == 2
    assert list(Event.objects.values_list("raw", flat=True)) == [{}, {}]
