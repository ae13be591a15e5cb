"""A fake of Cloudflare's API v4 (zones and DNS records) on 127.0.0.1, for the official SDK.

Responses follow the documented envelope ``{"success", "errors", "messages", "result",
"result_info"}`` and the documented zone and DNS record objects. Every request is logged so
tests can assert what was (not) touched.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "cf-test-token"
STAMP = "2026-11-01T10:00:00.000000Z"


@dataclass
class CloudflareState:
    zones: dict[str, dict[str, Any]] = field(default_factory=dict)
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)

    def add_zone(self, name: str) -> str:
        zone_id = uuid.uuid4().hex
        self.zones[zone_id] = {
            "id": zone_id,
            "name": name,
            "status": "active",
            "paused": False,
            "type": "full",
            "development_mode": 0,
            "name_servers": ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"],
            "original_name_servers": [],
            "original_registrar": None,
            "original_dnshost": None,
            "created_on": STAMP,
            "modified_on": STAMP,
            "activated_on": STAMP,
            "meta": {"step": 2, "custom_certificate_quota": 0, "page_rule_quota": 3},
            "owner": {"id": None, "type": "user", "email": None},
            "account": {"id": "023e105f4ecef8ad9ca31a8372d0c353", "name": "Example Account"},
            "permissions": ["#dns_records:edit", "#dns_records:read", "#zone:read"],
            "plan": {"id": "0feeeeeeeeeeeeeeeeeeeeeeeeeeeeee", "name": "Free Website"},
        }
        self.records[zone_id] = []
        return zone_id

    def add_record(
        self, zone_id: str, rtype: str, name: str, content: str, **extra: Any
    ) -> dict[str, Any]:
        record = {
            "id": uuid.uuid4().hex,
            "zone_id": zone_id,
            "zone_name": self.zones[zone_id]["name"],
            "name": name,
            "type": rtype,
            "content": content,
            "proxiable": rtype in ("A", "AAAA", "CNAME"),
            "proxied": False,
            "ttl": 1,
            "settings": {},
            "meta": {},
            "comment": None,
            "tags": [],
            "created_on": STAMP,
            "modified_on": STAMP,
            **extra,
        }
        self.records[zone_id].append(record)
        return record

    def writes(self) -> list[tuple[str, str, dict[str, Any] | None]]:
        return [r for r in self.requests if r[0] != "GET"]


def _envelope(result: Any, info: dict[str, int] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"success": True, "errors": [], "messages": [], "result": result}
    if info is not None:
        body["result_info"] = info
    return body


def _error(code: int, message: str) -> dict[str, Any]:
    return {
        "success": False,
        "errors": [{"code": code, "message": message}],
        "messages": [],
        "result": None,
    }


def _page(items: list[dict[str, Any]], query: dict[str, list[str]]) -> dict[str, Any]:
    page = int(query.get("page", ["1"])[0])
    per_page = int(float(query.get("per_page", ["100"])[0]))
    chunk = items[(page - 1) * per_page : page * per_page]
    total_pages = max(1, -(-len(items) // per_page))
    return _envelope(
        chunk,
        {
            "page": page,
            "per_page": per_page,
            "count": len(chunk),
            "total_count": len(items),
            "total_pages": total_pages,
        },
    )


class CloudflareFake:
    """``with CloudflareFake() as fake: fake.base_url, fake.state``"""

    def __init__(self) -> None:
        self.state = CloudflareState()
        self.base_url = ""
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> CloudflareFake:
        state = self.state

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                state.requests.append((self.command, url.path, body))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._send(403, _error(10000, "Authentication error"))
                parts = url.path.removeprefix("/client/v4/").strip("/").split("/")
                if parts == ["zones"] and self.command == "GET":
                    name = query.get("name", [""])[0]
                    zones = [z for z in state.zones.values() if not name or z["name"] == name]
                    return self._send(200, _page(zones, query))
                if len(parts) >= 3 and parts[0] == "zones" and parts[2] == "dns_records":
                    zone_id = parts[1]
                    if zone_id not in state.zones:
                        return self._send(
                            404,
                            _error(
                                7003,
                                "Could not route to /zones, perhaps the identifier is invalid?",
                            ),
                        )
                    records = state.records[zone_id]
                    if len(parts) == 3 and self.command == "GET":
                        return self._send(200, _page(records, query))
                    if len(parts) == 3 and self.command == "POST":
                        assert body is not None
                        for r in records:
                            if (r["type"], r["name"], r["content"]) == (
                                body["type"],
                                body["name"],
                                body["content"],
                            ):
                                return self._send(
                                    400, _error(81058, "An identical record already exists.")
                                )
                        extra = {
                            k: v for k, v in body.items() if k not in ("type", "name", "content")
                        }
                        record = state.add_record(
                            zone_id, body["type"], body["name"], body["content"], **extra
                        )
                        return self._send(200, _envelope(record))
                    if len(parts) == 4:
                        found: dict[str, Any] | None = next(
                            (r for r in records if r["id"] == parts[3]), None
                        )
                        if found is None:
                            return self._send(404, _error(81044, "Record does not exist."))
                        if self.command == "PATCH":
                            assert body is not None
                            found.update(body)
                            found["modified_on"] = "2026-11-02T10:00:00.000000Z"
                            return self._send(200, _envelope(found))
                        if self.command == "DELETE":
                            records.remove(found)
                            return self._send(200, _envelope({"id": found["id"]}))
                self._send(404, _error(7000, "No route for that URI"))

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/client/v4"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
