"""Named policies of the engine: backoff with jitter."""

from __future__ import annotations

import random
from datetime import timedelta

from outreach.sending.take import SendPolicy, backoff


def test_it_backs_off_exponentially_with_jitter_up_to_a_ceiling() -> None:
    policy = SendPolicy(backoff_base_seconds=60, backoff_max_seconds=3600)
    rng = random.Random(1)
    for attempt, ceiling in [(1, 60), (2, 120), (3, 240), (5, 960), (7, 3600), (12, 3600)]:
        waits = {backoff(attempt, policy, rng) for _ in range(50)}
        assert all(timedelta(seconds=ceiling / 2) <= w <= timedelta(seconds=ceiling) for w in waits)
        assert len(waits) > 1  # jittered, not synchronized
