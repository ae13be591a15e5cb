"""The database's OAuth2 token store: every worker on every machine shares one token per
mailbox (or per app), encrypted with the secrets key (outreach.lib.secrets)."""

from __future__ import annotations

from datetime import datetime

from outreach.lib import clock, secrets
from outreach.pool.models import AccessToken, Mailbox
from outreach.providers.oauth2 import Token


class DatabaseStore:
    def get(self, key: str, fresh_after: datetime) -> str | None:
        row = AccessToken.objects.filter(key=key, expires_at__gt=fresh_after).first()
        if row is None:
            return None
        try:
            return secrets.resolve(row.token)
        except secrets.SecretError:
            return None  # the secrets key changed: fetch a new token

    def put(self, key: str, token: Token, mailbox: str) -> None:
        # Two workers refreshing at once both store a valid token; the last one stays.
        AccessToken.objects.update_or_create(
            key=key,
            defaults={
                "token": secrets.encrypt(token.access_token),
                "expires_at": token.expires_at,
                "updated_at": clock.now(),
            },
        )
        if token.refresh_token and mailbox:
            # Microsoft rotates refresh tokens: the new one replaces the mailbox's own.
            box = Mailbox.objects.filter(address=mailbox).first()
            if box is not None:
                box.secrets = {
                    **box.secrets,
                    "oauth_refresh_token": secrets.encrypt(token.refresh_token),
                }
                box.save(update_fields=["secrets"])

    def forget(self, key: str) -> None:
        AccessToken.objects.filter(key=key).delete()
