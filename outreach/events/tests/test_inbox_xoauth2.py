"""The IMAP reader logs in to Google Workspace and Microsoft 365 mailboxes with SASL XOAUTH2:
dovecot checks each bearer token with its ``oauth2`` passdb against the token server's RFC
7662 introspection endpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from imap_tools import MailBoxUnencrypted

from outreach.events import inbox
from outreach.events.models import Event, InboxCursor
from outreach.events.tests import dovecot
from outreach.events.tests.conftest import IMAP_MAILBOX, make_sent_message
from outreach.events.tests.test_inbox import mail
from outreach.pool.models import Mailbox, ProviderAccount
from outreach.providers.tests.conftest import secrets_key, token_server
from outreach.providers.tests.token_server import TokenServer, service_account_key

__all__ = ["secrets_key", "token_server"]

pytestmark = pytest.mark.django_db

LEAD = "lead0@prospect.example.org"


@pytest.fixture
def oauth_imap(token_server: TokenServer) -> Iterator[dovecot.ImapServer]:
    reason = dovecot.available()
    if reason:
        pytest.skip(reason)
    server = dovecot.start([IMAP_MAILBOX], introspection_url=f"{token_server.url}/introspect")
    yield server
    server.stop()


def _workspace_mailbox(token_server: TokenServer, server: dovecot.ImapServer) -> str:
    """The sent message's mailbox on a Google account with a delegated service account."""
    sent = make_sent_message(LEAD)
    key = service_account_key(token_server.google_token_uri)
    token_server.delegated.add(key["client_email"])
    token_server.google_users.add(IMAP_MAILBOX)
    account = ProviderAccount.objects.create(
        name="workspace",
        kind="google",
        secrets={"service_account_key": _encrypted(json.dumps(key))},
    )
    Mailbox.objects.filter(address=IMAP_MAILBOX).update(
        provider=account,
        settings={"imap_host": server.host, "imap_port": server.port, "imap_security": "plain"},
        secrets={},
    )
    return sent.message.message_id_header or ""


def _encrypted(value: str) -> str:
    from outreach.lib import secrets

    return secrets.encrypt(value)


def _append(server: dovecot.ImapServer, raw: bytes) -> None:
    with MailBoxUnencrypted(server.host, server.port).login(IMAP_MAILBOX, server.password) as c:
        c.append(raw)


def test_it_reads_replies_of_a_workspace_mailbox_over_xoauth2(
    oauth_imap: dovecot.ImapServer, token_server: TokenServer
) -> None:
    original = _workspace_mailbox(token_server, oauth_imap)
    _append(
        oauth_imap,
        mail(
            {
                "From": f"Lead Zero <{LEAD}>",
                "Subject": "Re: Quick question",
                "Message-ID": "<reply-x@prospect.example.org>",
                "In-Reply-To": original,
            }
        ),
    )

    assert inbox.read_one_due()

    cursor = InboxCursor.objects.get()
    assert cursor.last_error == ""
    assert Event.objects.get().type == "replied"
    assert any("jwt-bearer" in r for r in token_server.requests)
    assert "POST /introspect " in token_server.requests  # dovecot checked the token


def test_it_records_the_refusal_of_a_token_dovecot_finds_inactive(
    oauth_imap: dovecot.ImapServer, token_server: TokenServer
) -> None:
    _workspace_mailbox(token_server, oauth_imap)
    token_server.google_users.clear()  # the Workspace no longer knows the mailbox

    assert inbox.read_one_due()

    cursor = InboxCursor.objects.get()
    assert "Invalid email or User ID" in cursor.last_error
    assert Event.objects.count() == 0
