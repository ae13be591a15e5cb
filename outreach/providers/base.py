"""The provider contract: one small base class, a registry by ``ProviderAccount.kind``, one error.

A provider takes a fully built RFC 5322 message (bytes) and an :class:`Envelope` and either
returns a :class:`SendResult` (the provider accepted the message) or raises :class:`SendError`
saying what happened and whether trying again can help (STYLE habit 4). Providers never touch
the database: the sending engine records attempts, moves message states and acts on outcomes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from outreach.lib import secrets


class Outcome(StrEnum):
    """What a failed send means (the values are ``SendAttempt.Outcome``'s)."""

    # 4xx, throttling, 5xx of an HTTP API, timeouts, dropped connections: retry with backoff.
    TRANSIENT = "transient"
    # Anything else the provider refused for good: the message fails.
    PERMANENT = "permanent"
    # 5.1.x "user unknown": the address is suppressed and the enrollment stops.
    HARD_BOUNCE = "hard_bounce"
    # 5.7.x policy rejection ("blocked", "spam", "listed"): a block signal for the health rules.
    BLOCKED = "blocked"
    # The credentials were refused: the mailbox is paused until a human fixes them.
    AUTH_FAILED = "auth_failed"


class SendError(Exception):
    """A send that did not go through. ``permanent`` says whether retrying can help."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        kind: Outcome | None = None,
        code: str = "",
        hold_seconds: int = 0,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind or (Outcome.PERMANENT if permanent else Outcome.TRANSIENT)
        self.permanent = self.kind != Outcome.TRANSIENT
        self.code = code
        # A transient refusal that says the mailbox is sending too fast or too much: the
        # mailbox rests this long (its next send waits) and the message is retried after.
        self.hold_seconds = hold_seconds

    def __str__(self) -> str:
        return f"{self.code} {self.message}".strip()


@dataclass(frozen=True)
class Envelope:
    """Who the message goes from and to, and what the provider may need beside the bytes.

    ``credentials`` are the sending mailbox's own options with its secrets resolved (SMTP
    login of a Google Workspace mailbox, for instance); ``message_id`` is outreach's id of the
    message, passed to providers that carry metadata so their events find it again.
    """

    sender: str
    recipient: str
    message_id: int
    credentials: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str
    code: str = ""
    response: str = ""


@dataclass(frozen=True)
class Health:
    """A provider account's own view of its health (SES ``GetAccount``)."""

    healthy: bool
    reason: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    # The provider's current send rate limit (messages/s), when it reports one.
    max_send_rate: float | None = None


@dataclass(frozen=True)
class SendingLimits:
    """A provider's own limits on one mailbox, with the reason (None: no such limit).

    The pool's cold caps stay far below them; they bound what ``outreach apply`` accepts, so
    manual replies and warm-up traffic on the same mailbox never push it over.
    """

    messages_per_day: int | None = None
    recipients_per_message: int | None = None
    # The provider's per-minute limit as the shortest gap between two sends of a mailbox.
    min_gap_seconds: float = 0.0
    reason: str = ""


class Provider:
    """Base class of the provider plugins.

    One instance per provider account and thread: an instance may keep connections open
    between sends and is never shared between threads. ``settings`` are the account's
    non-secret options, ``secrets`` its resolved secrets.
    """

    kind: ClassVar[str] = ""
    # True when outreach must sign the message itself (SMTP relays); API providers sign.
    needs_dkim_signature: ClassVar[bool] = True
    # Options with a known value at this provider (its SMTP and IMAP hosts, ports, TLS),
    # used where the account's settings leave them out.
    defaults: ClassVar[dict[str, Any]] = {}
    # The provider's known per-mailbox limits (outreach sends one recipient per message).
    limits: ClassVar[SendingLimits] = SendingLimits()

    def __init__(self, settings: Mapping[str, Any], secrets: Mapping[str, str]) -> None:
        self.settings = dict(settings)
        self.secrets = dict(secrets)

    def send(self, raw_message: bytes, envelope: Envelope) -> SendResult:
        """Hand ``raw_message`` to the provider for ``envelope.recipient``.

        Returns once the provider has accepted the message; raises :class:`SendError` (and
        nothing else) when it did not.
        """
        raise NotImplementedError

    def check_health(self) -> Health | None:
        """The account's health as the provider reports it; None when it reports nothing."""
        return None

    def find_sent(self, message_id_header: str, envelope: Envelope) -> bool | None:
        """Whether the provider took the message whose ``Message-ID`` header is
        ``message_id_header`` (the reconciliation of a message in doubt).

        True: it did. False: it looked and has no trace of it. None: this provider keeps
        nothing to look in (SES, a plain SMTP relay). Raises :class:`SendError` when the
        lookup itself failed (a 5xx, a timeout): nothing may be concluded then.
        """
        return None

    def close(self) -> None:
        """Release connections; the instance may be used again afterwards."""


