"""SMTP sender with STARTTLS / implicit TLS / plain, AUTH, connection reuse and timeouts.

Account ``settings``: ``host``, ``port`` (587, or 465 for implicit TLS), ``security``
(``starttls`` | ``tls`` | ``none``), ``timeout`` seconds (30), ``username``, ``ca_file`` (an
extra trusted CA bundle), ``max_per_connection`` (100: many servers close after about that
many), ``local_hostname`` for EHLO. Account secret: ``password``. A mailbox with its own login
sets ``smtp_username`` and the secret ``smtp_password``, which take precedence.

Google Workspace and Microsoft 365 accounts (kinds ``google`` and ``microsoft``, subclasses
below their own folders) log in with SASL XOAUTH2 unless the mailbox has an app password: the
token comes from :mod:`outreach.providers.oauth2`.
"""

from __future__ import annotations

import base64
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from outreach.providers import oauth2
from outreach.providers.base import (
    Envelope,
    Outcome,
    Provider,
    SendError,
    SendResult,
    classify_smtp,
)

SECURITY_CHOICES = ("starttls", "tls", "none")


@dataclass(frozen=True)
class _Target:
    host: str
    port: int
    security: str
    username: str
    password: str
    timeout: float
    ca_file: str
    local_hostname: str | None
    # How an OAuth2 mailbox gets its token (None: a password login). Not part of the
    # connection's identity: the grant is rebuilt for every message.
    grant: oauth2.Grant | None = field(default=None, compare=False)


class _Connection:
    def __init__(self, smtp: smtplib.SMTP) -> None:
        self.smtp = smtp
        self.sent = 0


class SmtpProvider(Provider):
    kind = "smtp"
    needs_dkim_signature = True

    def __init__(self, settings: Mapping[str, Any], secrets: Mapping[str, str]) -> None:
        super().__init__(settings, secrets)
        self._connections: dict[_Target, _Connection] = {}

    def send(self, raw_message: bytes, envelope: Envelope) -> SendResult:
        target = self._target(envelope.credentials, envelope.sender)
        # A reused connection may have been closed by the server while idle; that shows up
        # at MAIL FROM, before any of the message went out, so one fresh connection is safe.
        for attempt in (1, 2):
            reused = target in self._connections
            conn = self._connection(target)
            try:
                code, reply = conn.smtp.mail(envelope.sender)
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                self._drop(target)
                if reused and attempt == 1:
                    continue
                raise SendError(f"connection lost before MAIL FROM: {exc}") from exc
            if code == 421 and reused and attempt == 1:
                self._drop(target)
                continue
            if code != 250:
                self._reset(target)
                raise classify_smtp(code, _text(reply))
            return self._transmit(target, conn, raw_message, envelope)
        raise SendError("could not open a usable SMTP connection")  # pragma: no cover

    def _transmit(
        self, target: _Target, conn: _Connection, raw: bytes, envelope: Envelope
    ) -> SendResult:
        try:
            code, reply = conn.smtp.rcpt(envelope.recipient)
            if code not in (250, 251):
                self._reset(target)
                raise classify_smtp(code, _text(reply))
            code, reply = conn.smtp.data(raw)
        except smtplib.SMTPResponseException as exc:
            # data() raises when the server refuses DATA itself (no 354).
            self._reset(target)
            raise classify_smtp(exc.smtp_code, _text(exc.smtp_error)) from exc
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            # Dropped connection or no answer mid-transaction. Without the final 250 the
            # server has not taken responsibility for the message: a transient failure.
            self._drop(target)
            raise SendError(f"connection lost during the SMTP transaction: {exc!r}") from exc
        if code != 250:
            self._reset(target)
            raise classify_smtp(code, _text(reply))
        conn.sent += 1
        if conn.sent >= int(self.settings.get("max_per_connection", 100)):
            self._drop(target, graceful=True)
        text = _text(reply)
        return SendResult(provider_message_id=_queue_id(text), code=str(code), response=text)

    def check_login(self, address: str, credentials: Mapping[str, Any]) -> None:
        """Connect and log in as ``address`` would, without sending; raises SendError."""
        smtp = self._open(self._target(credentials, address))
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            _quietly_close(smtp)

    def close(self) -> None:
        for target in list(self._connections):
            self._drop(target, graceful=True)

    # --- connections ---

    def _target(self, credentials: Mapping[str, Any], address: str = "") -> _Target:
        # Host and security belong to the account; the login may be the mailbox's own
        # (a Google Workspace or Microsoft 365 mailbox authenticates as itself).
        opts = {**self.defaults, **self.settings}
        grant = oauth2.grant_for(self.kind, opts, self.secrets, address, credentials)
        security = str(opts.get("security", "starttls"))
        if security not in SECURITY_CHOICES:
            raise SendError(f"smtp: unknown security {security!r}", kind=Outcome.AUTH_FAILED)
        host = str(opts.get("host") or "")
        if not host:
            raise SendError("smtp: no host configured", kind=Outcome.AUTH_FAILED)
        default_port = 465 if security == "tls" else 587
        return _Target(
            host=host,
            port=int(opts.get("port") or default_port),
            security=security,
            username=str(
                credentials.get("smtp_username")
                or opts.get("username")
                or (address if grant else "")
            ),
            password=str(credentials.get("smtp_password") or self.secrets.get("password") or ""),
            timeout=float(opts.get("timeout", 30)),
            ca_file=str(opts.get("ca_file") or ""),
            local_hostname=opts.get("local_hostname") or None,
            grant=grant,
        )

    def _connection(self, target: _Target) -> _Connection:
        conn = self._connections.get(target)
        if conn is None:
            conn = _Connection(self._open(target))
            self._connections[target] = conn
        return conn

    def _open(self, target: _Target) -> smtplib.SMTP:
        context = ssl.create_default_context(cafile=target.ca_file or None)
        smtp: smtplib.SMTP | None = None
        try:
            if target.security == "tls":
                smtp = smtplib.SMTP_SSL(
                    target.host,
                    target.port,
                    local_hostname=target.local_hostname,
                    timeout=target.timeout,
                    context=context,
                )
            else:
                smtp = smtplib.SMTP(
                    target.host,
                    target.port,
                    local_hostname=target.local_hostname,
                    timeout=target.timeout,
                )
            smtp.ehlo()
            if target.security == "starttls":
                smtp.starttls(context=context)
                smtp.ehlo()
            if target.grant is not None:
                _login_xoauth2(smtp, target.username, target.grant)
            elif target.username:
                smtp.login(target.username, target.password)
            return smtp
        except SendError:
            _quietly_close(smtp)
            raise
        except smtplib.SMTPNotSupportedError as exc:
            _quietly_close(smtp)
            # STARTTLS or AUTH not offered: the mailbox is misconfigured, a human must look.
            raise SendError(f"smtp: {exc}", kind=Outcome.AUTH_FAILED) from exc
        except ssl.SSLCertVerificationError as exc:
            _quietly_close(smtp)
            raise SendError(
                f"smtp: TLS certificate refused: {exc}", kind=Outcome.AUTH_FAILED
            ) from exc
        except smtplib.SMTPResponseException as exc:
            _quietly_close(smtp)
            raise classify_smtp(exc.smtp_code, _text(exc.smtp_error)) from exc
        except (smtplib.SMTPException, OSError) as exc:
            _quietly_close(smtp)
            raise SendError(
                f"smtp: cannot connect to {target.host}:{target.port}: {exc!r}"
            ) from exc

    def _reset(self, target: _Target) -> None:
        conn = self._connections.get(target)
        if conn is None:
            return
        try:
            conn.smtp.rset()
        except (smtplib.SMTPException, OSError):
            self._drop(target)

    def _drop(self, target: _Target, *, graceful: bool = False) -> None:
        # After an error the server may not answer at all: close without waiting for QUIT.
        conn = self._connections.pop(target, None)
        if conn is None:
            return
        if graceful:
            try:
                conn.smtp.quit()
                return
            except (smtplib.SMTPException, OSError):
                pass
        _quietly_close(conn.smtp)


