"""A tracked message scores no worse in SpamAssassin than the same message untracked (within
0.5 points): Debian's spamassassin with its local rules only, when it is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from outreach.events.tests.tracking_helpers import raw, send_messages

pytestmark = pytest.mark.django_db

SPAMASSASSIN = shutil.which("spamassassin")
# What a tracked message may cost at most, in SpamAssassin points.
TOLERANCE = 0.5


def score(message: bytes, home: Path) -> tuple[float, str]:
    """The message's score and the rules that hit, with local rules only (``-L``: no DNS
    blocklists or network checks, which would make the result depend on the day)."""
    result = subprocess.run(
        [str(SPAMASSASSIN), "-L", "-t"],
        input=message,
        capture_output=True,
        timeout=120,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    out = result.stdout.decode("utf-8", "replace")
    found = re.search(r"^X-Spam-Status: \w+, score=(-?[\d.]+)[^\n]*(?:\n\s+[^\n]*)*", out, re.M)
    assert found, (result.returncode, out[-2000:], result.stderr[-2000:])
    return float(found.group(1)), found.group(0)


@pytest.mark.skipif(
    SPAMASSASSIN is None,
    reason="spamassassin is not installed (Debian: apt-get install spamassassin)",
)
def test_a_tracked_message_scores_no_worse_than_the_same_message_untracked(
    tmp_path: Path, settings: object
) -> None:
    settings.OUTREACH_BASE_URL = "https://outreach.example.com"  # type: ignore[attr-defined]
    outbox = tmp_path / "outbox"
    (plain,) = send_messages(outbox)
    (tracked,) = send_messages(outbox, opens=True, clicks=True, lead_domain="lead.example.org")
    assert b"/o/" in raw(outbox, tracked) and b"/o/" not in raw(outbox, plain)
    plain_score, plain_rules = score(raw(outbox, plain), tmp_path)
    tracked_score, tracked_rules = score(raw(outbox, tracked), tmp_path)
    assert tracked_score <= plain_score + TOLERANCE, (plain_rules, tracked_rules)
