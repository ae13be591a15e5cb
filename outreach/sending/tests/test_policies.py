"""Named policies of the engine: backoff with jitter, a provider's own send rate."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from outreach.pool.models import ProviderAccount
from outreach.sending import engine
from outreach.sending.engine import RateLimiter, SendPolicy, backoff


def test_it_backs_off_exponentially_with_jitter_up_to_a_ceiling() -> None:
    policy = SendPolicy(backoff_base_seconds=60, backoff_max_seconds=3600)
    rng = random.Random(1)
    for attempt, ceiling in [(1, 60), (2, 120), (3, 240), (5, 960), (7, 3600), (12, 3600)]:
        waits = {backoff(attempt, policy, rng) for _ in range(50)}
        assert all(timedelta(seconds=ceiling / 2) <= w <= timedelta(seconds=ceiling) for w in waits)
        assert len(waits) > 1  # jittered, not synchronized


def test_it_spaces_sends_by_the_provider_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(engine.time, "monotonic", lambda: 100.0)
    monkeypatch.setattr(engine.time, "sleep", slept.append)
    limiter = RateLimiter()
    ses = ProviderAccount(pk=1, name="ses", kind="ses", max_send_rate=4.0)
    smtp = ProviderAccount(pk=2, name="smtp", kind="smtp", max_send_rate=None)

    for _ in range(3):
        limiter.wait(ses)
        limiter.wait(smtp)

    assert slept == [0.25, 0.5]
