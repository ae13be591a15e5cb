"""Fixtures of the sending tests: a real SMTP server with STARTTLS and AUTH."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from outreach.providers.smtp.testserver import SmtpTestServer, tls_files
from outreach.sending.tests.helpers import SMTP_PASSWORD, SMTP_PASSWORD_ENV, SMTP_USER


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    return tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def smtp_password(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(SMTP_PASSWORD_ENV, SMTP_PASSWORD)
    return SMTP_PASSWORD


@pytest.fixture
def smtp_server(tls: tuple[ssl.SSLContext, Path], smtp_password: str) -> Iterator[SmtpTestServer]:
    server = SmtpTestServer(tls_context=tls[0], users={SMTP_USER: smtp_password}).start()
    yield server
    server.stop()


@pytest.fixture
def ca_file(tls: tuple[ssl.SSLContext, Path]) -> Path:
    return tls[1]
