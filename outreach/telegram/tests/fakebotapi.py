"""A Telegram Bot API on a local HTTP server: getUpdates and sendMessage, shaped as Telegram
documents them (https://core.telegram.org/bots/api), for the bot to talk to over real HTTP.

Paths other than ``/bot<token>/...`` act as a plain webhook for Apprise's ``json://`` URLs:
``/hook-ok`` answers 200, anything else 500.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
BOT_USER = {"id": 123456789, "is_bot": True, "first_name": "outreach", "username": "outreach_bot"}


def error(code: int, description: str, **parameters: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return body


class FakeBotApi:
    def __init__(self) -> None:
        self.updates: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []  # sendMessage payloads that succeeded
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.hooks: list[dict[str, Any]] = []
        # Per method, (status, body) answers to give before the normal ones.
        self.scripted: dict[str, deque[tuple[int, dict[str, Any]]]] = defaultdict(deque)
        self.failing_chats: dict[int, tuple[int, dict[str, Any]]] = {}
        self.lock = threading.Lock()
        self.next_update_id = 700_000_001
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                try:
                    payload = json.loads(raw or b"{}")
                except ValueError:
                    payload = {"raw": raw.decode(errors="replace")}
                status, body = fake.answer(self.path, payload)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll interval: shutdown() waits for one.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeBotApi:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def write(
        self, chat_id: int, text: str, *, user_id: int = 5001, username: str = "alice"
    ) -> int:
        """A user writes ``text`` to the bot in ``chat_id``; returns the update's id."""
        with self.lock:
            update_id = self.next_update_id
            self.next_update_id += 1
            sender: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": "Op"}
            if username:
                sender["username"] = username
            chat = (
                {"id": chat_id, "type": "private", "first_name": "Op"}
                if chat_id > 0
                else {"id": chat_id, "type": "supergroup", "title": "ops"}
            )
            self.updates.append(
                {
                    "update_id": update_id,
                    "message": {
                        "message_id": update_id % 100_000,
                        "from": sender,
                        "chat": chat,
                        "date": 1_796_000_000,
                        "text": text,
                    },
                }
            )
        return update_id

    def replies_to(self, chat_id: int) -> list[str]:
        return [m["text"] for m in self.sent if m["chat_id"] == chat_id]

    def answer(self, path: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        prefix = f"/bot{TOKEN}/"
        if not path.startswith("/bot"):
            self.hooks.append({"path": path, **payload})
            return (200, {}) if path == "/hook-ok" else (500, {"error": "broken"})
        if not path.startswith(prefix):
            return 401, error(401, "Unauthorized")
        method = path[len(prefix) :]
        with self.lock:
            self.calls.append((method, payload))
            if self.scripted[method]:
                return self.scripted[method].popleft()
            if method == "getUpdates":
                offset = int(payload.get("offset") or 0)
                # An offset confirms every update before it: Telegram forgets them.
                self.updates = [u for u in self.updates if u["update_id"] >= offset]
                return 200, {"ok": True, "result": list(self.updates)}
            if method == "sendMessage":
                chat_id = int(payload["chat_id"])
                if chat_id in self.failing_chats:
                    return self.failing_chats[chat_id]
                self.sent.append(payload)
                message = {
                    "message_id": len(self.sent),
                    "from": BOT_USER,
                    "chat": {"id": chat_id, "type": "private"},
                    "date": 1_796_000_000,
                    "text": payload["text"],
                }
                return 200, {"ok": True, "result": message}
        return 404, error(404, "Not Found")
