"""A claiming process for the multi-process test: `python -m outreach.scheduler.tests.claimer
WORKER START_AT` claims in small passes until nothing more fits, then prints its count."""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime


def main(worker: str, start_at: float) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "outreach.settings")
    import django

    django.setup()
    from outreach.lib import clock
    from outreach.scheduler.routing_pass import claim_due

    now = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
    clock.set_now(now)
    time.sleep(max(0.0, start_at - time.time()))
    claimed = 0
    idle = 0
    for _ in range(500):  # bounded
        got = claim_due(now, worker=worker, limit=7).claimed
        claimed += got
        idle = 0 if got else idle + 1
        if idle >= 3:
            break
    print(claimed)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], float(sys.argv[2])))