_REGISTRY: dict[str, Callable[[], type[Provider]]] = {}


def register(kind: str, loader: Callable[[], type[Provider]]) -> None:
    _REGISTRY[kind] = loader


def provider_class(kind: str) -> type[Provider]:
    _load_builtin()
    try:
        return _REGISTRY[kind]()
    except KeyError:
        raise SendError(f"no provider of kind {kind!r}", permanent=True) from None


def build(kind: str, settings: Mapping[str, Any], secret_refs: Mapping[str, str]) -> Provider:
    """A provider instance for an account's ``kind``, ``settings`` and secret references."""
    return provider_class(kind)(settings, resolve_secrets(secret_refs))


def resolve_secrets(refs: Mapping[str, str]) -> dict[str, str]:
    """Resolve secret references; a missing secret is an authentication failure to report."""
    try:
        return {name: secrets.resolve(ref) for name, ref in refs.items()}
    except secrets.SecretError as exc:
        raise SendError(f"secret unavailable: {exc}", kind=Outcome.AUTH_FAILED) from exc


_builtin_loaded = False


def _load_builtin() -> None:
    # Imported lazily so that a deployment without boto3 or anymail can still use SMTP. A
    # plugin registered before this ran keeps its entry (setdefault below).
    global _builtin_loaded
    if _builtin_loaded:
        return
    _builtin_loaded = True

    def sandbox() -> type[Provider]:
        from outreach.providers.sandbox.sender import SandboxProvider

        return SandboxProvider

    def smtp() -> type[Provider]:
        from outreach.providers.smtp.sender import SmtpProvider

        return SmtpProvider

    def google() -> type[Provider]:
        from outreach.providers.google.sender import GoogleProvider

        return GoogleProvider

    def microsoft() -> type[Provider]:
        from outreach.providers.microsoft.sender import MicrosoftProvider

        return MicrosoftProvider

    def ses() -> type[Provider]:
        from outreach.providers.ses.sender import SesProvider

        return SesProvider

    def mailgun() -> type[Provider]:
        from outreach.providers.mailgun.sender import MailgunProvider

        return MailgunProvider

    def postmark() -> type[Provider]:
        from outreach.providers.postmark.sender import PostmarkProvider

        return PostmarkProvider

    for kind, loader in [
        ("sandbox", sandbox),
        ("smtp", smtp),
        ("google", google),
        ("microsoft", microsoft),
        ("ses", ses),
        ("mailgun", mailgun),
        ("postmark", postmark),
    ]:
        _REGISTRY.setdefault(kind, loader)


# --- outcome classification (pure functions over what the provider said) ---

_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_BLOCK_WORDS = re.compile(
    r"block|spam|listed|blacklist|denylist|reputation|policy|rejected due to|abuse", re.I
)
_UNKNOWN_USER_WORDS = re.compile(
    r"user unknown|unknown user|no such user|does not exist|mailbox unavailable|"
    r"recipient address rejected|invalid recipient|mailbox not found",
    re.I,
)
_AUTH_CODES = {530, 534, 535}
# Enhanced codes that refuse the login whatever the reply code: 5.7.8 bad credentials,
# 5.7.30 Microsoft's "Basic authentication is not supported for Client Submission".
_AUTH_DETAILS = {"5.7.8", "5.7.30"}
# Microsoft 365 blocks a mailbox that it judges to send spam; the mailbox must stop.
_MAILBOX_BLOCKED_WORDS = re.compile(r"OutboundSpamException|WASCL UserAction|BannedSender", re.I)


