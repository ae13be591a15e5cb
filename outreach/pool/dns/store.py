"""Run the checks of a domain, keep the result, act on it: alerts, cooldown, sending verdict.

1. Authentication rules (:mod:`checks`) and blocklists (:mod:`blocklists`) give findings.
2. The verdict: a critical failure blocks sending from the domain (when
   ``OUTREACH_DNS_CRITICAL_BLOCKS_SENDING``); a rule that could not be checked keeps the
   verdict it had, so a resolver outage neither blocks the pool nor clears a real failure.
3. The run is stored as a :class:`DnsCheck`.
4. Findings that fail now and did not in the previous run raise one alert.
5. A blocklist listing puts an active domain into cooldown through the health rules' path
   (:func:`outreach.pool.states.transition_domain`), for the pool's block cooldown.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import OuterRef, QuerySet, Subquery

from outreach.lib import alerting, clock
from outreach.pool.dns import blocklists, checks
from outreach.pool.dns.findings import UNKNOWN, Finding, outcome
from outreach.pool.dns.resolver import Resolver
from outreach.pool.dns.spec import build_spec, smtp_hosts
from outreach.pool.models import DnsCheck, Domain, PoolSettings, ProviderAccount
from outreach.pool.states import transition_domain

log = logging.getLogger(__name__)

BLOCKLIST_CHECKS = ("blocklist", "ip_blocklist")
# Providers whose mail reaches no receiver (the local sandbox, the simulator's provider):
# their domains' DNS can neither hurt nor help deliverability, so it is not checked.
LOCAL_PROVIDER_KINDS = (ProviderAccount.Kind.SANDBOX, "simulated")


def checked_domains() -> QuerySet[Domain]:
    """The domains the DNS checks are for: not retired, sending to real receivers."""
    return Domain.objects.exclude(state=Domain.State.RETIRED).exclude(
        provider__kind__in=LOCAL_PROVIDER_KINDS
    )


def checks_before_first_send() -> bool:
    """A domain never checked waits for its first check before it sends, when the checks run
    by themselves (the dns loop takes never-checked domains first) and their failures block.
    With periodic checks off (``OUTREACH_DNS_CHECK_INTERVAL_MINUTES=0``) checks are the
    operator's, and an unchecked domain sends."""
    return (
        settings.OUTREACH_DNS_CRITICAL_BLOCKS_SENDING
        and settings.OUTREACH_DNS_CHECK_INTERVAL_MINUTES > 0
    )


def run_findings(
    domain: Domain, resolver: Resolver, *, blocklist_checks: bool = True
) -> list[Finding]:
    """Every finding for ``domain``, nothing stored."""
    findings = checks.check_domain(build_spec(domain), resolver)
    if blocklist_checks:
        findings += blocklists.check_domain_lists(
            domain.name, settings.OUTREACH_DNS_DOMAIN_BLOCKLISTS, resolver
        )
        hosts = [h for _, account_hosts in smtp_hosts(domain) for h in account_hosts]
        if hosts:
            findings += blocklists.check_ip_lists(
                hosts, settings.OUTREACH_DNS_IP_BLOCKLISTS, resolver
            )
    return findings


def check_and_store(
    domain: Domain, resolver: Resolver, *, blocklist_checks: bool = True
) -> DnsCheck:
    """Check ``domain``, store the run, raise alerts and apply cooldowns (steps above)."""
    findings = run_findings(domain, resolver, blocklist_checks=blocklist_checks)
    previous = latest_check(domain)
    previous_findings = [Finding.from_dict(f) for f in previous.findings] if previous else []
    check = DnsCheck.objects.create(
        domain=domain,
        checked_at=clock.now(),
        outcome=outcome(findings),
        findings=[f.to_dict() for f in findings],
        blocks_sending=_blocks(findings, previous_findings),
    )
    _alert_new_failures(domain, findings, previous_findings)
    _cooldown_if_listed(domain, findings)
    return check


def _blocks(findings: list[Finding], previous: list[Finding]) -> bool:
    if any(f.critical for f in findings):
        return True
    not_checked = {f.check for f in findings if f.status == UNKNOWN}
    return any(f.critical and f.check in not_checked for f in previous)


def latest_check(domain: Domain | int) -> DnsCheck | None:
    pk = domain.pk if isinstance(domain, Domain) else domain
    return DnsCheck.objects.filter(domain_id=pk).order_by("-checked_at", "-id").first()


def sending_blocked(domain: Domain | int) -> bool:
    """True when the latest DNS check of ``domain`` found a critical failure and the
    configuration says such failures block sending, or when it was never checked and must be
    before its first send (:func:`checks_before_first_send`)."""
    pk = domain.pk if isinstance(domain, Domain) else domain
    return pk in blocked_domain_ids()


def blocked_domain_ids() -> set[int]:
    """:func:`sending_blocked` for every domain at once (two queries), for the router."""
    if not settings.OUTREACH_DNS_CRITICAL_BLOCKS_SENDING:
        return set()
    latest = DnsCheck.objects.filter(domain=OuterRef("pk")).order_by("-checked_at", "-id")
    rows = Domain.objects.annotate(blocked=Subquery(latest.values("blocks_sending")[:1])).filter(
        blocked=True
    )
    blocked = set(rows.values_list("pk", flat=True))
    return blocked | unchecked_domain_ids()


def unchecked_domain_ids() -> set[int]:
    """Domains that wait for their first DNS check before they send (none when the checks do
    not run by themselves)."""
    if not checks_before_first_send():
        return set()
    return set(checked_domains().filter(dns_checks__isnull=True).values_list("pk", flat=True))


def _alert_new_failures(domain: Domain, findings: list[Finding], previous: list[Finding]) -> None:
    was_failing = {f.key for f in previous if f.failing}
    new = [f for f in findings if f.failing and f.key not in was_failing]
    if not new:
        return
    critical = any(f.critical for f in new)
    lines = [f"DNS check of {domain.name}: {len(new)} new problem(s)"]
    lines += [f"- {f.message}. Fix: {f.fix}" for f in new]
    raise_alert(
        key=f"dns:{domain.name}:{','.join(sorted(f.key for f in new))}",
        kind="dns_check",
        severity="critical" if critical else "warning",
        text="\n".join(lines),
        figures={"domain": domain.name, "findings": [f.to_dict() for f in new]},
    )


def _cooldown_if_listed(domain: Domain, findings: list[Finding]) -> None:
    listed = [f for f in findings if f.check in BLOCKLIST_CHECKS and f.failing]
    if not listed or domain.state != Domain.State.ACTIVE:
        return
    days = PoolSettings.load().thresholds.block_cooldown_days
    transition_domain(
        domain,
        Domain.State.COOLDOWN,
        reason="; ".join(f.message for f in listed)[:500],
        actor="rule:blocklist",
        figures={"listings": [f.subject for f in listed], "cooldown_days": days},
        cooldown_until=clock.now() + timedelta(days=days),
    )


def raise_alert(**alert: Any) -> None:
    """Hand an alert to the outbox (:func:`outreach.lib.alerting.raise_alert`)."""
    try:
        alerting.raise_alert(**alert)
    except Exception:
        # An alert that cannot be stored must not lose the check result stored before it.
        log.exception("dns: could not raise alert %s: %s", alert["key"], alert["text"])
