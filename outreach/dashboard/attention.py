"""What needs the operator: every mailbox and domain that is not sending, with its reason,
since when and what would resume it, and the pool's health judged on its mailboxes as well
as on its pooled rates.

Reads only: the rows come from :func:`outreach.dashboard.pool_rows.mailbox_rows` and
:func:`~outreach.dashboard.pool_rows.domain_rows` (the overview has them already), the reasons
from the audit log through :mod:`outreach.pool.holds`, the domain holds from
:func:`outreach.scheduler.capacity.domain_holds` (carried on each domain row).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from outreach.dashboard import pool_rows
from outreach.pool import holds
from outreach.pool.models import Domain, Mailbox, PoolSettings

# Order of the groups on the page: what stops mail for a whole domain first, then what a
# person must fix, then what ends by itself.
KIND_ORDER = ("dns", "domain-cooldown", "domain", "auth-failed", "paused", "cooldown")
# Share of the live mailboxes not sending above which the pool is critical, whatever its rates.
CRITICAL_SHARE_NOT_SENDING = 0.25


@dataclass(frozen=True)
class Row:
    kind: str
    what: str  # "mailbox" or "domain"
    pk: int
    name: str
    state: str
    reason: str
    since: datetime | None
    resumes: str
    # A person can resume it here (a paused or cooling mailbox); False: it waits for a date
    # or a DNS check.
    resumable: bool


def rows(
    pool: PoolSettings, mailboxes: list[pool_rows.MailboxRow], domains: list[pool_rows.DomainRow]
) -> list[Row]:
    """Every held domain and every paused or cooling mailbox: one query on top of the rows
    the caller has."""
    stopped = [m.mailbox for m in mailboxes if m.mailbox.state in _HELD_STATES]
    held = [d for d in domains if d.held]
    by_mailbox, by_domain = holds.latest_entries()
    out: list[Row] = []
    for d in held:
        entry = by_domain.get(d.domain.pk)
        dns_held = d.held.startswith("DNS")
        kind = "dns" if dns_held else f"domain-{d.domain.state}"
        if d.domain.state != Domain.State.COOLDOWN and not dns_held:
            kind = "domain"
        out.append(
            Row(
                kind=kind,
                what="domain",
                pk=d.domain.pk,
                name=d.domain.name,
                state=d.domain.state,
                reason=d.held if dns_held or entry is None else f"{d.held}: {entry.reason}",
                since=None if dns_held or entry is None else entry.at,
                resumes=holds.domain_resume_condition(
                    d.domain.state, d.domain.cooldown_until, dns_held
                ),
                resumable=False,
            )
        )
    for mb in stopped:
        entry = by_mailbox.get(mb.pk)
        reason = entry.reason if entry else ""
        out.append(
            Row(
                kind=holds.kind_of(mb.state, mb.auth_failed_at is not None),
                what="mailbox",
                pk=mb.pk,
                name=mb.address,
                state=mb.state,
                reason=reason or "no audit entry",
                since=entry.at if entry else None,
                resumes=holds.mailbox_resume_condition(
                    mb.state,
                    mb.cooldown_until,
                    entry.actor if entry else "",
                    mb.auth_failed_at is not None,
                ),
                resumable=True,
            )
        )
    out.sort(key=lambda r: (KIND_ORDER.index(r.kind), r.name))
    return out


_HELD_STATES = (Mailbox.State.PAUSED, Mailbox.State.COOLDOWN)


@dataclass(frozen=True)
class Health:
    status: str  # "ok", "warning" or "critical"
    reasons: list[str]


def judge(
    by_state: dict[str, int], rate_statuses: dict[str, str], held_domains: int, domains: int
) -> Health:
    """Pure: the pool's health from its mailboxes and domains as well as its pooled rates.

    A pool whose rates look fine can still be in trouble: pauses take the bad mailboxes out
    of the rates. So: any rate over its limit, or more than a quarter of the live mailboxes
    (or domains) not sending, is critical; any rate at warning, any paused or cooling mailbox,
    or any held domain is a warning.
    """
    reasons: list[str] = []
    critical = False
    live = sum(n for state, n in by_state.items() if state != Mailbox.State.RETIRED)
    stopped = sum(by_state.get(s, 0) for s in _HELD_STATES)
    for name, status in rate_statuses.items():
        if status in ("over", "warning"):
            reasons.append(f"{name} rate {'over its limit' if status == 'over' else 'at warning'}")
            critical = critical or status == "over"
    if stopped:
        reasons.append(f"{stopped} of {live} mailboxes not sending")
        critical = critical or stopped > CRITICAL_SHARE_NOT_SENDING * live
    if held_domains:
        reasons.append(f"{held_domains} of {domains} domains held")
        critical = critical or held_domains > CRITICAL_SHARE_NOT_SENDING * domains
    if critical:
        return Health("critical", reasons)
    return Health("warning" if reasons else "ok", reasons)
