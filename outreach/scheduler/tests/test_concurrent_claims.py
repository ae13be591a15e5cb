"""Several OS processes claiming from one database at once: no message claimed twice, no cap
exceeded, every message accounted for."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from django.db import connection

from outreach.campaigns.models import Message
from outreach.pool.models import Domain, Mailbox
from outreach.scheduler.models import DailyCounter
from outreach.scheduler.tests.conftest import NOON, schedule
from outreach.testing import child_env, make_campaign, make_pool

PROCESSES = 4
LIMITS = {
    "mailbox_daily_cap": 20,
    "domain_daily_cap": 50,  # lower than 3 x 20: binds
    "global_daily_cap": 180,  # lower than 4 x 50: binds
    "recipient_domain_daily_cap": 25,
    "pacing_gap_seconds": 0,
    "pacing_jitter_seconds": 0,
}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_never_claims_twice_nor_exceeds_a_cap_across_processes() -> None:
    make_pool(4, 3, limits=LIMITS)
    campaign = make_campaign()
    schedule(campaign, 400, domains=10)
    name = str(connection.settings_dict["NAME"])
    if connection.vendor == "sqlite" and (name == ":memory:" or "mode=memory" in name):
        pytest.skip("SQLite in memory cannot be shared between processes; name a test file")
    env = child_env()
    start_at = time.time() + 4  # all start claiming at the same moment
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "outreach.scheduler.tests.claimer", f"w{i}", str(start_at)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(PROCESSES)
    ]
    reported = []
    for child in children:
        out, err = child.communicate(timeout=240)
        assert child.returncode == 0, err
        reported.append(int(out.strip().splitlines()[-1]))

    claimed = Message.objects.filter(state=Message.State.CLAIMED)
    # No message claimed twice: what the processes say they claimed is what the rows show.
    assert sum(reported) == claimed.count() == 180
    # Every message accounted for.
    assert Message.objects.count() == 400
    assert Message.objects.filter(state=Message.State.SCHEDULED).count() == 220
    # No cap exceeded, and every counter agrees with the claims.
    day = NOON.date()
    counters = {(c.scope, c.key): c.used for c in DailyCounter.objects.filter(day=day)}
    assert counters[("global", "*")] == 180
    for domain in Domain.objects.all():
        n = claimed.filter(mailbox__domain=domain).count()
        assert counters[("domain", str(domain.pk))] == n <= 50
    for mailbox in Mailbox.objects.all():
        n = claimed.filter(mailbox=mailbox).count()
        assert counters[("mailbox", str(mailbox.pk))] == n <= 20
    for i in range(10):
        to_domain = f"company{i}.example.net"
        n = claimed.filter(to_domain=to_domain).count()
        assert counters[("recipient_domain", to_domain)] == n <= 25
    assert len(set(claimed.values_list("claimed_by", flat=True))) > 1
