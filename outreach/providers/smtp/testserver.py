"""A real SMTP server for tests and benchmarks (aiosmtpd): STARTTLS, AUTH, scripted faults.

Not used in production. ``SmtpTestServer`` runs in a thread of the test process; its
``faults`` script makes the server answer like a misbehaving receiver: a given reply to DATA or
RCPT, a dropped connection, or no answer at all.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

# aiosmtpd logs every SMTP command at INFO; the tests and the benchmark need none of it.
logging.getLogger("mail.log").setLevel(logging.ERROR)

# Fault names understood by :class:`Handler`.
DROP = "drop"  # close the connection without answering the end of DATA
HANG = "hang"  # never answer the end of DATA


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    login: str | None

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Handler:
    received: list[Received] = field(default_factory=list)
    # Replies to the end of DATA, consumed in order ("451 4.3.0 ...", DROP, HANG); empty: 250.
    data_faults: collections.deque[str] = field(default_factory=collections.deque)
    # Fixed RCPT replies per recipient address.
    rcpt_faults: dict[str, str] = field(default_factory=dict)
    # A reply to every RCPT not in ``rcpt_faults`` ("550 5.1.1 ..."): a receiver refusing all.
    rcpt_fault_all: str = ""
    hang_seconds: float = 30.0
    # One entry per SMTP connection that delivered something (connection reuse shows here).
    sessions: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        fault = self.rcpt_faults.get(address.lower()) or self.rcpt_fault_all
        if fault:
            return fault
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            fault = self.data_faults.popleft() if self.data_faults else ""
        if fault == DROP:
            assert server.transport is not None
            server.transport.close()
            return "421 4.4.2 connection dropped"  # never reaches the client
        if fault == HANG:
            await asyncio.sleep(self.hang_seconds)
            return "451 4.4.2 too late"
        if fault:
            return fault
        login = (
            session.auth_data.login.decode()
            if isinstance(session.auth_data, LoginPassword)
            else None
        )
        with self.lock:
            self.received.append(
                Received(
                    mail_from=str(envelope.mail_from),
                    rcpt_tos=list(envelope.rcpt_tos),
                    data=_as_bytes(envelope.original_content or envelope.content or b""),
                    login=login,
                )
            )
            queue_id = len(self.received)
            self.sessions.add(id(session))
        return f"250 2.0.0 Ok: queued as Q{queue_id:06d}"


class SmtpTestServer:
    """aiosmtpd on 127.0.0.1 with STARTTLS required and AUTH required (when ``users``)."""

    def __init__(
        self,
        *,
        tls_context: ssl.SSLContext | None = None,
        users: dict[str, str] | None = None,
        port: int = 0,
        handler: Handler | None = None,
    ) -> None:
        self.handler = handler or Handler()
        self.users = users or {}
        params: dict[str, Any] = {"auth_required": bool(self.users)}
        if tls_context is not None:
            params.update(tls_context=tls_context, require_starttls=True, auth_require_tls=True)
        if self.users:
            params["authenticator"] = self._authenticate
        self.controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=port or _free_port(),
            server_hostname="mx.test",
            **params,
        )

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            user, password = auth_data.login.decode(), auth_data.password.decode()
            if self.users.get(user) == password:
                return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)

    @property
    def port(self) -> int:
        return int(self.controller.port)

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def start(self) -> SmtpTestServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


def _as_bytes(data: bytes | str) -> bytes:
    return data.encode() if isinstance(data, str) else bytes(data)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tls_files(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context for 127.0.0.1 signed by a fresh CA, and the CA's PEM file."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return context, ca_file
