"""OAuth2 access tokens for Google Workspace and Microsoft 365 mailboxes (SASL XOAUTH2).

Where a mailbox's token comes from (:func:`grant_for`, a pure choice over plain values):

1. the mailbox has an SMTP password (an app password): no token, a plain login;
2. the mailbox has its own refresh token (``outreach mailbox connect``): a Google or Microsoft
   refresh grant with the account's OAuth client;
3. the account has app-wide credentials: a Google service account with domain-wide
   delegation (one key for every mailbox of the Workspace, subject = the mailbox) or a
   Microsoft app registration with client credentials (one token for every mailbox);
4. otherwise the mailbox is not connected: an authentication failure naming the fix.

Tokens are fetched through ``google-auth`` and ``msal`` and kept in a :class:`TokenStore`
that the pool registers (encrypted in the database, shared by every worker); providers never
touch the database themselves. A token is fetched again before it expires
(:data:`REFRESH_MARGIN`). Tokens never go into log lines or error messages.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from outreach.lib import clock
from outreach.providers.base import Outcome, SendError

GOOGLE_SCOPE = "https://mail.google.com/"
MICROSOFT_APP_SCOPE = "https://outlook.office365.com/.default"
# Delegated scopes of a mailbox connected with the device-code flow (SMTP and IMAP).
MICROSOFT_USER_SCOPES = [
    "https://outlook.office365.com/SMTP.Send",
    "https://outlook.office365.com/IMAP.AccessAsUser.All",
]
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL
MICROSOFT_AUTHORITY_HOST = "https://login.microsoftonline.com"
# A token with less than this left is fetched again: a send or an IMAP pass started with it
# must not see it expire half-way (Google and Microsoft tokens live an hour).
REFRESH_MARGIN = timedelta(minutes=5)
# Fields a Google service-account key file must carry (checked by `outreach apply`).
SERVICE_ACCOUNT_FIELDS = ("type", "client_email", "private_key", "token_uri")

# The HTTP client msal uses (None: its own requests session). The seam where tests put a
# session that answers for login.microsoftonline.com.
msal_http_client: Any = None


@dataclass(frozen=True)
class Token:
    access_token: str
    expires_at: datetime
    # A Microsoft refresh grant returns a new refresh token that replaces the old one.
    refresh_token: str | None = None

    def __repr__(self) -> str:  # never print a token
        return f"Token(expires_at={self.expires_at.isoformat()})"


@dataclass(frozen=True)
class Grant:
    """How one mailbox gets its token: ``key`` names the cached token (it changes when the
    credentials change), ``fetch`` asks the provider for a fresh one."""

    key: str
    fetch: Callable[[], Token]
    # Set for a mailbox's own refresh token: the store saves a rotated one for this address.
    mailbox: str = ""


class TokenStore(Protocol):
    def get(self, key: str, fresh_after: datetime) -> str | None:
        """The cached token of ``key`` if it is valid beyond ``fresh_after``."""

    def put(self, key: str, token: Token, mailbox: str) -> None:
        """Keep ``token``; a rotated refresh token replaces ``mailbox``'s own."""

    def forget(self, key: str) -> None:
        """Drop the cached token of ``key`` (the server refused it)."""


class MemoryStore:
    """A store for one process (the default until the pool registers the database's)."""

    def __init__(self) -> None:
        self._tokens: dict[str, Token] = {}

    def get(self, key: str, fresh_after: datetime) -> str | None:
        token = self._tokens.get(key)
        return token.access_token if token and token.expires_at > fresh_after else None

    def put(self, key: str, token: Token, mailbox: str) -> None:
        self._tokens[key] = token

    def forget(self, key: str) -> None:
        self._tokens.pop(key, None)


_store: TokenStore = MemoryStore()


def set_store(store: TokenStore) -> None:
    global _store
    _store = store


def access_token(grant: Grant, *, fresh: bool = False) -> str:
    """A valid access token for ``grant``: the cached one unless it expires within
    :data:`REFRESH_MARGIN` (or ``fresh``), else a new one from the provider, kept."""
    if not fresh:
        cached = _store.get(grant.key, clock.now() + REFRESH_MARGIN)
        if cached:
            return cached
    token = grant.fetch()
    _store.put(grant.key, token, grant.mailbox)
    return token.access_token


def forget(grant: Grant) -> None:
    _store.forget(grant.key)


