"""Builders for tests and benchmarks: a pool, a campaign, leads, in a few lines.

Plain functions over the ORM (no factory library): each returns saved objects and takes
keyword overrides for the fields a test cares about.
"""

from __future__ import annotations

import base64
import os
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from outreach.campaigns.models import Campaign, Enrollment, Lead, Step, Variant
from outreach.lib import clock
from outreach.pool.models import Domain, Mailbox, PoolSettings, ProviderAccount


def make_provider(name: str = "sandbox", kind: str = "sandbox", **fields: Any) -> ProviderAccount:
    provider, _ = ProviderAccount.objects.get_or_create(
        name=name, defaults={"kind": kind, **fields}
    )
    return provider


def make_pool(
    domains: int = 2,
    mailboxes_per_domain: int = 3,
    *,
    state: str = Mailbox.State.ACTIVE,
    provider: ProviderAccount | None = None,
    limits: dict[str, Any] | None = None,
    timezone: str = "UTC",
    warmup_started_on: date | None = None,
) -> list[Mailbox]:
    """A pool of ``domains`` x ``mailboxes_per_domain`` mailboxes, all in ``state``."""
    pool = PoolSettings.load()
    pool.timezone = timezone
    pool.limits_json = limits or {}
    pool.save()
    provider = provider or make_provider()
    boxes = []
    for d in range(domains):
        domain = Domain.objects.create(name=f"send{d + 1}.example.com", provider=provider)
        for m in range(mailboxes_per_domain):
            boxes.append(
                Mailbox.objects.create(
                    address=f"rep{m + 1}@{domain.name}",
                    domain=domain,
                    display_name=f"Rep {m + 1}",
                    state=state,
                    warmup_started_on=warmup_started_on
                    or (clock.today(timezone) if state == Mailbox.State.WARMING else None),
                )
            )
    return boxes


def make_campaign(
    slug: str = "launch",
    *,
    steps: int = 1,
    state: str = Campaign.State.ACTIVE,
    **fields: Any,
) -> Campaign:
    """A campaign with ``steps`` steps (delay 3 days between them), one variant each."""
    fields.setdefault("window_days", [1, 2, 3, 4, 5, 6, 7])
    fields.setdefault("window_start", "00:00")
    fields.setdefault("window_end", "23:59")
    fields.setdefault("postal_address", "Example Ltd, 1 Main Street, Springfield")
    campaign = Campaign.objects.create(slug=slug, name=slug.title(), state=state, **fields)
    for position in range(1, steps + 1):
        step = Step.objects.create(
            campaign=campaign, position=position, delay_days=0 if position == 1 else 3
        )
        Variant.objects.create(
            step=step,
            label="A",
            subject="Quick question, {{ first_name }}" if position == 1 else "",
            body_html=f"<p>Hi {{{{ first_name }}}},</p><p>Step {position}.</p>",
        )
    return campaign


def make_leads(count: int, *, domain: str = "prospect.example.org", **fields: Any) -> list[Lead]:
    now = clock.now()
    leads = [
        Lead(
            email=f"lead{i}@{domain}",
            email_domain=domain,
            first_name=f"Lead{i}",
            company="Prospect Inc",
            created_at=now,
            updated_at=now,
            **fields,
        )
        for i in range(count)
    ]
    return Lead.objects.bulk_create(leads)


def enroll(campaign: Campaign, leads: list[Lead]) -> list[Enrollment]:
    now = clock.now()
    return Enrollment.objects.bulk_create(
        [
            Enrollment(campaign=campaign, lead=lead, next_due_at=now, created_at=now)
            for lead in leads
        ]
    )


def child_database_url() -> str:
    """The database this test runs on, as another process must open it (the test's data is
    visible there once committed: ``django_db(transaction=True)``). An in-memory SQLite
    database cannot be shared; callers skip on it."""
    from django.db import connection

    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(str(db['NAME'])).resolve()}"
    return (
        f"postgresql://{quote(db['USER'] or '')}:{quote(str(db['PASSWORD'] or ''))}"
        f"@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )


def child_env(**overrides: str) -> dict[str, str]:
    """The environment of a process a test starts (a worker, a scheduler, a claimer): this
    test's database, quiet logs, ``overrides`` on top."""
    env = {k: v for k, v in os.environ.items() if k != "OUTREACH_TEST_DATABASE_NAME"}
    env.update(DATABASE_URL=child_database_url(), OUTREACH_LOG_LEVEL="ERROR")
    env.update(overrides)
    return env


def dkim_key_pair(*, pkcs8: bool = True) -> tuple[str, bytes]:
    """A fresh 2,048-bit RSA key for DKIM: its private key as PEM (PKCS#8, or PKCS#1 with
    ``pkcs8`` False) and the DNS TXT record that publishes it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    formats = serialization.PrivateFormat
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        formats.PKCS8 if pkcs8 else formats.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
