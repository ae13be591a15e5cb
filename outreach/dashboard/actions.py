"""The write side of the dashboard: every change goes through the app that owns the data.

Mailbox states change only through :func:`outreach.pool.states.transition_mailbox` (which
writes the audit log), suppressions through :mod:`outreach.campaigns.suppression`. Where the
owning app offers no function yet, the change is a conditional UPDATE on the state that was
read, so a click on a stale page never overwrites what the engine did meanwhile.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction

from outreach.alerts.models import Alert
from outreach.campaigns import lifecycle, suppression
from outreach.campaigns.models import Campaign, Message, Suppression
from outreach.lib import clock
from outreach.pool import states
from outreach.pool.models import Mailbox, PoolSettings, StateChange
from outreach.sending import reconcile

log = logging.getLogger(__name__)

MAILBOX_ACTIONS = {
    "pause": "Pause",
    "resume": "Resume",
    "cooldown": "Start cooldown",
    "restart_warmup": "Restart warm-up",
    "retire": "Retire",
}


class ActionError(ValueError):
    """The action cannot be done (illegal transition, stale page, bad input); shown as is."""


def mailbox_actions_for(mailbox: Mailbox) -> list[tuple[str, str]]:
    """The actions that make sense from the mailbox's current state, for the page's buttons."""
    allowed = states.MAILBOX_TRANSITIONS[mailbox.state]
    target = {
        "pause": "paused",
        "resume": "active" if mailbox.state == Mailbox.State.PAUSED else "warming",
        "cooldown": "cooldown",
        "restart_warmup": "warming",
        "retire": "retired",
    }
    out = []
    for action, label in MAILBOX_ACTIONS.items():
        if action == "resume" and mailbox.state not in (
            Mailbox.State.PAUSED,
            Mailbox.State.COOLDOWN,
        ):
            continue
        if target[action] in allowed:
            out.append((action, label))
    return out


def act_on_mailbox(
    mailbox: Mailbox,
    action: str,
    *,
    reason: str,
    actor: str,
    cooldown_days: int | None = None,
    via: str = "dashboard",
) -> StateChange:
    """Do one of :data:`MAILBOX_ACTIONS` and return the audit log entry it wrote (``via``: where
    the operator acted, kept in its figures).

    ``resume`` returns a paused mailbox to where it was paused from (an interrupted warm-up
    continues on the day it had reached); a mailbox in cooldown re-enters warm-up at the
    schedule's re-entry day, as the automatic end of a cooldown does (docs/rules.md, Mailbox
    and domain states).
    """
    reason = reason.strip()
    if not reason:
        raise ActionError("a reason is required: it goes into the audit log")
    if action not in MAILBOX_ACTIONS:
        raise ActionError(f"unknown action {action!r}")
    pool = PoolSettings.load()
    figures: dict[str, Any] = {"via": via}
    kwargs: dict[str, Any] = {}
    to_state: str
    if action == "pause":
        to_state = Mailbox.State.PAUSED
    elif action == "retire":
        to_state = Mailbox.State.RETIRED
    elif action == "cooldown":
        days = cooldown_days or pool.thresholds.block_cooldown_days
        if days < 1 or days > 365:
            raise ActionError("cooldown must last between 1 and 365 days")
        to_state = Mailbox.State.COOLDOWN
        kwargs["cooldown_until"] = clock.now() + timedelta(days=days)
        figures["cooldown_days"] = days
    elif action == "restart_warmup":
        to_state = Mailbox.State.WARMING
        kwargs["warmup_start_day"] = 1
    elif mailbox.state == Mailbox.State.COOLDOWN:
        to_state = Mailbox.State.WARMING
        kwargs["warmup_start_day"] = pool.warmup.reentry_day
    elif mailbox.state == Mailbox.State.PAUSED:
        to_state, start_day = _state_before_pause(mailbox, pool)
        if start_day is not None:
            kwargs["warmup_start_day"] = start_day
    else:
        raise ActionError(f"{mailbox.address} is {mailbox.state}: nothing to resume")
    try:
        change = states.transition_mailbox(
            mailbox, to_state, reason=reason, actor=actor, figures=figures, **kwargs
        )
    except states.IllegalTransition as exc:
        raise ActionError(str(exc)) from exc
    if change is None:
        raise ActionError(
            f"{mailbox.address} is now {mailbox.state}: the page was stale, nothing changed"
        )
    return change


def _state_before_pause(mailbox: Mailbox, pool: PoolSettings) -> tuple[str, int | None]:
    """Where a paused mailbox came from, and the warm-up day it had reached if warming."""
    pause = (
        StateChange.objects.filter(mailbox=mailbox, to_state=Mailbox.State.PAUSED)
        .order_by("-at", "-id")
        .first()
    )
    if pause is None or pause.from_state != Mailbox.State.WARMING:
        return Mailbox.State.ACTIVE, None
    if mailbox.warmup_started_on is None:
        return Mailbox.State.WARMING, 1
    paused_on = pause.at.astimezone(ZoneInfo(pool.timezone)).date()
    reached = (paused_on - mailbox.warmup_started_on).days + mailbox.warmup_start_day
    return Mailbox.State.WARMING, max(1, reached)


# Messages in `unknown` ----------------------------------------------------------------------

UNKNOWN_DECISIONS = {
    "sent": "It was sent",
    "failed": "It was not sent: give up",
    "resend": "It was not sent: send again",
}


def resolve_unknown(message_id: int, decision: str, *, reason: str, actor: str) -> Message:
    """Record the operator's decision on a message whose provider call may have happened.

    The engine never resends these on its own (a duplicate cold email is worse than a missing
    one); "resend" puts the message back to ``scheduled`` so the control plane claims it again
    and reserves fresh units of every cap for it: the sending layer's own way back to routing
    (:func:`outreach.sending.reconcile.send_back_to_routing`, which writes the audit entry).
    """
    reason = reason.strip()
    if not reason:
        raise ActionError("a reason is required")
    if decision not in UNKNOWN_DECISIONS:
        raise ActionError(f"unknown decision {decision!r}")
    now = clock.now()
    note = f"{now:%Y-%m-%d %H:%M} {actor}: {UNKNOWN_DECISIONS[decision]} ({reason})"
    with transaction.atomic():
        message = Message.objects.filter(pk=message_id).first()
        if message is None:
            raise ActionError("no such message")
        # Conditional on `unknown`: a second operator deciding at the same time, or a late
        # provider event that settled it, wins; we never overwrite a settled message.
        if decision == "resend":
            why = f"{UNKNOWN_DECISIONS[decision]} ({reason})"
            done = reconcile.send_back_to_routing(message, why, now, actor=actor, note=note)
        else:
            state = Message.State.SENT if decision == "sent" else Message.State.FAILED
            done = Message.objects.filter(pk=message_id, state=Message.State.UNKNOWN).update(
                state=state, updated_at=now, last_error=f"{message.last_error}\n{note}".strip()
            )
        if done != 1:
            raise ActionError("the message is no longer in the unknown state")
    message.refresh_from_db()
    return message


# Campaigns -----------------------------------------------------------------------------------


def set_campaign_state(campaign: Campaign, action: str, *, actor: str) -> Campaign:
    """Pause or resume a campaign through the campaigns app's lifecycle."""
    if action not in ("pause", "resume"):
        raise ActionError(f"unknown action {action!r}")
    owner = lifecycle.pause if action == "pause" else lifecycle.resume
    try:
        owner(campaign, actor=actor)
    except Exception as exc:  # the owner's own refusal (e.g. does not validate)
        raise ActionError(str(exc)) from exc
    campaign.refresh_from_db()
    return campaign


