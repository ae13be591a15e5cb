"""`outreach apply` with Google Workspace and Microsoft 365 accounts: their key file, their
sending limits, and `--check-auth`, which logs in as each mailbox and names the fix."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from outreach.lib import secrets
from outreach.pool.models import Mailbox, ProviderAccount
from outreach.pool.tests.test_apply import snapshot
from outreach.providers.smtp.testserver import SmtpTestServer
from outreach.providers.tests.conftest import ca_file, oauth_smtp, secrets_key, tls, token_server
from outreach.providers.tests.token_server import TokenServer, service_account_key

__all__ = ["ca_file", "oauth_smtp", "secrets_key", "tls", "token_server"]

pytestmark = pytest.mark.django_db

POOL = """
[limits]
mailbox_daily_cap = 40

[providers.workspace]
kind = "google"
service_account_file = "sa.json"
{extra}

[providers.m365]
kind = "microsoft"
tenant_id = "contoso-tenant"
client_id = "app-id"
client_secret = "app-secret"
{extra}

[[domains]]
name = "acme-mail.com"
provider = "workspace"
[[domains.mailboxes]]
address = "anna@acme-mail.com"
warmup = false

[[domains]]
name = "acme-team.com"
provider = "m365"
[[domains.mailboxes]]
address = "ben@acme-team.com"
warmup = false
"""


def write_pool(tmp_path: Path, key: object, extra: str = "") -> Path:
    key_text = key if isinstance(key, str) else json.dumps(key)
    (tmp_path / "sa.json").write_text(key_text)
    path = tmp_path / "pool.toml"
    path.write_text(POOL.format(extra=extra))
    return path


def run_apply(path: Path, *args: str) -> str:
    out = StringIO()
    call_command("apply", str(path), *args, stdout=out)
    return out.getvalue()


def test_it_stores_the_service_account_key_encrypted_and_keeps_connected_tokens(
    tmp_path: Path, secrets_key: str
) -> None:
    key = service_account_key("https://oauth2.googleapis.com/token")
    path = write_pool(tmp_path, key)

    run_apply(path)

    stored = ProviderAccount.objects.get(name="workspace").secrets["service_account_key"]
    assert stored.startswith("enc:") and key["private_key"] not in stored
    assert json.loads(secrets.resolve(stored)) == key
    # A token stored by `outreach mailbox connect` survives the next apply.
    ben = Mailbox.objects.get(address="ben@acme-team.com")
    ben.secrets = {"oauth_refresh_token": secrets.encrypt("M.R3_x")}
    ben.save()
    assert run_apply(path).strip().endswith("no changes")
    ben.refresh_from_db()
    assert secrets.resolve(ben.secrets["oauth_refresh_token"]) == "M.R3_x"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not JSON"),
        ({"type": "service_account", "client_email": "a@b.iam"}, "private_key, token_uri"),
        (
            {"type": "authorized_user", "client_email": "a", "private_key": "k", "token_uri": "u"},
            "'authorized_user'",
        ),
    ],
)
def test_it_refuses_a_key_file_that_is_not_a_service_account_key_and_changes_nothing(
    tmp_path: Path, secrets_key: str, content: object, problem: str
) -> None:
    good = write_pool(tmp_path, service_account_key("https://oauth2.googleapis.com/token"))
    run_apply(good)
    before = snapshot()
    path = write_pool(tmp_path, content)
    path.write_text(path.read_text().replace("mailbox_daily_cap = 40", "mailbox_daily_cap = 30"))

    with pytest.raises(CommandError) as caught:
        run_apply(path)

    message = str(caught.value)
    assert "providers.workspace.service_account_file" in message
    assert str(tmp_path / "sa.json") in message
    assert problem in message
    assert snapshot() == before


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        ("mailbox_daily_cap = 2500", "limits.mailbox_daily_cap", "2,000 messages a day"),
        (
            "mailbox_daily_cap = 40\npacing_gap_seconds = 1",
            "limits.pacing_gap_seconds",
            "30 messages a minute",
        ),
    ],
)
def test_it_refuses_caps_beyond_the_providers_own_limits(
    tmp_path: Path, secrets_key: str, change: str, key: str, words: str
) -> None:
    path = write_pool(tmp_path, service_account_key("https://oauth2.googleapis.com/token"))
    path.write_text(path.read_text().replace("mailbox_daily_cap = 40", change))

    with pytest.raises(CommandError) as caught:
        run_apply(path)

    assert key in str(caught.value) and words in str(caught.value)
    assert ProviderAccount.objects.count() == 0


def test_it_checks_every_mailboxs_login_and_names_the_fix(
    tmp_path: Path, oauth_smtp: SmtpTestServer, token_server: TokenServer, ca_file: Path
) -> None:
    key = service_account_key(token_server.google_token_uri)
    token_server.google_users.add("anna@acme-mail.com")  # but no delegation yet
    token_server.tenants["contoso-tenant"] = {"app-id": "app-secret"}
    extra = f'host = "127.0.0.1"\nport = {oauth_smtp.port}\nca_file = "{ca_file}"\ntimeout = 2'
    path = write_pool(tmp_path, key, extra)

    with pytest.raises(CommandError, match="1 mailbox"):
        run_apply(path, "--check-auth")
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("apply", str(path), "--check-auth", stdout=out)

    lines = out.getvalue()
    assert "auth ok: ben@acme-team.com" in lines
    assert "auth FAILED: anna@acme-mail.com" in lines and "unauthorized_client" in lines
    assert "Domain-wide delegation" in lines
    assert oauth_smtp.received == []  # nothing was sent

    token_server.delegated.add(key["client_email"])
    assert "auth ok: anna@acme-mail.com" in run_apply(path, "--check-auth")