def xoauth2(user: str, token: str) -> str:
    """The SASL XOAUTH2 initial response (before base64), as Google and Microsoft define it."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


# --- which grant ----------------------------------------------------------------------------

OAUTH_KINDS = ("google", "microsoft")


def grant_for(
    kind: str,
    settings: Mapping[str, Any],
    secrets: Mapping[str, str],
    address: str,
    credentials: Mapping[str, Any],
) -> Grant | None:
    """The grant of mailbox ``address`` on an account of ``kind`` (``settings``/``secrets``
    resolved), given the mailbox's own resolved ``credentials``; None for a password login."""
    if kind not in OAUTH_KINDS or credentials.get("smtp_password"):
        return None
    refresh_token = str(credentials.get("oauth_refresh_token") or "")
    client_id = str(settings.get("client_id") or "")
    if kind == "google":
        if refresh_token:
            client_secret = secrets.get("client_secret", "")
            token_uri = str(settings.get("token_uri") or GOOGLE_TOKEN_URI)
            return Grant(
                _key("google-user", address, client_id),
                lambda: google_refresh(client_id, client_secret, refresh_token, token_uri),
                mailbox=address,
            )
        key_text = secrets.get("service_account_key", "")
        if key_text:
            info = parse_service_account(key_text)
            return Grant(
                _key("google-sa", address, key_text),
                lambda: google_service_account(info, address),
            )
    else:
        tenant = str(settings.get("tenant_id") or "")
        if refresh_token:
            return Grant(
                _key("microsoft-user", address, tenant, client_id),
                lambda: microsoft_refresh(tenant, client_id, refresh_token),
                mailbox=address,
            )
        client_secret = secrets.get("client_secret", "")
        if client_secret:
            # App-only: one token serves every mailbox the app may act for.
            return Grant(
                _key("microsoft-app", "", tenant, client_id, client_secret),
                lambda: microsoft_app(tenant, client_id, client_secret),
            )
    raise SendError(
        f"{address} is not connected: no app password, no refresh token and no app "
        f"credentials on its {kind} account; run `outreach mailbox connect {address}`",
        kind=Outcome.AUTH_FAILED,
        code="oauth",
    )


def _key(*parts: str) -> str:
    # The cache key covers the app credentials: a new key file means a new token. A mailbox's
    # own refresh token is left out: Microsoft rotates it on every refresh.
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def parse_service_account(text: str) -> dict[str, Any]:
    """A service-account key's fields; ValueError naming what is wrong."""
    try:
        info = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(info, dict):
        raise ValueError("not a JSON object")
    missing = [name for name in SERVICE_ACCOUNT_FIELDS if not info.get(name)]
    if missing:
        raise ValueError(f"missing field(s) {', '.join(missing)}")
    if info["type"] != "service_account":
        raise ValueError(f"type is {info['type']!r}, not 'service_account'")
    return info


# --- fetching -------------------------------------------------------------------------------


def _refused(provider: str, words: str) -> SendError:
    # The provider's own words go to the operator; they never contain the token.
    return SendError(f"{provider} refused the token request: {words}", kind=Outcome.AUTH_FAILED)


def _unreachable(provider: str, exc: Exception) -> SendError:
    return SendError(f"{provider} token endpoint unreachable: {exc}", kind=Outcome.TRANSIENT)


def _google_token(credentials: Any) -> Token:
    import google.auth.exceptions
    import google.auth.transport.requests
    import requests

    try:
        credentials.refresh(google.auth.transport.requests.Request(requests.Session()))
    except google.auth.exceptions.RefreshError as exc:
        if getattr(exc, "retryable", False):
            raise _unreachable("Google", exc) from None
        raise _refused("Google", _google_words(exc)) from None
    except google.auth.exceptions.TransportError as exc:
        raise _unreachable("Google", exc) from None
    # google-auth dates the expiry by the wall clock (naive UTC); outreach's clock may be a
    # simulated one, so the token's lifetime is carried over, not the instant.
    wall = datetime.now(UTC).replace(tzinfo=None)
    lifetime = (credentials.expiry - wall) if credentials.expiry else timedelta(hours=1)
    return Token(credentials.token, clock.now() + lifetime)


def _google_words(exc: Exception) -> str:
    data = exc.args[1] if len(exc.args) > 1 else None
    if isinstance(data, dict) and data.get("error"):
        return f"{data['error']}: {data.get('error_description', '')}".strip(": ")
    return str(exc.args[0]) if exc.args else repr(exc)


def google_service_account(info: Mapping[str, Any], subject: str) -> Token:
    from google.oauth2 import service_account

    try:
        credentials = service_account.Credentials.from_service_account_info(
            dict(info), scopes=[GOOGLE_SCOPE], subject=subject
        )
    except ValueError as exc:
        raise SendError(
            f"Google service-account key unusable: {exc}", kind=Outcome.AUTH_FAILED
        ) from None
    return _google_token(credentials)


