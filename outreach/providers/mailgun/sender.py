"""Mailgun's messages API through django-anymail.

Account ``settings``: ``sender_domain`` (the Mailgun domain; default: the From address's
domain), ``api_url`` (``https://api.eu.mailgun.net/v3`` for the EU region). Secret:
``api_key``.
"""

from __future__ import annotations

from typing import Any

import requests

from outreach.providers.anymail_base import AnymailProvider
from outreach.providers.base import Envelope, SendError, classify_http

DEFAULT_API_URL = "https://api.mailgun.net/v3"
LOOKUP_TIMEOUT_SECONDS = 30


class MailgunProvider(AnymailProvider):
    kind = "mailgun"
    backend_path = "anymail.backends.mailgun.EmailBackend"

    def backend_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"api_key": self.secrets.get("api_key", "")}
        if self.settings.get("sender_domain"):
            options["sender_domain"] = self.settings["sender_domain"]
        if self.settings.get("api_url"):
            options["api_url"] = self.settings["api_url"]
        return options

    def find_sent(self, message_id_header: str, envelope: Envelope) -> bool | None:
        """Mailgun's events API, filtered by Message-ID (``GET /v3/<domain>/events
        ?message-id=<id>``): any event but ``rejected`` means Mailgun took the message."""
        domain = self.settings.get("sender_domain") or envelope.sender.rpartition("@")[2]
        url = f"{(self.settings.get('api_url') or DEFAULT_API_URL).rstrip('/')}/{domain}/events"
        try:
            response = requests.get(
                url,
                params={"message-id": message_id_header.strip("<>"), "limit": "25"},
                auth=("api", self.secrets.get("api_key", "")),
                timeout=LOOKUP_TIMEOUT_SECONDS,
            )
        except requests.RequestException as exc:
            raise SendError(f"Mailgun events API unreachable: {exc}") from exc
        if response.status_code != 200:
            raise classify_http(response.status_code, response.text[:500])
        items = response.json().get("items") or []
        return any(item.get("event") != "rejected" for item in items)
