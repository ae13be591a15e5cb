"""Google Workspace: the SMTP sender with Google's submission server as its default.

Tokens: a service account with domain-wide delegation (account secret
``service_account_key``, one key for every mailbox of the Workspace), or a mailbox's own
refresh token from ``outreach mailbox connect`` (account ``client_id`` and secret
``client_secret`` of an OAuth client of type "Desktop app"). A mailbox with an app password
(``smtp_password``) logs in with it instead.
"""

from __future__ import annotations

from typing import Any, ClassVar

from outreach.providers.base import SendingLimits
from outreach.providers.smtp.sender import SmtpProvider


class GoogleProvider(SmtpProvider):
    kind = "google"
    defaults: ClassVar[dict[str, Any]] = {
        "host": "smtp.gmail.com",
        "port": 587,
        "security": "starttls",
        "imap_host": "imap.gmail.com",
        "imap_port": 993,
        "imap_security": "ssl",
    }
    # Google Workspace sending limits: 2,000 messages a day per user, 100 recipients per
    # message sent through SMTP; past them the mailbox is refused for up to 24 hours.
    limits = SendingLimits(
        messages_per_day=2000,
        recipients_per_message=100,
        reason="Google Workspace: 2,000 messages a day per user, 100 recipients a message",
    )
