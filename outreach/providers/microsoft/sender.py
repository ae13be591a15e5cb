"""Microsoft 365: the SMTP sender with Exchange Online's submission server as its default.

Tokens: an app registration with client credentials (account ``tenant_id``, ``client_id``
and secret ``client_secret``; the tenant grants SMTP.SendAsApp and IMAP.AccessAsApp and
registers the app's service principal with mailbox permissions), or a mailbox's own refresh
token from ``outreach mailbox connect`` (device-code flow). Exchange Online ends basic
authentication for SMTP submission at the end of 2026 (``550 5.7.30``): only OAuth2 keeps
working.
"""

from __future__ import annotations

from typing import Any, ClassVar

from outreach.providers.base import SendingLimits
from outreach.providers.smtp.sender import SmtpProvider


class MicrosoftProvider(SmtpProvider):
    kind = "microsoft"
    defaults: ClassVar[dict[str, Any]] = {
        "host": "smtp.office365.com",
        "port": 587,
        "security": "starttls",
        "imap_host": "outlook.office365.com",
        "imap_port": 993,
        "imap_security": "ssl",
    }
    # Exchange Online sending limits: 30 messages a minute and 10,000 recipients a day per
    # mailbox (one recipient per message here, so 10,000 messages).
    limits = SendingLimits(
        messages_per_day=10000,
        min_gap_seconds=2.0,
        reason="Microsoft 365: 30 messages a minute, 10,000 recipients a day",
    )
