"""The deployment guide's commands, rehearsed by deploy/rehearse.sh, still work."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from django.db import connection

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.django_db
def test_the_deploy_guide_rehearsal_passes() -> None:
    env = {**os.environ}
    for name in ("DATABASE_URL", "OUTREACH_TEST_DATABASE_NAME", "OUTREACH_VAR_DIR"):
        env.pop(name, None)
    if connection.vendor == "postgresql":
        db = connection.settings_dict
        env["REHEARSE_PG"] = f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}"
    result = subprocess.run(
        ["bash", str(REPO / "deploy" / "rehearse.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "== rehearsal passed" in result.stdout
    assert "0 critical finding(s)" in result.stdout
