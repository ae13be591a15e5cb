"""Postmark's email API through django-anymail.

Account ``settings``: ``message_stream`` (default ``outbound``; cold outreach belongs on its
own stream). Secret: ``server_token``.
"""

from __future__ import annotations

from typing import Any

import requests

from outreach.providers.anymail_base import METADATA_KEY, AnymailProvider
from outreach.providers.base import Envelope, SendError, classify_http

SEARCH_URL = "https://api.postmarkapp.com/messages/outbound"
LOOKUP_TIMEOUT_SECONDS = 30


class PostmarkProvider(AnymailProvider):
    kind = "postmark"
    backend_path = "anymail.backends.postmark.EmailBackend"

    def backend_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"server_token": self.secrets.get("server_token", "")}
        if self.settings.get("message_stream"):
            options["message_stream"] = self.settings["message_stream"]
        return options

    def find_sent(self, message_id_header: str, envelope: Envelope) -> bool | None:
        """Postmark's outbound message search (``GET /messages/outbound``) by the metadata
        every message carries (outreach's message id): Postmark cannot search by the
        Message-ID header, and assigns its own MessageID, which a lost answer never gave us.
        """
        try:
            response = requests.get(
                SEARCH_URL,
                params={
                    "count": 50,
                    "offset": 0,
                    "recipient": envelope.recipient,
                    "messagestream": self.settings.get("message_stream") or "outbound",
                    f"metadata_{METADATA_KEY}": str(envelope.message_id),
                },
                headers={
                    "Accept": "application/json",
                    "X-Postmark-Server-Token": self.secrets.get("server_token", ""),
                },
                timeout=LOOKUP_TIMEOUT_SECONDS,
            )
        except requests.RequestException as exc:
            raise SendError(f"Postmark message search unreachable: {exc}") from exc
        if response.status_code != 200:
            raise classify_http(response.status_code, response.text[:500])
        found = response.json().get("Messages") or []
        return any(
            (m.get("Metadata") or {}).get(METADATA_KEY) == str(envelope.message_id) for m in found
        )
