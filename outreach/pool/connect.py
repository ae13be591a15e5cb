"""``outreach mailbox connect ADDRESS``: sign a mailbox in with its provider and keep its own
refresh token, so it sends and reads over OAuth2 without an app password.

- Google: the consent page of the account's OAuth client (type "Desktop app"); the browser
  is sent to ``http://localhost:1/?code=...``, which does not load on purpose — the operator
  pastes that address (or just the code) back. Works on a headless server.
- Microsoft 365: the device-code flow: open microsoft.com/devicelogin anywhere and type the
  code shown.

The mailbox then logs in once to prove the token works; only then is its ``auth_failed``
flag cleared and, if the refusal had paused it, it goes back to the state it was paused from.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlparse

from django.db import transaction

from outreach.lib import secrets
from outreach.pool.models import Mailbox, StateChange
from outreach.pool.states import transition_mailbox
from outreach.providers import base, oauth2
from outreach.providers.smtp.sender import SmtpProvider

# Google's consent screen sends the browser here with the code; nothing listens on port 1.
GOOGLE_REDIRECT = "http://localhost:1/"
GOOGLE_AUTH_URI = "https://accounts.google.com/o/oauth2/auth"


class ConnectError(Exception):
    pass


def connect(
    address: str,
    *,
    say: Callable[[str], None],
    ask: Callable[[str], str],
    actor: str = "user:cli",
) -> str:
    """Sign ``address`` in, store its refresh token, prove it, clear ``auth_failed``.
    Returns what happened, in a line."""
    mailbox = (
        Mailbox.objects.select_related("domain__provider", "provider")
        .filter(address=address.strip().lower())
        .first()
    )
    if mailbox is None:
        raise ConnectError(f"no mailbox {address} in the pool (add it to the pool file first)")
    account = mailbox.provider_account
    settings = {**base.provider_class(account.kind).defaults, **account.settings}
    account_secrets = base.resolve_secrets(account.secrets)
    if account.kind == "google":
        refresh_token = _google_consent(mailbox.address, settings, account_secrets, say, ask)
    elif account.kind == "microsoft":
        refresh_token = _microsoft_device_code(settings, say)
    else:
        raise ConnectError(
            f"{mailbox.address} sends through a {account.kind} account: only google and "
            "microsoft accounts connect with OAuth2"
        )
    try:
        stored = secrets.encrypt(refresh_token)
    except secrets.SecretError as exc:
        raise ConnectError(str(exc)) from None
    mailbox_secrets = {
        name: ref
        for name, ref in mailbox.secrets.items()
        if name != "smtp_password"  # the token replaces the password it failed with
    }
    credentials = {**mailbox.settings, **base.resolve_secrets(mailbox_secrets)}
    credentials["oauth_refresh_token"] = refresh_token
    grant = oauth2.grant_for(account.kind, settings, account_secrets, mailbox.address, credentials)
    if grant is not None:
        oauth2.forget(grant)  # a token cached from the old credentials
    # Kept before the proving login: Microsoft rotates the token during it, and the token
    # store keeps the rotated one on the mailbox.
    mailbox.secrets = {**mailbox_secrets, "oauth_refresh_token": stored}
    mailbox.save(update_fields=["secrets"])
    provider = base.build(account.kind, account.settings, account.secrets)
    assert isinstance(provider, SmtpProvider)
    try:
        provider.check_login(mailbox.address, credentials)
    except base.SendError as exc:
        raise ConnectError(
            f"{mailbox.address} signed in (its token is kept), but the login still fails: "
            f"{exc}; {oauth2.fix_for(mailbox.address, str(exc))}"
        ) from None
    with transaction.atomic():
        Mailbox.objects.filter(pk=mailbox.pk).update(auth_failed_at=None, auth_error="")
        return _resume(mailbox, actor)


def _resume(mailbox: Mailbox, actor: str) -> str:
    """A mailbox paused by its refused login goes back to where it was."""
    if mailbox.state != Mailbox.State.PAUSED:
        return f"{mailbox.address} connected ({mailbox.state})"
    pause = StateChange.objects.filter(mailbox=mailbox, to_state=Mailbox.State.PAUSED).first()
    if pause is None or "authentication failed" not in pause.reason:
        return f"{mailbox.address} connected; still paused ({pause.reason if pause else ''})"
    back_to = pause.from_state or Mailbox.State.ACTIVE
    transition_mailbox(
        mailbox, back_to, reason="reconnected (outreach mailbox connect)", actor=actor
    )
    return f"{mailbox.address} connected and back to {back_to}"


def _google_consent(
    address: str,
    settings: dict[str, object],
    account_secrets: dict[str, str],
    say: Callable[[str], None],
    ask: Callable[[str], str],
) -> str:
    from google_auth_oauthlib.flow import Flow

    client_id = str(settings.get("client_id") or "")
    client_secret = account_secrets.get("client_secret", "")
    if not client_id or not client_secret:
        raise ConnectError(
            "the google account needs client_id and client_secret of an OAuth client "
            "(Google Cloud console > APIs & Services > Credentials > Desktop app)"
        )
    flow = Flow.from_client_config(
        {
            "installed": {
                "client_id": client_id,
                "client_secret": client_secret,
                "auth_uri": GOOGLE_AUTH_URI,
                "token_uri": str(settings.get("token_uri") or oauth2.GOOGLE_TOKEN_URI),
                "redirect_uris": [GOOGLE_REDIRECT],
            }
        },
        scopes=[oauth2.GOOGLE_SCOPE],
        redirect_uri=GOOGLE_REDIRECT,
    )
    url, _ = flow.authorization_url(prompt="consent", login_hint=address)
    say(f"1. Open this address in a browser signed in as {address}:\n\n   {url}\n")
    say(
        "2. Allow access. The browser then fails to open a http://localhost:1/ page: "
        "that is expected.\n3. Copy that page's whole address from the address bar."
    )
    pasted = ask("Paste it here: ").strip()
    code = parse_qs(urlparse(pasted).query).get("code", [pasted])[0]
    if not code:
        raise ConnectError("no code pasted")
    try:
        token = flow.fetch_token(code=code)
    except Exception as exc:  # oauthlib raises its own error per OAuth error code
        raise ConnectError(f"Google refused the code: {exc}") from None
    refresh_token = token.get("refresh_token")
    if not refresh_token:
        raise ConnectError("Google returned no refresh token (revoke the app's access, retry)")
    return str(refresh_token)


def _microsoft_device_code(settings: dict[str, object], say: Callable[[str], None]) -> str:
    client_id = str(settings.get("client_id") or "")
    if not client_id:
        raise ConnectError("the microsoft account needs client_id (its app registration)")
    app = oauth2.microsoft_public_app(str(settings.get("tenant_id") or ""), client_id)
    flow = app.initiate_device_flow(scopes=oauth2.MICROSOFT_USER_SCOPES)
    if "user_code" not in flow:
        raise ConnectError(f"Microsoft refused the sign-in: {flow.get('error_description')}")
    say(str(flow["message"]))
    result = app.acquire_token_by_device_flow(flow)
    if "refresh_token" not in result:
        words = f"{result.get('error')}: {result.get('error_description')}"
        raise ConnectError(f"Microsoft refused the sign-in: {words}")
    return str(result["refresh_token"])