@dataclass(frozen=True)
class RateLimitAnswer:
    """A mailbox provider's answer that means "too fast or too much, later": the mailbox
    rests ``hold_seconds`` (a named policy: each with its number and its reason)."""

    code: int
    detail: str
    hold_seconds: int
    reason: str
    words: str = ""


RATE_LIMIT_ANSWERS = (
    RateLimitAnswer(421, "4.7.0", 15 * 60, "Google: unusual rate or reputation, try again later"),
    RateLimitAnswer(
        432, "4.3.2", 60, "Microsoft 365: too many connections or messages of the mailbox at once"
    ),
    RateLimitAnswer(
        550, "5.4.5", 24 * 3600, "Google: the mailbox's daily sending limit; lifts within a day"
    ),
    RateLimitAnswer(
        554,
        "5.2.0",
        24 * 3600,
        "Microsoft 365: the mailbox's daily recipient limit; lifts within a day",
        words="SubmissionQuotaExceeded",
    ),
)


def classify_smtp(code: int, text: str) -> SendError:
    """The :class:`SendError` for an SMTP reply ``code`` with ``text``.

    1. A mailbox provider's rate limit (:data:`RATE_LIMIT_ANSWERS`): transient, and the
       mailbox rests.
    2. 530/534/535 or enhanced 5.7.8/5.7.30: authentication failed.
    3. Microsoft's OutboundSpamException: the mailbox is blocked (a policy block).
    4. Any 4xx: transient (421 service closing, 451 local error, 452 storage...).
    5. Enhanced 5.1.x, or "user unknown" wording on 550: a hard bounce.
    6. Enhanced 5.7.x or 554/550 with block wording: a policy block.
    7. Any other 5xx: permanent.
    """
    enhanced = _ENHANCED.search(text)
    ecls, esub = (enhanced.group(1), enhanced.group(2)) if enhanced else ("", "")
    detail = f"{ecls}.{esub}.{enhanced.group(3)}" if enhanced else ""
    label = str(code)
    for answer in RATE_LIMIT_ANSWERS:
        if (code, detail) == (answer.code, answer.detail) and answer.words in text:
            return SendError(
                f"{text} ({answer.reason})",
                kind=Outcome.TRANSIENT,
                code=label,
                hold_seconds=answer.hold_seconds,
            )
    if code in _AUTH_CODES or detail in _AUTH_DETAILS:
        return SendError(text, kind=Outcome.AUTH_FAILED, code=label)
    if code >= 500 and _MAILBOX_BLOCKED_WORDS.search(text):
        return SendError(text, kind=Outcome.BLOCKED, code=label)
    if 400 <= code < 500:
        return SendError(text, kind=Outcome.TRANSIENT, code=label)
    if ecls == "5" and esub == "1":
        return SendError(text, kind=Outcome.HARD_BOUNCE, code=label)
    if ecls == "5" and esub == "7":
        return SendError(text, kind=Outcome.BLOCKED, code=label)
    if not enhanced and code in (550, 551, 553) and _UNKNOWN_USER_WORDS.search(text):
        return SendError(text, kind=Outcome.HARD_BOUNCE, code=label)
    if not enhanced and code in (550, 554) and _BLOCK_WORDS.search(text):
        return SendError(text, kind=Outcome.BLOCKED, code=label)
    return SendError(text, kind=Outcome.PERMANENT, code=label)


def classify_http(status: int | None, text: str) -> SendError:
    """The :class:`SendError` for an HTTP API answer (None: no answer, a network error)."""
    if status is None or status == 429 or status >= 500 or status in (408, 409):
        return SendError(text, kind=Outcome.TRANSIENT, code=str(status or ""))
    if status in (401, 403):
        return SendError(text, kind=Outcome.AUTH_FAILED, code=str(status))
    return SendError(text, kind=Outcome.PERMANENT, code=str(status))
