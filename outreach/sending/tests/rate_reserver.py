"""A reserving process for the multi-process rate test: `python -m
outreach.sending.tests.rate_reserver ACCOUNT_ID START_AT` reserves send slots of one
rate-limited account in a loop, as takes do, and prints them as JSON."""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime


def main(account_id: int, start_at: float) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "outreach.settings")
    import django

    django.setup()
    from django.db import transaction

    from outreach.pool.models import ProviderAccount
    from outreach.sending.take import SendPolicy, reserve_rate

    rate = ProviderAccount.objects.get(pk=account_id).max_send_rate
    assert rate
    policy = SendPolicy(rate_horizon_seconds=0.5)
    time.sleep(max(0.0, start_at - time.time()))
    windows = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        with transaction.atomic():
            allowed, _ = reserve_rate(account_id, rate, 3, datetime.now(UTC), policy)
            ends = ProviderAccount.objects.get(pk=account_id).rate_slot_at
        if allowed:
            assert ends is not None
            windows.append([ends.timestamp() - allowed / rate, allowed])
        time.sleep(0.005)  # a take does other work between reservations
    print(json.dumps(windows))
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), float(sys.argv[2])))
