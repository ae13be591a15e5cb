"""Project-wide pytest fixtures. The same suite runs on SQLite and on PostgreSQL (DATABASE_URL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from outreach.lib import clock
from outreach.providers.smtp.testserver import SmtpTestServer


@pytest.fixture(autouse=True)
def _release_clock() -> Iterator[None]:
    """No test leaks a pinned clock into the next one."""
    yield
    clock.set_now(None)


@pytest.fixture(autouse=True)
def _outbox_in_tmp(settings: object, tmp_path: object) -> None:
    settings.OUTREACH_OUTBOX_DIR = tmp_path / "outbox"  # type: ignore[attr-defined,operator]


@pytest.fixture(autouse=True)
def _dns_checks_by_hand(settings: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests route through SMTP and SES domains that no periodic DNS check ever sees (child
    processes included): checks are by hand, so an unchecked domain sends. The DNS tests of
    "checked before the first send" turn the periodic checks back on."""
    settings.OUTREACH_DNS_CHECK_INTERVAL_MINUTES = 0  # type: ignore[attr-defined]
    monkeypatch.setenv("OUTREACH_DNS_CHECK_INTERVAL_MINUTES", "0")


@pytest.fixture
def sink() -> Iterator[SmtpTestServer]:
    """A plain SMTP server that accepts everything and keeps what it received."""
    server = SmtpTestServer().start()
    yield server
    server.stop()


@pytest.fixture
def on_postgres() -> bool:
    from django.db import connection

    return connection.vendor == "postgresql"
