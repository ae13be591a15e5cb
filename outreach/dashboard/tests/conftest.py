"""Fixtures of the dashboard tests: users, a pinned clock and a pool with a week of activity."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import Client

from outreach.alerts.models import Alert
from outreach.campaigns.models import Campaign, Message, Variant
from outreach.events.models import Event
from outreach.lib import clock
from outreach.metrics import rollups
from outreach.pool.models import Mailbox, PoolSettings
from outreach.scheduler.models import DailyCounter
from outreach.testing import enroll, make_campaign, make_leads, make_pool, make_provider

NOW = datetime(2026, 3, 18, 10, 30, tzinfo=UTC)  # a Wednesday, mid-month
PASSWORD = "correct horse battery staple"


@pytest.fixture
def now() -> datetime:
    clock.set_now(NOW)
    return NOW


@pytest.fixture
def staff(db: None) -> User:
    return User.objects.create_user("ann", password=PASSWORD, is_staff=True)


@pytest.fixture
def viewer(db: None) -> User:
    return User.objects.create_user("bob", password=PASSWORD, is_staff=False)


@pytest.fixture
def staff_client(staff: User) -> Client:
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def viewer_client(viewer: User) -> Client:
    client = Client()
    client.force_login(viewer)
    return client


@dataclass
class Activity:
    mailboxes: list[Mailbox]
    campaign: Campaign
    messages: list[Message]


def seed_activity(
    n_domains: int = 2, per_domain: int = 3, *, events_per_mailbox: int = 4
) -> Activity:
    """A pool with a week of counters and events, a two-step A/B campaign, an alert and a
    message in ``unknown``: every page has something to show."""
    pool_day = clock.today("UTC")
    provider = make_provider(price_per_1000=Decimal("0.10"))
    boxes = make_pool(n_domains, per_domain, provider=provider)
    boxes[-1].state = Mailbox.State.WARMING
    boxes[-1].warmup_started_on = pool_day - timedelta(days=3)
    boxes[-1].save()
    for domain in {b.domain for b in boxes}:
        domain.yearly_price = Decimal("12.00")
        domain.save()
    campaign = make_campaign("launch", steps=2)
    step1 = campaign.steps.get(position=1)
    Variant.objects.create(
        step=step1,
        label="B",
        subject="Another idea, {{ first_name }}",
        body_html="<p>Hello {{ first_name }},</p><p>Another idea.</p>",
    )
    leads = make_leads(len(boxes) * 2)
    enrollments = enroll(campaign, leads)
    counters = []
    for day_offset in range(7):
        day = pool_day - timedelta(days=day_offset)
        counters.append(DailyCounter(scope="global", key="*", day=day, used=10 * len(boxes)))
        for b in boxes:
            counters.append(DailyCounter(scope="mailbox", key=str(b.pk), day=day, used=10))
        for d in {b.domain for b in boxes}:
            counters.append(
                DailyCounter(scope="domain", key=str(d.pk), day=day, used=10 * per_domain)
            )
        counters.append(DailyCounter(scope="campaign", key=str(campaign.pk), day=day, used=5))
    DailyCounter.objects.bulk_create(counters)
    variants = list(Variant.objects.filter(step=step1).order_by("label"))
    messages = []
    for i, (b, e) in enumerate(zip(boxes * 2, enrollments, strict=False)):
        messages.append(
            Message(
                enrollment=e,
                step=step1,
                variant=variants[i % 2],
                campaign=campaign,
                to_email=e.lead.email,
                to_domain=e.lead.email_domain,
                mailbox=b,
                provider_account=provider,
                state=Message.State.SENT if i % 5 else Message.State.SCHEDULED,
                sent_at=clock.now() - timedelta(hours=i),
                message_id_header=f"<m{i}@{b.domain.name}>",
            )
        )
    messages = Message.objects.bulk_create(messages)
    events = []
    for i, m in enumerate(messages):
        if m.state != Message.State.SENT:
            continue
        for k in range(events_per_mailbox):
            kind = ["delivered", "delivered", "replied", "bounced"][k % 4]
            events.append(
                Event(
                    source="ses",
                    provider_event_id=f"ev-{i}-{k}",
                    type=kind,
                    bounce_type="hard" if kind == "bounced" else "",
                    recipient=m.to_email,
                    message=m,
                    mailbox=m.mailbox,
                    campaign=campaign,
                    occurred_at=clock.now() - timedelta(hours=i, minutes=k),
                )
            )
    Event.objects.bulk_create(events)
    # The pages read event counts from the daily rollups: count these as the metrics app's
    # repair path does (bulk_create sends no signal).
    for day_offset in range(7):
        rollups.rebuild(pool_day - timedelta(days=day_offset))
    unknown = Message.objects.create(
        kind=Message.Kind.CAMPAIGN,
        to_email="lost@prospect.example.org",
        to_domain="prospect.example.org",
        mailbox=boxes[0],
        provider_account=provider,
        campaign=campaign,
        state=Message.State.UNKNOWN,
        doubt="IMAP lookup failed: ConnectionRefusedError",
    )
    Alert.objects.create(
        key="bounce:1", kind="bounce_warning", text="rep1@send1.example.com bounce rate 3.5%"
    )
    PoolSettings.load()
    return Activity(mailboxes=boxes, campaign=campaign, messages=[*messages, unknown])


@pytest.fixture
def activity(db: None, now: datetime) -> Activity:
    return seed_activity()
