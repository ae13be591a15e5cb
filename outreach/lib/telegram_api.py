"""The two methods of the Telegram Bot API that outreach needs, over plain HTTPS (requests):
the bot (:mod:`outreach.telegram`) and `outreach alerts --test` use them.

Why not python-telegram-bot or aiogram: both are asyncio applications (v20+ of
python-telegram-bot runs its own event loop). The engine's loops are threads that
``outreach run`` starts and stops through :mod:`outreach.lib.loop`; an event loop inside one of
them would need its own stop path beside SIGTERM's. Long polling is one ``getUpdates`` call and
answering one ``sendMessage``: two JSON requests, which requests (already used by Apprise and
boto) does in a thread.

Errors follow the Bot API's shape ``{"ok": false, "error_code", "description", "parameters"}``:
429 carries ``parameters.retry_after`` (seconds), which :class:`BotApiError` keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

# Seconds a request may take beyond the long-poll timeout before we call it dead.
NETWORK_SLACK_SECONDS = 10


class BotApiError(Exception):
    """An unsuccessful Bot API call: its error code, and how long to wait on 429."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(f"{code} {description}")
        self.code = code
        self.description = description
        self.retry_after = retry_after


@dataclass(frozen=True)
class Incoming:
    """One text message from ``getUpdates``: who wrote what, in which chat."""

    update_id: int
    chat_id: int
    user_id: int
    username: str
    text: str

    @property
    def sender(self) -> str:
        """The audit log's name for the sender: ``telegram:@name`` or ``telegram:<id>``."""
        return f"telegram:@{self.username}" if self.username else f"telegram:{self.user_id}"


def incoming_of(update: dict[str, Any]) -> Incoming | None:
    """The text message of an update; None for anything else (edits, joins, stickers)."""
    message = update.get("message")
    if not isinstance(message, dict) or not isinstance(message.get("text"), str):
        return None
    sender = message.get("from") or {}
    return Incoming(
        update_id=int(update["update_id"]),
        chat_id=int(message["chat"]["id"]),
        user_id=int(sender.get("id", 0)),
        username=str(sender.get("username", "")),
        text=message["text"],
    )


class BotApi:
    """``getUpdates`` and ``sendMessage`` of one bot, at ``base_url`` (Telegram's, or a fake)."""

    def __init__(
        self, base_url: str, token: str, *, session: requests.Session | None = None
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/bot{token}"
        self.session = session or requests.Session()

    def _call(self, method: str, payload: dict[str, Any], timeout: float) -> Any:
        try:
            response = self.session.post(f"{self.url}/{method}", json=payload, timeout=timeout)
        except requests.RequestException as exc:
            # The token is part of the URL: never let it reach a log line.
            raise BotApiError(0, f"{method}: {type(exc).__name__}") from None
        try:
            body = response.json()
        except ValueError:
            raise BotApiError(response.status_code, f"{method}: not JSON") from None
        if not body.get("ok"):
            parameters = body.get("parameters") or {}
            raise BotApiError(
                int(body.get("error_code") or response.status_code),
                str(body.get("description", "")),
                retry_after=parameters.get("retry_after"),
            )
        return body.get("result")

    def get_updates(self, offset: int, timeout: int) -> list[dict[str, Any]]:
        """Updates from ``offset`` on (which confirms every earlier one), waiting up to
        ``timeout`` seconds for the first (long polling)."""
        result = self._call(
            "getUpdates",
            {"offset": offset, "timeout": timeout, "allowed_updates": ["message"]},
            timeout + NETWORK_SLACK_SECONDS,
        )
        return list(result or [])

    def send_message(self, chat_id: int, text: str) -> None:
        # Plain text: reasons hold "<" and "_", which Markdown or HTML parsing would reject.
        self._call("sendMessage", {"chat_id": chat_id, "text": text}, NETWORK_SLACK_SECONDS)
