"""Mailgun's messages API through django-anymail.

Account ``settings``: ``sender_domain`` (the Mailgun domain; default: the From address's
domain), ``api_url`` (``https://api.eu.mailgun.net/v3`` for the EU region). Secret:
``api_key``.
"""

from __future__ import annotations

from typing import Any

from outreach.providers.anymail_base import AnymailProvider


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
