"""Where cold mail may go: SES, Mailgun and Postmark forbid it by their own policies.

A campaign whose mailboxes send through one of them (or fail over to one) is warned about in
plain words by ``outreach doctor`` and ``outreach campaign start``, unless the campaign says
``opted_in = true`` (every recipient asked for the mail). Cold mail belongs in the operator's
own Google Workspace or Microsoft 365 mailboxes.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Q

from outreach.campaigns.models import Campaign
from outreach.pool.models import Mailbox, ProviderAccount

# Each provider kind whose acceptable-use policy rules out cold mail, and the rule in short.
OPT_IN_ONLY: dict[str, str] = {
    "ses": "Amazon SES's acceptable use policy forbids unsolicited mass mail and mail to "
    "purchased lists",
    "mailgun": "Mailgun's acceptable use policy requires every recipient's explicit, provable "
    "consent",
    "postmark": "Postmark does not accept bulk or cold mail at all",
}
FIX = (
    "send cold mail from your own Google Workspace or Microsoft 365 mailboxes (provider kinds "
    "google and microsoft); if every recipient opted in, set opted_in = true in the campaign "
    "file"
)


def warning_for(slug: str, opted_in: bool, accounts: Iterable[tuple[str, str]]) -> str | None:
    """The warning for campaign ``slug`` routing through ``accounts`` ((name, kind) pairs,
    standbys included); None when it needs none."""
    if opted_in:
        return None
    flagged = sorted({(name, kind) for name, kind in accounts if kind in OPT_IN_ONLY})
    if not flagged:
        return None
    reasons = "; ".join(f"{name} is {kind}: {OPT_IN_ONLY[kind]}" for name, kind in flagged)
    return (
        f"campaign {slug} can send cold mail through a provider that forbids it ({reasons}). "
        "The account can be suspended and the mail refused."
    )


def campaign_accounts(campaign: Campaign) -> set[tuple[str, str]]:
    """(name, kind) of every provider account the campaign's mailboxes may send through,
    their standbys included (failover sends through them too)."""
    mailboxes = Mailbox.objects.exclude(state=Mailbox.State.RETIRED)
    domains = list(campaign.allowed_domains.values_list("pk", flat=True))
    boxes = list(campaign.allowed_mailboxes.values_list("pk", flat=True))
    if domains or boxes:
        mailboxes = mailboxes.filter(Q(domain__in=domains) | Q(pk__in=boxes))
    ids: set[int] = set()
    for own, domain_account in mailboxes.values_list("provider_id", "domain__provider_id"):
        ids.add(own or domain_account)
    accounts = ProviderAccount.objects.filter(pk__in=ids)
    standbys = ProviderAccount.objects.filter(primaries__in=ids)
    return set(accounts.values_list("name", "kind")) | set(standbys.values_list("name", "kind"))


def cold_mail_warning(campaign: Campaign) -> str | None:
    return warning_for(campaign.slug, campaign.opted_in, campaign_accounts(campaign))
