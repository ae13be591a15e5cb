"""Google's and Microsoft's token endpoints, faked by a real HTTP server on 127.0.0.1.

It answers as the providers document it: Google's ``/token`` (JWT-bearer grant of a service
account with domain-wide delegation, refresh grant), Microsoft's tenant discovery document
and ``/oauth2/v2.0/token`` (client credentials, refresh grant), with their error payloads
for a revoked refresh token, a service account without delegation, an unknown mailbox and a
wrong tenant. Every token it issues is remembered, so the SMTP test server and dovecot (via
``/introspect``, RFC 7662) can check the bearer tokens they are shown.

Microsoft's endpoints are reached over https only (msal insists): :meth:`msal_session` is a
requests session that sends ``https://login.microsoftonline.com/...`` here instead.
"""

from __future__ import annotations

import base64
import functools
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import requests as http

MS_HOST = "https://login.microsoftonline.com"
GOOGLE_SCOPE = "https://mail.google.com/"


@dataclass
class Issued:
    # Who may log in with the token: one mailbox, or every mailbox ("*", app-only).
    user: str
    expires_at: float


@dataclass
class TokenServer:
    expires_in: int = 3600
    # Google: service accounts (client_email) the Workspace admin delegated to, and the
    # mailboxes that exist in the Workspace.
    delegated: set[str] = field(default_factory=set)
    google_users: set[str] = field(default_factory=set)
    # Refresh tokens -> mailbox, per provider; revoking one removes it.
    google_refresh: dict[str, str] = field(default_factory=dict)
    ms_refresh: dict[str, str] = field(default_factory=dict)
    # Consent codes (Google) and approved device codes (Microsoft) -> the mailbox signed in.
    google_codes: dict[str, str] = field(default_factory=dict)
    ms_device_user: str = ""
    # Microsoft: tenant -> {client_id: client_secret}.
    tenants: dict[str, dict[str, str]] = field(default_factory=dict)
    issued: dict[str, Issued] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                status, body = server.answer_get(self.path)
                self._reply(status, body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                status, body = server.answer_post(self.path, form)
                self._reply(status, body)

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    # --- lifecycle and helpers ---

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def google_token_uri(self) -> str:
        return f"{self.url}/google/token"

    def start(self) -> TokenServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def valid(self, user: str, token: str) -> bool:
        """Whether ``token`` lets ``user`` log in now (what the mail servers ask)."""
        with self.lock:
            issued = self.issued.get(token)
        return (
            issued is not None
            and issued.expires_at > time.time()
            and issued.user in ("*", user.lower())
        )

    def expire_all(self) -> None:
        with self.lock:
            for issued in self.issued.values():
                issued.expires_at = 0

    def msal_session(self) -> http.Session:
        target = f"{self.url}/ms"

        class Redirecting(http.Session):
            def request(self, method: str | bytes, url: str | bytes, *a: Any, **kw: Any) -> Any:
                url = str(url)
                if url.startswith(MS_HOST):
                    url = target + url[len(MS_HOST) :]
                return super().request(method, url, *a, **kw)

        return Redirecting()

    def _issue(self, user: str) -> dict[str, Any]:
        token = "ya29." + secrets.token_urlsafe(24)
        with self.lock:
            self.issued[token] = Issued(user.lower(), time.time() + self.expires_in)
        return {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}

    # --- answers ---

    def answer_get(self, path: str) -> tuple[int, dict[str, Any]]:
        self.requests.append(f"GET {path}")
        parts = path.split("?")[0].strip("/").split("/")
        if parts[0] == "ms" and path.split("?")[0].endswith(
            "/v2.0/.well-known/openid-configuration"
        ):
            tenant = parts[1]
            if tenant not in self.tenants and tenant != "organizations":
                return 400, {
                    "error": "invalid_tenant",
                    "error_description": f"AADSTS90002: Tenant '{tenant}' not found. Check "
                    "to make sure you have the correct tenant ID and are signing into the "
                    "correct cloud.",
                    "error_codes": [90002],
                }
            base = f"{MS_HOST}/{tenant}"
            return 200, {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "issuer": f"{MS_HOST}/{tenant}/v2.0",
            }
        return 404, {"error": "not_found"}

    def answer_post(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.requests.append(f"POST {path} {form.get('grant_type', '')}")
        if path == "/google/token":
            return self._google(form)
        if path.startswith("/ms/") and path.endswith("/oauth2/v2.0/devicecode"):
            return 200, {
                "device_code": "DAQABAAEAAAD",
                "user_code": "F7GH2KLMN",
                "verification_uri": "https://microsoft.com/devicelogin",
                "expires_in": 900,
                "interval": 1,
                "message": "To sign in, use a web browser to open the page "
                "https://microsoft.com/devicelogin and enter the code F7GH2KLMN to authenticate.",
            }
        if path.startswith("/ms/") and path.endswith("/oauth2/v2.0/token"):
            return self._microsoft(path.split("/")[2], form)
        if path == "/introspect":
            return self._introspect(form)
        return 404, {"error": "not_found"}

    def _google(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant = form.get("grant_type")
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            claims = _jwt_claims(form.get("assertion", ""))
            if claims.get("iss") not in self.delegated:
                return 401, {
                    "error": "unauthorized_client",
                    "error_description": "Client is unauthorized to retrieve access tokens "
                    "using this method, or client not authorized for any of the scopes "
                    "requested.",
                }
            if claims.get("sub") not in self.google_users:
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "Invalid email or User ID",
                }
            return 200, self._issue(str(claims["sub"]))
        if grant == "authorization_code":
            user = self.google_codes.pop(form.get("code", ""), None)
            if user is None:
                return 400, {"error": "invalid_grant", "error_description": "Bad Request"}
            refresh = "1//" + secrets.token_urlsafe(16)
            self.google_refresh[refresh] = user
            return 200, {**self._issue(user), "refresh_token": refresh, "scope": GOOGLE_SCOPE}
        if grant == "refresh_token":
            user = self.google_refresh.get(form.get("refresh_token", ""))
            if user is None:
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "Token has been expired or revoked.",
                }
            return 200, self._issue(user)
        return 400, {"error": "unsupported_grant_type"}

    def _microsoft(self, tenant: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant = form.get("grant_type")
        if grant == "client_credentials":
            clients = self.tenants.get(tenant, {})
            if clients.get(form.get("client_id", "")) != form.get("client_secret"):
                return 401, {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided. "
                    "Ensure the secret being sent in the request is the client secret value, "
                    "not the client secret ID.",
                    "error_codes": [7000215],
                }
            return 200, {**self._issue("*"), "ext_expires_in": self.expires_in}
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            if not self.ms_device_user:
                return 400, {
                    "error": "expired_token",
                    "error_description": "AADSTS70020: The provided value for the input "
                    "parameter 'device_code' is not valid. This device code has expired.",
                }
            rotated = "M.R3_" + secrets.token_urlsafe(16)
            self.ms_refresh[rotated] = self.ms_device_user
            return 200, {**self._issue(self.ms_device_user), "refresh_token": rotated}
        if grant == "refresh_token":
            user = self.ms_refresh.pop(form.get("refresh_token", ""), None)
            if user is None:
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "AADSTS70008: The provided authorization code or "
                    "refresh token has expired due to inactivity.",
                    "error_codes": [70008],
                }
            rotated = "M.R3_" + secrets.token_urlsafe(16)
            self.ms_refresh[rotated] = user
            return 200, {**self._issue(user), "refresh_token": rotated, "scope": form.get("scope")}
        return 400, {"error": "unsupported_grant_type"}

    def _introspect(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        # RFC 7662: an inactive token is {"active": false}. An app-only token carries no
        # mailbox: dovecot is told the user the client asked for is fine only for user tokens.
        with self.lock:
            issued = self.issued.get(form.get("token", ""))
        if issued is None or issued.expires_at <= time.time() or issued.user == "*":
            return 200, {"active": False}
        return 200, {"active": True, "email": issued.user}


def _jwt_claims(assertion: str) -> dict[str, Any]:
    # The signature is Google's business; the claims say who asks for whom.
    try:
        payload = assertion.split(".")[1]
        return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
    except (IndexError, ValueError):
        return {}


def service_account_key(
    token_uri: str, client_email: str = "outreach@acme-mail.iam.gserviceaccount.com"
) -> dict[str, Any]:
    """A service-account key file's fields, with an RSA key and a local token_uri."""
    return {
        "type": "service_account",
        "project_id": "acme-mail",
        "private_key_id": secrets.token_hex(20),
        "private_key": _private_key_pem(),
        "client_email": client_email,
        "client_id": "1234567890",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    }


@functools.cache
def _private_key_pem() -> str:
    # One key for the whole run: generating a 2048-bit key costs a noticeable fraction of
    # a second, and the fake endpoint does not check signatures anyway.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
