"""Builders shared by the sending and provider tests: claimed messages, SMTP accounts."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from outreach.campaigns.models import Campaign, Enrollment, Message
from outreach.lib import clock
from outreach.pool.models import Mailbox, PoolSettings, ProviderAccount
from outreach.testing import enroll, make_campaign, make_leads, make_pool

SMTP_USER = "relay"
SMTP_PASSWORD = "s3cret-relay"
SMTP_PASSWORD_ENV = "OUTREACH_SECRET_TEST_SMTP_PASSWORD"


def smtp_settings(port: int, ca_file: Path | None, **extra: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": port,
        "security": "starttls" if ca_file else "none",
        "username": SMTP_USER,
        "timeout": 2,
        **({"ca_file": str(ca_file)} if ca_file else {}),
        **extra,
    }


def smtp_account(name: str, port: int, ca_file: Path | None, **extra: Any) -> ProviderAccount:
    return ProviderAccount.objects.create(
        name=name,
        kind=ProviderAccount.Kind.SMTP,
        settings=smtp_settings(port, ca_file, **extra),
        secrets={"password": f"env:{SMTP_PASSWORD_ENV}"},
    )


def claim(message: Message, mailbox: Mailbox, *, lease_seconds: int = 600) -> None:
    """What the scheduler's claim leaves behind (its counters aside)."""
    now = clock.now()
    Message.objects.filter(pk=message.pk).update(
        state=Message.State.CLAIMED,
        mailbox=mailbox,
        provider_account=mailbox.provider_account,
        claimed_by="scheduler-test",
        lease_expires_at=now + timedelta(seconds=lease_seconds),
        quota_day=clock.today(PoolSettings.load().timezone),
        updated_at=now,
    )


def claimed_campaign_messages(
    count: int,
    *,
    provider: ProviderAccount,
    steps: int = 2,
    domains: int = 1,
    mailboxes_per_domain: int = 1,
    lead_domain: str = "prospect.example.org",
    campaign: Campaign | None = None,
    lease_seconds: int = 600,
) -> list[Message]:
    """``count`` step-1 messages of an active campaign, claimed round-robin over a new pool."""
    boxes = list(Mailbox.objects.all()) or make_pool(
        domains, mailboxes_per_domain, provider=provider
    )
    campaign = (
        campaign or Campaign.objects.filter(slug="launch").first() or make_campaign(steps=steps)
    )
    leads = make_leads(count, domain=lead_domain)
    enrollments = enroll(campaign, leads)
    step = campaign.steps.get(position=1)
    variant = step.variants.get()
    now = clock.now()
    day = clock.today(PoolSettings.load().timezone)
    messages = Message.objects.bulk_create(
        [
            Message(
                enrollment=enrollment,
                step=step,
                variant=variant,
                campaign=campaign,
                to_email=lead.email,
                to_domain=lead.email_domain,
                # What the scheduler's claim leaves behind (its counters aside).
                state=Message.State.CLAIMED,
                mailbox=boxes[i % len(boxes)],
                provider_account=boxes[i % len(boxes)].provider_account,
                claimed_by="scheduler-test",
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                quota_day=day,
                not_before=now,
                created_at=now,
                updated_at=now,
            )
            for i, (enrollment, lead) in enumerate(zip(enrollments, leads, strict=True))
        ]
    )
    Enrollment.objects.filter(pk__in=[e.pk for e in enrollments]).update(next_due_at=None)
    return list(Message.objects.filter(pk__in=[m.pk for m in messages]).order_by("pk"))


def states(messages: list[Message]) -> list[str]:
    return list(
        Message.objects.filter(pk__in=[m.pk for m in messages])
        .order_by("pk")
        .values_list("state", flat=True)
    )
