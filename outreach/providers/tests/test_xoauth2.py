"""SASL XOAUTH2 over SMTP for Google Workspace and Microsoft 365 mailboxes, against a real
SMTP server that checks bearer tokens with the faked token endpoints."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from outreach.lib import clock, secrets
from outreach.pool.models import AccessToken, Mailbox
from outreach.providers import base, oauth2
from outreach.providers.base import Envelope, Outcome, SendError
from outreach.providers.smtp.testserver import SmtpTestServer
from outreach.providers.tests.token_server import TokenServer, service_account_key

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
MAILBOX = "anna@acme-mail.com"
RAW = b"From: anna@acme-mail.com\r\nTo: lead@prospect.example.org\r\nSubject: hi\r\n\r\nHello\r\n"


@pytest.fixture(autouse=True)
def _clock() -> None:
    clock.set_now(T0)


def _settings(server: SmtpTestServer, ca_file: Path, **extra: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": server.port,
        "ca_file": str(ca_file),
        "timeout": 2,
        **extra,
    }


def _send(provider: base.Provider, credentials: dict[str, Any] | None = None) -> None:
    provider.send(RAW, Envelope(MAILBOX, "lead@prospect.example.org", 1, credentials or {}))
    provider.close()  # the next send opens a new connection and logs in again


def _google_sa(token_server: TokenServer, smtp: SmtpTestServer, ca_file: Path) -> base.Provider:
    key = service_account_key(token_server.google_token_uri)
    token_server.delegated.add(key["client_email"])
    token_server.google_users.add(MAILBOX)
    return base.provider_class("google")(
        _settings(smtp, ca_file), {"service_account_key": json.dumps(key)}
    )


def test_it_sends_as_a_workspace_mailbox_with_a_delegated_service_account(
    oauth_smtp: SmtpTestServer, token_server: TokenServer, ca_file: Path
) -> None:
    provider = _google_sa(token_server, oauth_smtp, ca_file)

    _send(provider)
    _send(provider)

    assert [r.login for r in oauth_smtp.received] == [MAILBOX, MAILBOX]
    # One token for both logins: the second came from the database cache.
    grants = [r for r in token_server.requests if "jwt-bearer" in r]
    assert len(grants) == 1


def test_it_keeps_tokens_encrypted_in_the_database(
    oauth_smtp: SmtpTestServer, token_server: TokenServer, ca_file: Path
) -> None:
    _send(_google_sa(token_server, oauth_smtp, ca_file))

    (row,) = AccessToken.objects.all()
    (issued,) = token_server.issued
    assert row.token.startswith("enc:")
    assert issued not in row.token and issued not in row.key
    assert secrets.resolve(row.token) == issued
    assert issued not in repr(oauth2.Token(issued, T0))


def test_it_refreshes_a_token_before_it_expires(
    oauth_smtp: SmtpTestServer, token_server: TokenServer, ca_file: Path
) -> None:
    provider = _google_sa(token_server, oauth_smtp, ca_file)
    _send(provider)

    clock.advance(timedelta(minutes=54))  # 6 minutes left: still used
    _send(provider)
    clock.advance(timedelta(minutes=2))  # 4 minutes left: too close, a new one
    _send(provider)

    assert len([r for r in token_server.requests if "jwt-bearer" in r]) == 2
    assert len(oauth_smtp.received) == 3


def test_it_fetches_a_new_token_when_the_server_refuses_the_cached_one(
    oauth_smtp: SmtpTestServer, token_server: TokenServer, ca_file: Path
) -> None:
    provider = _google_sa(token_server, oauth_smtp, ca_file)
    _send(provider)
    token_server.expire_all()  # revoked at the provider before its time

    _send(provider)

    assert len(oauth_smtp.received) == 2
    assert oauth_smtp.handler.xoauth2_logins == [(MAILBOX, True), (MAILBOX, False), (MAILBOX, True)]


def test_it_reports_a_service_account_without_delegation_in_googles_words(
    oauth_smtp: SmtpTestServer, token_server: TokenServer, ca_file: Path
) -> None:
    provider = _google_sa(token_server, oauth_smtp, ca_file)
    token_server.delegated.clear()

    with pytest.raises(SendError) as caught:
        _send(provider)

    assert caught.value.kind == Outcome.AUTH_FAILED
    assert "unauthorized_client" in caught.value.message
    assert oauth_smtp.received == []


def test_it_reports_a_mailbox_unknown_to_the_workspace(
    oauth_smtp: SmtpTestServer, token_server: TokenServer, ca_file: Path
) -> None:
    provider = _google_sa(token_server, oauth_smtp, ca_file)
    token_server.google_users.clear()

    with pytest.raises(SendError) as caught:
        _send(provider)

    assert caught.value.kind == Outcome.AUTH_FAILED
    assert "Invalid email or User ID" in caught.value.message


def test_it_reports_a_revoked_google_refresh_token(
    oauth_smtp: SmtpTestServer, token_server: TokenServer, ca_file: Path
) -> None:
    token_server.google_refresh["1//good"] = MAILBOX
    provider = base.provider_class("google")(
        _settings(oauth_smtp, ca_file, client_id="cid", token_uri=token_server.google_token_uri),
        {"client_secret": "csecret"},
    )
    _send(provider, {"oauth_refresh_token": "1//good"})
    assert [r.login for r in oauth_smtp.received] == [MAILBOX]

    token_server.google_refresh.clear()
    token_server.expire_all()
    with pytest.raises(SendError) as caught:
        _send(provider, {"oauth_refresh_token": "1//good"})
    assert caught.value.kind == Outcome.AUTH_FAILED
    assert "Token has been expired or revoked" in caught.value.message


def test_it_sends_with_microsoft_app_only_credentials(
    oauth_smtp: SmtpTestServer, token_server: TokenServer, ca_file: Path
) -> None:
    token_server.tenants["contoso-tenant"] = {"app-id": "app-secret"}
    provider = base.provider_class("microsoft")(
        _settings(oauth_smtp, ca_file, tenant_id="contoso-tenant", client_id="app-id"),
        {"client_secret": "app-secret"},
    )

    _send(provider)

    assert [r.login for r in oauth_smtp.received] == [MAILBOX]
    assert "POST /ms/contoso-tenant/oauth2/v2.0/token client_credentials" in token_server.requests


@pytest.mark.parametrize(
    ("tenant", "secret", "words"),
    [
        ("wrong-tenant", "app-secret", "login.microsoftonline.com/wrong-tenant"),
        ("contoso-tenant", "old", "AADSTS7000215"),
    ],
)
def test_it_reports_a_wrong_tenant_or_secret_in_microsofts_words(
    oauth_smtp: SmtpTestServer,
    token_server: TokenServer,
    ca_file: Path,
    tenant: str,
    secret: str,
    words: str,
) -> None:
    token_server.tenants["contoso-tenant"] = {"app-id": "app-secret"}
    provider = base.provider_class("microsoft")(
        _settings(oauth_smtp, ca_file, tenant_id=tenant, client_id="app-id"),
        {"client_secret": secret},
    )

    with pytest.raises(SendError) as caught:
        _send(provider)

    assert caught.value.kind == Outcome.AUTH_FAILED
    assert words in caught.value.message


def test_it_keeps_the_refresh_token_microsoft_rotates(
    oauth_smtp: SmtpTestServer, token_server: TokenServer, ca_file: Path
) -> None:
    from outreach.testing import make_pool

    (mailbox,) = make_pool(1, 1)
    Mailbox.objects.filter(pk=mailbox.pk).update(address=MAILBOX)
    token_server.tenants["contoso-tenant"] = {}
    token_server.ms_refresh["M.R3_first"] = MAILBOX
    provider = base.provider_class("microsoft")(
        _settings(oauth_smtp, ca_file, tenant_id="contoso-tenant", client_id="public-app"), {}
    )

    _send(provider, {"oauth_refresh_token": "M.R3_first"})

    assert [r.login for r in oauth_smtp.received] == [MAILBOX]
    stored = Mailbox.objects.get(address=MAILBOX).secrets["oauth_refresh_token"]
    assert secrets.resolve(stored) in token_server.ms_refresh  # the rotated one, encrypted
    assert "M.R3_first" not in token_server.ms_refresh


def test_it_still_logs_in_with_an_app_password(tls: Any, ca_file: Path) -> None:
    server = SmtpTestServer(tls_context=tls[0], users={MAILBOX: "app-password"}).start()
    try:
        provider = base.provider_class("google")(_settings(server, ca_file), {})
        _send(provider, {"smtp_username": MAILBOX, "smtp_password": "app-password"})
    finally:
        server.stop()
    assert [r.login for r in server.received] == [MAILBOX]


def test_it_names_the_fix_for_a_mailbox_that_is_not_connected(
    oauth_smtp: SmtpTestServer, ca_file: Path
) -> None:
    provider = base.provider_class("google")(_settings(oauth_smtp, ca_file), {})

    with pytest.raises(SendError) as caught:
        _send(provider)

    assert caught.value.kind == Outcome.AUTH_FAILED
    assert f"outreach mailbox connect {MAILBOX}" in caught.value.message
