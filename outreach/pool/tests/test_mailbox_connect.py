"""`outreach mailbox connect ADDRESS`: Google's paste-the-code consent and Microsoft's device
code, the refresh token kept encrypted, the login proved, and a stopped mailbox resumed."""

from __future__ import annotations

from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from outreach.lib import secrets
from outreach.pool.models import Mailbox, ProviderAccount
from outreach.pool.states import mark_auth_failed, transition_mailbox
from outreach.providers.smtp.testserver import SmtpTestServer
from outreach.providers.tests.conftest import ca_file, oauth_smtp, secrets_key, tls, token_server
from outreach.providers.tests.token_server import TokenServer
from outreach.testing import make_pool

__all__ = ["ca_file", "oauth_smtp", "secrets_key", "tls", "token_server"]

pytestmark = pytest.mark.django_db


@pytest.fixture
def insecure_local_token_uri(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # oauthlib refuses http token endpoints; the faked one is http on 127.0.0.1.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    yield


def _mailbox(kind: str, smtp: SmtpTestServer, ca_file: Path, **settings: object) -> Mailbox:
    account = ProviderAccount.objects.create(
        name=kind,
        kind=kind,
        settings={"host": "127.0.0.1", "port": smtp.port, "ca_file": str(ca_file), **settings},
        secrets={"client_secret": secrets.encrypt("csecret")} if kind == "google" else {},
    )
    (mailbox,) = make_pool(1, 1, provider=account)
    return mailbox


def _connect(address: str, monkeypatch: pytest.MonkeyPatch, pasted: str = "") -> str:
    monkeypatch.setattr("builtins.input", lambda prompt="": pasted)
    out = StringIO()
    call_command("mailbox", "connect", address, stdout=out)
    return out.getvalue()


def test_it_connects_a_google_mailbox_with_the_pasted_redirect_address_and_resumes_it(
    oauth_smtp: SmtpTestServer,
    token_server: TokenServer,
    ca_file: Path,
    insecure_local_token_uri: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mailbox = _mailbox(
        "google", oauth_smtp, ca_file, client_id="cid", token_uri=token_server.google_token_uri
    )
    reason = mark_auth_failed(mailbox, "invalid_grant: Token has been expired or revoked.")
    transition_mailbox(mailbox, "paused", reason=reason, actor="rule:auth_failed")
    token_server.google_codes["4/0Acode"] = mailbox.address

    out = _connect(
        mailbox.address, monkeypatch, "http://localhost:1/?code=4/0Acode&scope=https://mail"
    )

    assert "accounts.google.com/o/oauth2/auth" in out and "login_hint=rep1" in out
    assert f"{mailbox.address} connected and back to active" in out
    mailbox.refresh_from_db()
    assert (mailbox.state, mailbox.auth_failed_at, mailbox.auth_error) == ("active", None, "")
    stored = mailbox.secrets["oauth_refresh_token"]
    assert stored.startswith("enc:") and token_server.google_refresh[secrets.resolve(stored)]
    assert oauth_smtp.handler.xoauth2_logins[-1] == (mailbox.address, True)
    assert oauth_smtp.received == []  # proved by a login, nothing sent


def test_it_connects_a_microsoft_mailbox_with_the_device_code(
    oauth_smtp: SmtpTestServer,
    token_server: TokenServer,
    ca_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token_server.tenants["contoso-tenant"] = {}
    mailbox = _mailbox(
        "microsoft", oauth_smtp, ca_file, tenant_id="contoso-tenant", client_id="public-app"
    )
    token_server.ms_device_user = mailbox.address

    out = _connect(mailbox.address, monkeypatch)

    assert "https://microsoft.com/devicelogin" in out and "F7GH2KLMN" in out
    assert f"{mailbox.address} connected (active)" in out
    mailbox.refresh_from_db()
    assert secrets.resolve(mailbox.secrets["oauth_refresh_token"]) in token_server.ms_refresh


def test_it_leaves_the_mailbox_stopped_when_the_sign_in_is_refused(
    oauth_smtp: SmtpTestServer,
    token_server: TokenServer,
    ca_file: Path,
    insecure_local_token_uri: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mailbox = _mailbox(
        "google", oauth_smtp, ca_file, client_id="cid", token_uri=token_server.google_token_uri
    )
    reason = mark_auth_failed(mailbox, "invalid_grant: Token has been expired or revoked.")
    transition_mailbox(mailbox, "paused", reason=reason, actor="rule:auth_failed")

    with pytest.raises(CommandError, match="Google refused the code"):
        _connect(mailbox.address, monkeypatch, "4/0Awrong")

    mailbox.refresh_from_db()
    assert mailbox.state == "paused" and mailbox.auth_failed_at is not None
    assert "oauth_refresh_token" not in mailbox.secrets
