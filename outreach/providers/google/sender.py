"""Google Workspace: the SMTP sender with Google's submission server as its default.

Tokens: a service account with domain-wide delegation (account secret
``service_account_key``, one key for every mailbox of the Workspace), or a mailbox's own
refresh token from ``outreach mailbox connect`` (account ``client_id`` and secret
``client_secret`` of an OAuth client of type "Desktop app"). A mailbox with an app password
(``smtp_password``) logs in with it instead.
"""

from __future__ import annotations

from typing import Any, ClassVar

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
