"""State transitions of mailboxes and domains, each recorded in the audit log.

Every change of ``Mailbox.state`` or ``Domain.state`` goes through :func:`transition_mailbox`
or :func:`transition_domain` so the audit log is complete: who or what did it, from which state
to which, why, and the figures that triggered it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction

from outreach.lib import clock
from outreach.pool.models import Domain, Mailbox, StateChange

# Which mailbox transitions are legal (docs/rules.md, Mailbox and domain states). Retired is final.
MAILBOX_TRANSITIONS: dict[str, set[str]] = {
    Mailbox.State.WARMING: {"active", "paused", "cooldown", "retired"},
    Mailbox.State.ACTIVE: {"paused", "cooldown", "retired", "warming"},
    Mailbox.State.PAUSED: {"active", "warming", "cooldown", "retired"},
    Mailbox.State.COOLDOWN: {"warming", "paused", "retired", "active"},
    Mailbox.State.RETIRED: set(),
}


class IllegalTransition(ValueError):
    pass


# What puts a paused mailbox back into service, by who paused it: a pause waits for a person
# (docs/rules.md, Mailbox and domain states), and the person needs to know what to look at first.
_RESUME_AFTER: dict[str, str] = {
    "rule:bounce_rate": "a person resumes it after cleaning the list that bounced",
    "rule:complaint": "a person resumes it after reading the complaint and checking the list",
    "rule:auth_failed": "a person resumes it once the credentials are fixed",
    "system:sending": "a person resumes it once the credentials are fixed",
    "rule:failure_streak": "a person resumes it once the provider accepts mail again",
}


def way_back(state: str, actor: str, cooldown_until: datetime | None) -> str:
    """What would put a mailbox in ``state`` (entered by ``actor``) back into service, in one
    sentence for the operator; "" for a mailbox in service or retired.

    After a resume the health rules judge it only on what it sends from then on.
    """
    if state == Mailbox.State.COOLDOWN:
        when = f"on {cooldown_until:%Y-%m-%d %H:%M} UTC" if cooldown_until else "when it ends"
        return f"resumes by itself {when}, re-warming; a person may resume it sooner"
    if state != Mailbox.State.PAUSED:
        return ""
    return _RESUME_AFTER.get(actor, "a person resumes it once the reason is dealt with")


def transition_mailbox(
    mailbox: Mailbox,
    to_state: str,
    *,
    reason: str,
    actor: str,
    figures: dict[str, Any] | None = None,
    cooldown_until: datetime | None = None,
    warmup_start_day: int | None = None,
) -> StateChange | None:
    """Move ``mailbox`` to ``to_state`` and record why. Returns None when it was already there.

    The UPDATE is conditional on the state we read, so two rules firing at once (a complaint
    webhook and the periodic evaluation) cannot both record a transition from the same state.
    """
    from_state = mailbox.state
    if from_state == to_state:
        return None
    if to_state not in MAILBOX_TRANSITIONS[from_state]:
        raise IllegalTransition(f"{mailbox.address}: {from_state} → {to_state} is not allowed")
    now = clock.now()
    changes: dict[str, Any] = {"state": to_state}
    if to_state == Mailbox.State.COOLDOWN:
        changes["cooldown_until"] = cooldown_until
    if to_state == Mailbox.State.WARMING:
        changes["warmup_started_on"] = clock.today(_pool_timezone())
        changes["warmup_start_day"] = warmup_start_day or 1
        changes["cooldown_until"] = None
    with transaction.atomic():
        updated = Mailbox.objects.filter(pk=mailbox.pk, state=from_state).update(**changes)
        if updated != 1:
            mailbox.refresh_from_db()
            return None
        for field, value in changes.items():
            setattr(mailbox, field, value)
        return StateChange.objects.create(
            mailbox=mailbox,
            domain=mailbox.domain,
            from_state=from_state,
            to_state=to_state,
            reason=reason,
            figures=figures or {},
            actor=actor,
            at=now,
        )


def transition_domain(
    domain: Domain,
    to_state: str,
    *,
    reason: str,
    actor: str,
    figures: dict[str, Any] | None = None,
    cooldown_until: datetime | None = None,
) -> StateChange | None:
    """Move a whole domain (cooldown stops all its mailboxes) and record why."""
    from_state = domain.state
    if from_state == to_state:
        return None
    if from_state == Domain.State.RETIRED:
        raise IllegalTransition(f"{domain.name}: retired is final")
    changes: dict[str, Any] = {"state": to_state, "cooldown_until": cooldown_until}
    with transaction.atomic():
        if Domain.objects.filter(pk=domain.pk, state=from_state).update(**changes) != 1:
            domain.refresh_from_db()
            return None
        for field, value in changes.items():
            setattr(domain, field, value)
        return StateChange.objects.create(
            domain=domain,
            from_state=from_state,
            to_state=to_state,
            reason=reason,
            figures=figures or {},
            actor=actor,
            at=clock.now(),
        )


def mark_auth_failed(mailbox: Mailbox, words: str) -> str:
    """Flag ``mailbox``: its provider refused its credentials with ``words``. Returns the
    reason to record with its pause: the provider's words and how to reconnect.
    `outreach mailbox connect` clears the flag (:func:`clear_auth_failed`)."""
    from outreach.providers.oauth2 import fix_for

    now = clock.now()
    Mailbox.objects.filter(pk=mailbox.pk).update(auth_failed_at=now, auth_error=words[:500])
    mailbox.auth_failed_at, mailbox.auth_error = now, words[:500]
    return f"authentication failed; {fix_for(mailbox.address, words)}. The provider said: {words}"[
        :500
    ]


def _pool_timezone() -> str:
    from outreach.pool.models import PoolSettings

    return PoolSettings.load().timezone