def google_refresh(client_id: str, client_secret: str, refresh_token: str, token_uri: str) -> Token:
    from google.oauth2.credentials import Credentials

    credentials = Credentials(
        token=None,
        refresh_token=refresh_token,
        client_id=client_id,
        client_secret=client_secret,
        token_uri=token_uri,
        scopes=[GOOGLE_SCOPE],
    )
    return _google_token(credentials)


def _authority(tenant: str) -> str:
    return f"{MICROSOFT_AUTHORITY_HOST}/{tenant or 'organizations'}"


def _msal_result(result: Mapping[str, Any] | None) -> Token:
    if not result or "access_token" not in result:
        result = result or {}
        words = f"{result.get('error', 'no token')}: {result.get('error_description', '')}"
        if result.get("error") in ("temporarily_unavailable", "server_error"):
            raise SendError(f"Microsoft token endpoint: {words}", kind=Outcome.TRANSIENT)
        raise _refused("Microsoft", words.strip(": "))
    expires_in = int(result.get("expires_in") or 3600)
    return Token(
        result["access_token"],
        clock.now() + timedelta(seconds=expires_in),
        refresh_token=result.get("refresh_token"),
    )


def _msal_call(build: Callable[[], Any], call: Callable[[Any], Any]) -> Token:
    import requests

    try:
        app = build()
        return _msal_result(call(app))
    except ValueError as exc:
        # msal raises ValueError when the tenant's discovery document is refused
        # (a wrong tenant: AADSTS90002).
        raise _refused("Microsoft", str(exc)) from None
    except requests.RequestException as exc:
        raise _unreachable("Microsoft", exc) from None


def microsoft_app(tenant: str, client_id: str, client_secret: str) -> Token:
    import msal

    return _msal_call(
        lambda: msal.ConfidentialClientApplication(
            client_id,
            client_credential=client_secret,
            authority=_authority(tenant),
            http_client=msal_http_client,
            instance_discovery=False,
            token_cache=msal.TokenCache(),  # outreach keeps tokens itself
        ),
        lambda app: app.acquire_token_for_client(scopes=[MICROSOFT_APP_SCOPE]),
    )


def microsoft_public_app(tenant: str, client_id: str) -> Any:
    """The public client of a mailbox's own (delegated) tokens: device code and refresh."""
    import msal

    return msal.PublicClientApplication(
        client_id,
        authority=_authority(tenant),
        http_client=msal_http_client,
        instance_discovery=False,
        token_cache=msal.TokenCache(),
    )


def microsoft_refresh(tenant: str, client_id: str, refresh_token: str) -> Token:
    return _msal_call(
        lambda: microsoft_public_app(tenant, client_id),
        lambda app: app.acquire_token_by_refresh_token(refresh_token, scopes=MICROSOFT_USER_SCOPES),
    )


# --- what to do about a refusal ---------------------------------------------------------------

# (words in the provider's answer, the fix), first match wins. The words are the providers'
# own (Google's OAuth errors, Entra ID's AADSTS codes, Exchange Online's SMTP replies).
_FIXES: list[tuple[tuple[str, ...], str]] = [
    (
        ("unauthorized_client",),
        "in the Google Admin console (Security > API controls > Domain-wide delegation) "
        "allow the service account's client ID the scope https://mail.google.com/",
    ),
    (
        ("Invalid email or User ID", "MailboxNotEnabledForRESTAPI", "5.1.1"),
        "the mailbox does not exist at the provider: check the address or create it",
    ),
    (("AADSTS90002", "tenant"), "check tenant_id: it is the Directory (tenant) ID of the app"),
    (
        ("AADSTS7000215", "AADSTS7000222", "invalid_client"),
        "the app's client secret is wrong or expired: create a new one and set client_secret",
    ),
    (
        ("5.7.30", "Basic authentication is not supported"),
        "Microsoft 365 no longer takes passwords: remove smtp_password and run "
        "`outreach mailbox connect {address}` (or configure app credentials)",
    ),
    (
        ("invalid_grant", "expired or revoked", "AADSTS70008", "AADSTS700082", "not connected"),
        "run `outreach mailbox connect {address}` to sign in again",
    ),
    (
        ("5.7.3", "5.7.139", "SmtpClientAuthentication is disabled"),
        "SMTP AUTH is disabled for this mailbox: enable it (Set-CASMailbox -SmtpClientAuth"
        "enticationDisabled $false) and grant the app SMTP.SendAsApp with a mailbox permission",
    ),
]


def fix_for(address: str, words: str) -> str:
    """What the operator should do about the refusal ``words`` of ``address``'s login."""
    lowered = words.lower()
    for needles, fix in _FIXES:
        if any(needle.lower() in lowered for needle in needles):
            return fix.format(address=address)
    return f"check the mailbox's app password, or run `outreach mailbox connect {address}`"
