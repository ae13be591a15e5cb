"""`outreach doctor` tells what is wrong with a deployment; critical findings exit non-zero."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from outreach.models import Heartbeat
from outreach.pool.models import ProviderAccount
from outreach.testing import make_pool


def doctor(*args: str) -> tuple[int, dict[str, object]]:
    out = StringIO()
    try:
        call_command("doctor", "--json", *args, stdout=out)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, json.loads(out.getvalue())


def areas(report: dict[str, object], severity: str) -> set[str]:
    findings = report["findings"]
    assert isinstance(findings, list)
    return {f["area"] for f in findings if f["severity"] == severity}


@pytest.mark.django_db
def test_a_migrated_sandbox_pool_has_warnings_but_nothing_critical(settings: object) -> None:
    settings.ANYMAIL = {"WEBHOOK_SECRET": ["hooks:a-long-random-secret"]}  # type: ignore[attr-defined]
    make_pool(1, 1)
    code, report = doctor()
    assert code == 0 and report["critical"] == 0
    assert "database" not in areas(report, "critical")
    assert "provider sandbox" in areas(report, "warning")


@pytest.mark.django_db
def test_it_flags_a_provider_whose_secret_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OUTREACH_SECRET_SMTP_FOR_DOCTOR", raising=False)
    ProviderAccount.objects.create(
        name="workspace",
        kind="smtp",
        settings={"host": "127.0.0.1", "port": 2525, "security": "none"},
        secrets={"password": "env:OUTREACH_SECRET_SMTP_FOR_DOCTOR"},
    )
    code, report = doctor()
    assert code == 1
    assert "provider workspace" in areas(report, "critical")
    assert "webhooks" in areas(report, "critical")


@pytest.mark.django_db
def test_it_flags_an_engine_loop_that_stopped_beating() -> None:
    Heartbeat.objects.create(
        name="worker",
        host="box-2",
        pid=7,
        running=True,
        beat_at=datetime.now(UTC) - timedelta(hours=1),
    )
    code, report = doctor()
    assert code == 1
    assert "loop worker" in areas(report, "critical")
