"""The SMTP sender against a real server: TLS, AUTH, connection reuse, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from outreach.providers import mime
from outreach.providers.base import Envelope, Outcome, SendError
from outreach.providers.smtp.sender import SmtpProvider
from outreach.providers.smtp.testserver import SmtpTestServer
from outreach.providers.tests.test_mime import _outgoing
from outreach.sending.tests.helpers import SMTP_PASSWORD, smtp_settings


def _envelope(i: int = 1) -> Envelope:
    return Envelope(
        sender="anna@send1.example.com", recipient=f"lead{i}@prospect.example.org", message_id=i
    )


def _provider(port: int, ca_file: Path | None, **extra: object) -> SmtpProvider:
    return SmtpProvider(smtp_settings(port, ca_file, **extra), {"password": SMTP_PASSWORD})


def test_it_reuses_one_authenticated_connection(smtp_server: SmtpTestServer, ca_file: Path) -> None:
    provider = _provider(smtp_server.port, ca_file)
    try:
        for i in range(5):
            result = provider.send(
                mime.build(_outgoing(to_address=f"lead{i}@prospect.example.org")), _envelope(i)
            )
            assert result.code == "250"
    finally:
        provider.close()

    assert len(smtp_server.received) == 5
    assert len(smtp_server.handler.sessions) == 1
    assert {r.login for r in smtp_server.received} == {"relay"}


def test_it_opens_a_new_connection_after_max_per_connection(
    smtp_server: SmtpTestServer, ca_file: Path
) -> None:
    provider = _provider(smtp_server.port, ca_file, max_per_connection=2)
    try:
        for i in range(5):
            provider.send(mime.build(_outgoing()), _envelope(i))
    finally:
        provider.close()
    assert len(smtp_server.handler.sessions) == 3


def test_it_reconnects_when_the_server_closed_an_idle_connection(
    smtp_server: SmtpTestServer, ca_file: Path
) -> None:
    provider = _provider(smtp_server.port, ca_file)
    try:
        provider.send(mime.build(_outgoing()), _envelope(1))
        for conn in provider._connections.values():
            assert conn.smtp.sock is not None
            conn.smtp.sock.close()  # the server's idle timeout, seen from the client
        provider.send(mime.build(_outgoing()), _envelope(2))
    finally:
        provider.close()
    assert len(smtp_server.received) == 2


def test_it_uses_the_mailbox_own_login(smtp_server: SmtpTestServer, ca_file: Path) -> None:
    smtp_server.users["anna@send1.example.com"] = "app-password"
    provider = _provider(smtp_server.port, ca_file)
    envelope = Envelope(
        sender="anna@send1.example.com",
        recipient="lead@prospect.example.org",
        message_id=1,
        credentials={"smtp_username": "anna@send1.example.com", "smtp_password": "app-password"},
    )
    provider.send(mime.build(_outgoing()), envelope)
    provider.close()
    assert smtp_server.received[0].login == "anna@send1.example.com"


def test_it_refuses_a_server_whose_certificate_it_does_not_trust(
    smtp_server: SmtpTestServer,
) -> None:
    provider = SmtpProvider(
        {**smtp_settings(smtp_server.port, None), "security": "starttls"},
        {"password": SMTP_PASSWORD},
    )
    with pytest.raises(SendError) as raised:
        provider.send(mime.build(_outgoing()), _envelope())
    assert raised.value.kind == Outcome.AUTH_FAILED
    assert smtp_server.received == []


def test_it_reports_refused_credentials(smtp_server: SmtpTestServer, ca_file: Path) -> None:
    provider = SmtpProvider(smtp_settings(smtp_server.port, ca_file), {"password": "nope"})
    with pytest.raises(SendError) as raised:
        provider.send(mime.build(_outgoing()), _envelope())
    assert (raised.value.kind, raised.value.code) == (Outcome.AUTH_FAILED, "535")