# Suppression ---------------------------------------------------------------------------------


def add_suppression(value: str, kind: str, *, reason: str, actor: str) -> bool:
    value = suppression.normalize(value)
    if kind not in Suppression.Kind.values:
        raise ActionError(f"unknown kind {kind!r}")
    if kind == Suppression.Kind.ADDRESS and (value.count("@") != 1 or value.endswith("@")):
        raise ActionError(f"{value!r} is not an email address")
    if kind == Suppression.Kind.DOMAIN and ("@" in value or "." not in value):
        raise ActionError(f"{value!r} is not a domain")
    if not reason.strip():
        raise ActionError("a reason is required")
    return suppression.suppress(
        value, Suppression.Source.MANUAL, kind=kind, reason=reason.strip(), created_by=actor
    )


def remove_suppression(entry_id: int, *, reason: str, actor: str) -> Suppression:
    """Take an entry off the list; the reason and who did it are logged."""
    if not reason.strip():
        raise ActionError("a reason is required")
    entry = Suppression.objects.filter(pk=entry_id).first()
    if entry is None:
        raise ActionError("no such entry")
    Suppression.objects.filter(pk=entry.pk).delete()
    log.warning(
        "suppression removed: %s %s (was %s) by %s: %s",
        entry.kind,
        entry.value,
        entry.source,
        actor,
        reason.strip(),
    )
    return entry


# Alerts --------------------------------------------------------------------------------------


def acknowledge_alert(alert_id: int, *, actor: str, via: str = "dashboard") -> bool:
    """Mark an alert as seen, in the audit log under ``actor`` (``via``: where the operator
    acted, kept in its figures); False when it already was (or does not exist)."""
    with transaction.atomic():
        done = Alert.objects.filter(pk=alert_id, acknowledged_at__isnull=True).update(
            acknowledged_at=clock.now()
        )
        if done:
            alert = Alert.objects.only("kind", "text").get(pk=alert_id)
            first_line = alert.text.splitlines()[0] if alert.text else ""
            StateChange.objects.create(
                from_state="open",
                to_state="acknowledged",
                reason=f"alert #{alert_id} ({alert.kind}): {first_line}"[:500],
                figures={"via": via, "alert": alert_id, "kind": alert.kind},
                actor=actor,
            )
    if done:
        log.info("alert %s acknowledged by %s", alert_id, actor)
    return bool(done)


def acknowledge_alerts(ids: list[int], kind: str, *, actor: str) -> int:
    """Mark a selection of alerts, or every open one of ``kind``, as seen, in one audit entry
    under ``actor`` that lists them; how many were."""
    qs = Alert.objects.filter(acknowledged_at__isnull=True)
    if ids:
        qs = qs.filter(pk__in=ids)
    if kind:
        qs = qs.filter(kind=kind)
    with transaction.atomic():
        seen = list(qs.select_for_update().order_by("pk").values_list("pk", flat=True))
        done = Alert.objects.filter(pk__in=seen, acknowledged_at__isnull=True).update(
            acknowledged_at=clock.now()
        )
        if done:
            what = f"every open {kind} alert" if kind and not ids else "a selection of alerts"
            StateChange.objects.create(
                from_state="open",
                to_state="acknowledged",
                reason=f"{done} alert{'s' if done != 1 else ''} acknowledged: {what}"[:500],
                figures={"via": "dashboard", "alerts": seen, "kind": kind},
                actor=actor,
            )
    log.info("%s alert(s) acknowledged by %s (ids %s, kind %r)", done, actor, ids[:20], kind)
    return done
