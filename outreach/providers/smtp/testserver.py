"""A real SMTP server for tests and benchmarks (aiosmtpd): STARTTLS, AUTH, scripted faults.

Not used in production. ``SmtpTestServer`` runs in a thread of the test process; its
``faults`` script makes the server answer like a misbehaving receiver: a given reply to DATA or
RCPT, a dropped connection, or no answer at all. AUTH XOAUTH2 (Google's and Microsoft's SASL
mechanism) checks the bearer token with a ``bearer(user, token)`` callable and, on refusal,
answers as Google does: a 334 challenge carrying the error JSON, then 535 5.7.8.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import logging
import ssl
import threading
from collections.abc import Callable
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
    # Checks an XOAUTH2 login (user, bearer token); None: XOAUTH2 always refused.
    bearer: Callable[[str, str], bool] | None = None
    # The reply to every AUTH (any mechanism) instead of checking the login, when set.
    auth_fault: str = ""
    # Every XOAUTH2 attempt: (user, accepted).
    xoauth2_logins: list[tuple[str, bool]] = field(default_factory=list)
    # One entry per SMTP connection that delivered something (connection reuse shows here).
    sessions: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        if self.auth_fault:
            return AuthResult(success=False, handled=False, message=self.auth_fault)
        if len(args) > 1:
            try:
                blob = base64.b64decode(args[1], validate=True)
            except ValueError:
                return AuthResult(success=False, handled=False, message="501 5.5.2 bad base64")
        else:
            answer = await server.challenge_auth("")
            if not isinstance(answer, bytes):
                return AuthResult(success=False, handled=True)
            blob = answer
        fields = dict(part.split("=", 1) for part in blob.decode().split("\x01") if "=" in part)
        user, auth = fields.get("user", ""), fields.get("auth", "")
        token = auth.removeprefix("Bearer ")
        ok = bool(auth.startswith("Bearer ") and self.bearer and self.bearer(user, token))
        self.xoauth2_logins.append((user, ok))
        if ok:
            return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))
        # Google's and Microsoft's answer to a bad token: the error as a challenge, which the
        # client ends with an empty line, then the refusal.
        error = {"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"}
        await server.challenge_auth(json.dumps(error))
        return AuthResult(
            success=False,
            handled=False,
            message="535 5.7.8 Username and Password not accepted. BadCredentials",
        )

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
        bearer: Callable[[str, str], bool] | None = None,
    ) -> None:
        self.handler = handler or Handler()
        if bearer is not None:
            self.handler.bearer = bearer
        self.users = users or {}
        required = bool(self.users or self.handler.bearer)
        params: dict[str, Any] = {"auth_required": required}
        if tls_context is not None:
            params.update(tls_context=tls_context, require_starttls=True, auth_require_tls=True)
        if required:
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
        if self.handler.auth_fault:
            return AuthResult(success=False, handled=False, message=self.handler.auth_fault)
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
