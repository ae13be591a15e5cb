"""Why a mailbox or a domain is not sending, since when, and what would resume it.

The reason and the moment are those of the audit-log entry that put it in its current state
(:mod:`outreach.pool.states` writes one for every transition); what would resume it follows
from the state machine of docs/rules.md: a cooldown ends by itself on its date, a pause waits for
a person, a DNS hold for a passing check.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Max, Q

from outreach.pool.models import Domain, Mailbox, StateChange
from outreach.pool.states import way_back


@dataclass(frozen=True)
class Entry:
    """The audit-log entry that put a mailbox or domain in its current state."""

    reason: str
    at: datetime
    actor: str


def kind_of(state: str, auth_failed: bool) -> str:
    """The attention group of a held mailbox: a paused mailbox whose provider refused its
    credentials (``Mailbox.auth_failed_at``) stands apart, since a reconnection, not a
    review, resumes it."""
    if state == Mailbox.State.PAUSED and auth_failed:
        return "auth-failed"
    return state


def mailbox_resume_condition(
    state: str, cooldown_until: datetime | None, actor: str, auth_failed: bool
) -> str:
    """Pure: what would put a mailbox back to sending (the sentence is
    :func:`outreach.pool.states.way_back`'s, the one owner of it)."""
    if kind_of(state, auth_failed) == "auth-failed":
        return way_back(state, "rule:auth_failed", cooldown_until)
    return way_back(state, actor, cooldown_until)


def domain_resume_condition(state: str, cooldown_until: datetime | None, dns_held: bool) -> str:
    """Pure: what would put a domain back to sending."""
    if state == Domain.State.COOLDOWN:
        when = f"on {cooldown_until:%Y-%m-%d %H:%M}" if cooldown_until else "when its cooldown ends"
        return f"resumes by itself {when}"
    if dns_held:
        return "a passing DNS check (outreach dns check; outreach dns apply fixes records)"
    if state != Domain.State.ACTIVE:
        return "a person sets it active again"
    return ""


def latest_entries() -> tuple[dict[int, Entry], dict[int, Entry]]:
    """The newest audit entry of each paused or cooling mailbox and of each domain that is not
    active (domain-wide entries only): one query whatever the pool size."""
    held = (Mailbox.State.PAUSED, Mailbox.State.COOLDOWN)
    newest_mailbox = (
        StateChange.objects.filter(mailbox__state__in=held)
        .values("mailbox")
        .annotate(last=Max("id"))
        .values("last")
    )
    newest_domain = (
        StateChange.objects.filter(mailbox=None, domain__isnull=False)
        .exclude(domain__state=Domain.State.ACTIVE)
        .values("domain")
        .annotate(last=Max("id"))
        .values("last")
    )
    rows = StateChange.objects.filter(
        Q(pk__in=newest_mailbox) | Q(pk__in=newest_domain)
    ).values_list("mailbox_id", "domain_id", "reason", "at", "actor")
    mailboxes: dict[int, Entry] = {}
    domains: dict[int, Entry] = {}
    for mailbox_id, domain_id, reason, at, actor in rows:
        if mailbox_id is not None:
            mailboxes[mailbox_id] = Entry(reason, at, actor)
        else:
            domains[domain_id] = Entry(reason, at, actor)
    return mailboxes, domains
