"""What a domain of the pool needs in DNS, read from the database into a plain DomainSpec."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings

from outreach.pool.dns.checks import DomainSpec
from outreach.pool.models import Domain, Mailbox, ProviderAccount, SesIdentity

# SPF include each provider's envelope senders need.
PROVIDER_SPF = {
    ProviderAccount.Kind.SES: "amazonses.com",
    ProviderAccount.Kind.MAILGUN: "mailgun.org",
    ProviderAccount.Kind.POSTMARK: "spf.mtasv.net",
}
# SMTP mailboxes: the include follows from the host of the mailbox provider.
SMTP_HOST_SPF = {
    "google.com": "_spf.google.com",
    "gmail.com": "_spf.google.com",
    "office365.com": "spf.protection.outlook.com",
    "outlook.com": "spf.protection.outlook.com",
}


def providers_of(domain: Domain) -> list[ProviderAccount]:
    """The domain's provider account and any its (non-retired) mailboxes send through."""
    accounts = {domain.provider_id: domain.provider}
    for mailbox in domain.mailboxes.exclude(state=Mailbox.State.RETIRED).select_related("provider"):
        if mailbox.provider is not None:
            accounts[mailbox.provider.pk] = mailbox.provider
    return list(accounts.values())


def spf_include(account: ProviderAccount) -> str:
    if account.kind in PROVIDER_SPF:
        return PROVIDER_SPF[ProviderAccount.Kind(account.kind)]
    if account.kind == ProviderAccount.Kind.SMTP:
        host = str(account.settings.get("host", "")).lower()
        for suffix, include in SMTP_HOST_SPF.items():
            if host == suffix or host.endswith("." + suffix):
                return include
    return ""


def ses_identity(domain: Domain) -> SesIdentity | None:
    return SesIdentity.objects.filter(domain=domain).first()


def ses_region(domain: Domain, identity: SesIdentity | None) -> str:
    if identity is not None and identity.region:
        return identity.region
    return str(domain.provider.settings.get("region") or "us-east-1")


def build_spec(domain: Domain) -> DomainSpec:
    accounts = providers_of(domain)
    kinds = {a.kind for a in accounts}
    includes = sorted({i for i in (spf_include(a) for a in accounts) if i})
    identity = ses_identity(domain)
    selectors = {domain.dkim_selector} if domain.dkim_selector else set()
    for mailbox in domain.mailboxes.exclude(state=Mailbox.State.RETIRED):
        selector = mailbox.settings.get("dkim_selector")
        if selector:
            selectors.add(str(selector))
    mail_from = domain.mail_from or (identity.mail_from if identity else "")
    mail_from_include = mail_from_mx = ""
    if mail_from and ProviderAccount.Kind.SES in kinds:
        mail_from_include = "amazonses.com"
        mail_from_mx = f"feedback-smtp.{ses_region(domain, identity)}.amazonses.com"
    elif mail_from and ProviderAccount.Kind.MAILGUN in kinds:
        mail_from_include, mail_from_mx = "mailgun.org", "mxa.mailgun.org"
    return DomainSpec(
        name=domain.name,
        spf_includes=includes,
        ses_dkim_tokens=list(identity.dkim_tokens) if identity else [],
        dkim_selectors=sorted(selectors),
        mail_from=mail_from,
        mail_from_include=mail_from_include,
        mail_from_mx=mail_from_mx,
        tracking_host=urlsplit(settings.OUTREACH_BASE_URL).hostname or "",
        **_link_host(domain),
    )


def _never_registered() -> bool:
    raise RuntimeError("no tracking probe registered: is outreach.campaigns installed?")


# Whether some live campaign tracks opens or clicks. Campaigns sit above the pool: they fill
# this in ``CampaignsConfig.ready`` (see :func:`set_tracking_probe`).
_tracking_in_use: Callable[[], bool] = _never_registered


def set_tracking_probe(probe: Callable[[], bool]) -> None:
    global _tracking_in_use
    _tracking_in_use = probe


def _link_host(domain: Domain) -> dict[str, str]:
    """The domain's tracking host and its CNAME target, while some campaign tracks opens or
    clicks (without tracking the host serves nothing, and its absence is no finding)."""
    target = urlsplit(settings.OUTREACH_BASE_URL).hostname or ""
    if not target or not _tracking_in_use():
        return {}
    return {"link_host": domain.tracking_hostname, "link_target": target}


def smtp_hosts(domain: Domain) -> list[tuple[ProviderAccount, list[str]]]:
    """SMTP accounts of the domain with their configured sending IPs (or their host)."""
    result = []
    for account in providers_of(domain):
        if account.kind != ProviderAccount.Kind.SMTP:
            continue
        ips = account.settings.get("sending_ips") or []
        host = account.settings.get("host")
        result.append((account, [str(i) for i in ips] or ([str(host)] if host else [])))
    return result
