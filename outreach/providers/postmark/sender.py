"""Postmark's email API through django-anymail.

Account ``settings``: ``message_stream`` (default ``outbound``; cold outreach belongs on its
own stream). Secret: ``server_token``.
"""

from __future__ import annotations

from typing import Any

from outreach.providers.anymail_base import AnymailProvider


class PostmarkProvider(AnymailProvider):
    kind = "postmark"
    backend_path = "anymail.backends.postmark.EmailBackend"

    def backend_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"server_token": self.secrets.get("server_token", "")}
        if self.settings.get("message_stream"):
            options["message_stream"] = self.settings["message_stream"]
        return options
