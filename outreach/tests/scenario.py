"""Load a small sending scenario into the database a child process points at.

Run in a child process (``outreach shell -c``) by the restart and soak tests, whose own
process has no Django connection to the server they own: a pool of mailboxes sending through
an SMTP sink, one active campaign, and enrolled leads.
"""

from __future__ import annotations

from typing import Any

from outreach.campaigns.models import Lead
from outreach.pool.models import ProviderAccount
from outreach.testing import enroll, make_campaign, make_leads, make_pool


def load(
    *,
    smtp_port: int,
    leads: int,
    domains: int = 2,
    mailboxes_per_domain: int = 3,
    limits: dict[str, Any] | None = None,
    lead_domains: int = 1,
) -> None:
    """A pool of ``domains`` x ``mailboxes_per_domain`` active mailboxes sending through the
    SMTP server on 127.0.0.1:``smtp_port``, and ``leads`` leads (spread over ``lead_domains``
    company domains) enrolled in the active one-step campaign ``launch``."""
    account = ProviderAccount.objects.create(
        name="sink",
        kind=ProviderAccount.Kind.SMTP,
        settings={"host": "127.0.0.1", "port": smtp_port, "security": "none", "timeout": 5},
    )
    make_pool(domains, mailboxes_per_domain, provider=account, limits=limits)
    campaign = make_campaign()
    per_domain = -(-leads // lead_domains)
    created: list[Lead] = []
    for d in range(lead_domains):
        count = min(per_domain, leads - len(created))
        created += make_leads(count, domain=f"company{d}.example.org")
    enroll(campaign, created)


def command(**kwargs: Any) -> str:
    """The ``outreach shell -c`` code that calls :func:`load` with ``kwargs``."""
    return f"from outreach.tests.scenario import load; load(**{kwargs!r})"