def _login_xoauth2(smtp: smtplib.SMTP, user: str, grant: oauth2.Grant) -> None:
    """AUTH XOAUTH2 with the mailbox's token. A cached token the server refuses (revoked
    early, or the server's clock runs ahead) is dropped and a fresh one tried, once."""
    for fresh in (False, True):
        token = oauth2.access_token(grant, fresh=fresh)
        initial = base64.b64encode(oauth2.xoauth2(user, token).encode()).decode()
        code, reply = smtp.docmd("AUTH", f"XOAUTH2 {initial}")
        if code == 334:
            # The server's error details (base64 JSON); an empty line ends the exchange.
            code, reply = smtp.docmd("")
        if code == 235:
            return
        oauth2.forget(grant)
        if fresh or code not in (535, 454):
            error = classify_smtp(code, _text(reply))
            if error.kind in (Outcome.PERMANENT, Outcome.BLOCKED):
                # Whatever the words, a refused login is the mailbox's credentials.
                error = SendError(error.message, kind=Outcome.AUTH_FAILED, code=error.code)
            raise error
    raise SendError("XOAUTH2 login refused", kind=Outcome.AUTH_FAILED)  # pragma: no cover


def _quietly_close(smtp: smtplib.SMTP | None) -> None:
    if smtp is None:
        return
    try:
        smtp.close()
    except OSError:
        pass


def _text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        return reply.decode("utf-8", "replace")
    return str(reply)


def _queue_id(reply: str) -> str:
    """The server's queue id from "250 2.0.0 Ok: queued as ABC123", or the whole reply."""
    marker = "queued as "
    if marker in reply:
        return reply.split(marker, 1)[1].split()[0]
    return reply[:255]
