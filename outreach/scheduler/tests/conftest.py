"""Builders shared by the control plane's tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from outreach.campaigns.models import Campaign, Message
from outreach.lib import clock
from outreach.scheduler.models import DailyCounter

# A Wednesday, noon UTC: inside every test campaign's window.
NOON = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _clock_at_noon() -> None:
    """Builders stamp rows with the clock: pin it where the tests' passes run."""
    clock.set_now(NOON)


def schedule(
    campaign: Campaign | None,
    count: int,
    *,
    now: datetime = NOON,
    domains: int = 50,
    start: int = 0,
    prefix: str = "company",
    **fields: Any,
) -> list[Message]:
    """``count`` scheduled campaign messages due at ``now``, to ``domains`` company domains."""
    messages = []
    for i in range(start, start + count):
        to_domain = f"{prefix}{i % domains}.example.net"
        messages.append(
            Message(
                kind=Message.Kind.CAMPAIGN,
                campaign=campaign,
                to_email=f"person{i}@{to_domain}",
                to_domain=to_domain,
                state=Message.State.SCHEDULED,
                not_before=now,
                created_at=now,
                updated_at=now,
                **fields,
            )
        )
    return Message.objects.bulk_create(messages, batch_size=500)


def deliver_claimed(now: datetime) -> int:
    """What the sending worker would do: every claimed message is handed over and sent."""
    return Message.objects.filter(state=Message.State.CLAIMED).update(
        state=Message.State.SENT, sent_at=now
    )


def used(scope: str, key: str, day: Any) -> int:
    row = DailyCounter.objects.filter(scope=scope, key=key, day=day).first()
    return row.used if row else 0
