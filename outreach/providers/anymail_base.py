"""Providers reached through django-anymail (Mailgun, Postmark): one backend per account.

Their HTTP APIs take the parts of a message, not raw MIME, so the built message is parsed
back into subject, text, HTML and headers; the headers that matter (Message-ID, threading,
List-Unsubscribe, the tag) are passed through, and outreach's message id rides along as
anymail ``metadata`` so the provider's webhooks echo it back.
"""

from __future__ import annotations

from collections.abc import Mapping
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, ClassVar

from anymail.exceptions import AnymailError, AnymailRecipientsRefused, AnymailRequestsAPIError
from django.core.mail import EmailMultiAlternatives, get_connection

from outreach.providers.base import (
    Envelope,
    Outcome,
    Provider,
    SendError,
    SendResult,
    classify_http,
)
from outreach.providers.mime import TAG_HEADER

# Headers copied from the built message to the API call (From/To/Subject/Reply-To travel as
# fields of their own; Date and MIME structure are the provider's).
PASSED_HEADERS = (
    "Message-ID",
    "In-Reply-To",
    "References",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    TAG_HEADER,
)


# The metadata key carrying outreach's message id (webhooks echo it; searches filter by it).
METADATA_KEY = "outreach_message"


class AnymailProvider(Provider):
    backend_path: ClassVar[str] = ""
    needs_dkim_signature = False  # the ESP signs with the domain's DKIM key

    def __init__(self, settings: Mapping[str, Any], secrets: Mapping[str, str]) -> None:
        super().__init__(settings, secrets)
        self.backend = get_connection(self.backend_path, **self.backend_options())
        self._open = False

    def backend_options(self) -> dict[str, Any]:
        """Keyword options of the anymail backend for this account."""
        raise NotImplementedError

    def esp_extra(self) -> dict[str, Any]:
        return {}

    def send(self, raw_message: bytes, envelope: Envelope) -> SendResult:
        email = self._email(raw_message, envelope)
        if not self._open:
            # Kept open between sends: one HTTP session (keep-alive) per account and thread.
            self.backend.open()
            self._open = True
        try:
            email.send()
        except AnymailRecipientsRefused as exc:
            # The ESP refuses the address itself (Postmark: inactive after a hard bounce or
            # a complaint; Mailgun: on its suppression list): never try it again.
            raise SendError(f"recipient refused: {exc}", kind=Outcome.HARD_BOUNCE) from exc
        except AnymailRequestsAPIError as exc:
            raise classify_http(exc.status_code, str(exc)[:2000]) from exc
        except AnymailError as exc:
            raise SendError(f"{exc}"[:2000], kind=Outcome.PERMANENT) from exc
        status = email.anymail_status  # type: ignore[attr-defined]
        message_id = str(status.message_id or "")
        return SendResult(
            provider_message_id=message_id,
            code="200",
            response=f"{', '.join(sorted(status.status or []))} {message_id}".strip(),
        )

    def close(self) -> None:
        if self._open:
            self.backend.close()
            self._open = False

    def _email(self, raw: bytes, envelope: Envelope) -> EmailMultiAlternatives:
        parsed = message_from_bytes(raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        text_part = parsed.get_body(("plain",))
        html_part = parsed.get_body(("html",))
        email = EmailMultiAlternatives(
            subject=str(parsed.get("Subject", "")),
            body=text_part.get_content() if text_part is not None else "",
            from_email=str(parsed["From"]),
            to=[envelope.recipient],
            reply_to=[str(parsed["Reply-To"])] if parsed.get("Reply-To") else None,
            headers={h: str(parsed[h]) for h in PASSED_HEADERS if parsed.get(h)},
            connection=self.backend,
        )
        if html_part is not None:
            email.attach_alternative(html_part.get_content(), "text/html")
        email.metadata = {METADATA_KEY: str(envelope.message_id)}  # type: ignore[attr-defined]
        extra = self.esp_extra()
        if extra:
            email.esp_extra = extra  # type: ignore[attr-defined]
        return email
