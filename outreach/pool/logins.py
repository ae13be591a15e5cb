"""``outreach apply --check-auth``: log in as every mailbox that logs in itself (SMTP,
Google Workspace, Microsoft 365), send nothing, and say what to fix on a refusal."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from outreach.pool.models import Mailbox
from outreach.providers import base, oauth2
from outreach.providers.smtp.sender import SmtpProvider


@dataclass(frozen=True)
class LoginCheck:
    address: str
    error: str | None = None
    fix: str = ""


def check_logins() -> Iterator[LoginCheck]:
    mailboxes = (
        Mailbox.objects.exclude(state=Mailbox.State.RETIRED)
        .select_related("domain__provider", "provider")
        .order_by("address")
    )
    for mailbox in mailboxes:
        account = mailbox.provider_account
        try:
            provider = base.build(account.kind, account.settings, account.secrets)
            if not isinstance(provider, SmtpProvider):
                continue  # an API account: its key is checked by its own health call
            credentials = {**mailbox.settings, **base.resolve_secrets(mailbox.secrets)}
            provider.check_login(mailbox.address, credentials)
        except base.SendError as exc:
            if exc.kind != base.Outcome.AUTH_FAILED and exc.kind != base.Outcome.BLOCKED:
                # Not a refusal of the credentials: the server could not be reached.
                yield LoginCheck(mailbox.address, str(exc), "check the host, port and network")
                continue
            yield LoginCheck(mailbox.address, str(exc), oauth2.fix_for(mailbox.address, str(exc)))
            continue
        yield LoginCheck(mailbox.address)
