"""Fixtures of the OAuth2 tests: the faked token endpoints and an SMTP server that checks
bearer tokens with them (STARTTLS, AUTH XOAUTH2)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from outreach.lib import secrets
from outreach.providers import oauth2
from outreach.providers.smtp.testserver import SmtpTestServer
from outreach.providers.tests.token_server import TokenServer
from outreach.sending.tests.conftest import ca_file, tls

__all__ = ["ca_file", "tls"]


@pytest.fixture
def secrets_key(monkeypatch: pytest.MonkeyPatch) -> str:
    key = secrets.generate_key()
    monkeypatch.setenv("OUTREACH_SECRETS_KEY", key)
    return key


@pytest.fixture
def token_server(monkeypatch: pytest.MonkeyPatch, secrets_key: str) -> Iterator[TokenServer]:
    server = TokenServer().start()
    monkeypatch.setattr(oauth2, "msal_http_client", server.msal_session())
    yield server
    server.stop()


@pytest.fixture
def oauth_smtp(
    tls: tuple[ssl.SSLContext, Path], token_server: TokenServer
) -> Iterator[SmtpTestServer]:
    server = SmtpTestServer(tls_context=tls[0], bearer=token_server.valid).start()
    yield server
    server.stop()
