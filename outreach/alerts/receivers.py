"""Rules run the moment evidence arrives, and every automatic state change raises an alert.

The event and attempt receivers run inside the transaction that stored the evidence, so a
complaint's pause commits together with the complaint: once the webhook has been answered,
the sending worker's conditional UPDATE (only ``active``/``warming`` mailboxes) refuses the
mailbox. Each runs in a savepoint and logs its errors: a bug in a rule must never lose the
event; the periodic pass catches up.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from outreach.alerts import rules
from outreach.alerts.models import ProviderHealth
from outreach.alerts.outbox import Kind, raise_alert
from outreach.events.models import Event
from outreach.lib import sql
from outreach.metrics import rollups
from outreach.metrics.mailbox_evidence import NONE as NO_EVIDENCE
from outreach.metrics.mailbox_evidence import mailbox_evidence
from outreach.metrics.receivers import attempts_of
from outreach.pool.models import Domain, Mailbox, PoolSettings, ProviderAccount, StateChange
from outreach.sending.models import ProviderCircuit, SendAttempt

log = logging.getLogger(__name__)

# Event types that can change a verdict (deliveries, opens, clicks, replies cannot).
EVIDENCE_TYPES = {Event.Type.BOUNCED, Event.Type.COMPLAINED, Event.Type.BLOCKED}


def on_events_recorded(sender: Any, events: list[Event], **kwargs: Any) -> None:
    """A batch of stored events: every mailbox with new evidence is judged once, on its
    figures with the whole batch counted (the rollups' receiver has run), on evidence read
    for all of them at once. A mailbox that crosses a threshold anywhere in the batch is paused the
    same minute, before the transaction that stored the evidence commits."""
    # In the order of their first evidence in the batch, as one event at a time would judge
    # them (a domain's cooldown follows its mailboxes' pauses in the same order).
    mailbox_ids: dict[int, None] = {}
    for event in events:
        if event.type not in EVIDENCE_TYPES:
            continue
        mailbox_id = event.mailbox_id
        if not mailbox_id and event.message is not None:
            mailbox_id = event.message.mailbox_id
        if mailbox_id:
            mailbox_ids.setdefault(mailbox_id)
    if not mailbox_ids:
        return
    try:
        # The thresholds and the evidence of all of them in one grouped read, as the
        # periodic pass reads the pool's.
        thresholds = PoolSettings.load().thresholds
        touched = Mailbox.objects.filter(pk__in=list(mailbox_ids))
        evidence = mailbox_evidence(touched, thresholds)
        loaded = touched.select_related("domain").in_bulk()
        mailboxes = [loaded[pk] for pk in mailbox_ids if pk in loaded]
    except Exception:
        log.exception("health rules on events %s failed", [e.pk for e in events])
        return
    for mailbox in mailboxes:
        # One savepoint each: a rule failing on one mailbox must not undo another's pause.
        try:
            with transaction.atomic():
                found = evidence.get(mailbox.pk, NO_EVIDENCE)
                rules.evaluate_mailbox(mailbox, thresholds, found)
        except Exception:
            log.exception("health rules on events of mailbox %s failed", mailbox.pk)


def on_send_attempted(
    sender: Any,
    attempts: list[SendAttempt] | None = None,
    attempt: SendAttempt | None = None,
    **kwargs: Any,
) -> None:
    """A batch of provider calls: the caps of the domains that sent are checked once, and
    every mailbox with a failed call is judged once."""
    batch = attempts_of(attempts, attempt)
    try:
        with transaction.atomic():
            sent_domains: set[int] = set()
            failed_mailboxes: set[int] = set()
            for item in batch:
                if item.outcome == SendAttempt.Outcome.SENT:
                    sent_domains.add(item.mailbox.domain_id)  # the engine hands mailboxes over
                else:
                    failed_mailboxes.add(item.mailbox_id)
            if sent_domains:
                rules.check_caps(sorted(sent_domains))
            if failed_mailboxes:
                failing = Mailbox.objects.select_related("domain").filter(pk__in=failed_mailboxes)
                for mailbox in failing.order_by("pk"):
                    rules.evaluate_mailbox(mailbox)
    except Exception:
        log.exception("health rules on send attempts %s failed", [a.pk for a in batch])


def on_circuit_changed(
    sender: Any, account: ProviderAccount, from_state: str, to_state: str, reason: str, **kw: Any
) -> None:
    """A provider account's circuit opened (failing) or closed (works again)."""
    if to_state == ProviderCircuit.State.HALF_OPEN:
        return
    failing = to_state == ProviderCircuit.State.OPEN
    standby = account.standby.name if account.standby else None
    if failing:
        text = f"Provider {account.name} is failing: {reason}. " + (
            f"Sending fails over to {standby}." if standby else "No standby: sends wait."
        )
    else:
        text = f"Provider {account.name} works again: sends are back on it."
    try:
        raise_alert(
            key=f"circuit:{account.pk}:{to_state}",
            kind="provider_problem" if failing else "provider_recovered",
            text=text,
            severity="critical" if failing and not standby else "warning",
            figures={"provider": account.name, "from": from_state, "to": to_state},
        )
    except Exception:
        log.exception("cannot raise the circuit alert for %s", account.name)


def provider_problems() -> dict[int, list[Any]]:
    """The accounts the provider watch found unhealthy, with its problems (for the sending
    engine's circuit breakers, through ``sending.hooks``)."""
    # Every take reads them: one row per account, read whole with a statement written once.
    return {
        health.provider_account_id: health.problems
        for health in sql.load_every(ProviderHealth).values()
        if not health.healthy
    }


def on_state_change(sender: Any, instance: StateChange, created: bool, **kwargs: Any) -> None:
    """Alert on every mailbox or domain state change not made by a person (who knows already),
    and judge the domain of every mailbox taken out of service, whoever did it (the events
    collector pauses on a complaint, the sending engine on an authentication failure).

    Provider circuit changes are alerted by the circuit breaker itself (it knows the standby).
    """
    if not created or instance.actor.startswith(("user:", "config:")):
        return
    try:
        with transaction.atomic():
            alert_for_state_change(instance)
            if instance.mailbox is not None and instance.to_state in rules.OUT_OF_SERVICE:
                rules.evaluate_domain(instance.mailbox.domain)
    except Exception:
        log.exception("alert for state change %s failed", instance.pk)


def _figures_line(figures: dict[str, Any]) -> str:
    parts = []
    if "sent" in figures:
        parts.append(f"sent {figures['sent']}")
    if figures.get("refused"):
        parts.append(f"refused {figures['refused']}")
    if "bounce_rate" in figures:
        parts.append(f"bounces {figures['bounce_rate'] * 100:.1f}%")
    if figures.get("complained"):
        parts.append(f"complaints {figures['complained']}")
    if figures.get("blocked"):
        parts.append(f"blocks {figures['blocked']}")
    if "window_days" in figures and parts:
        parts.append(f"{figures['window_days']}d")
    return " · ".join(parts)


def alert_for_state_change(change: StateChange) -> None:
    key = f"state-change:{change.pk}"
    figures = {**change.figures, "actor": change.actor}
    if change.mailbox_id is not None and "sent" not in figures:
        # Changes made outside the rules (the collector's complaint pause, the engine's
        # authentication pause) carry no rates: the alert shows the window's.
        window = PoolSettings.load().thresholds.window_days
        recent = rollups.window_figures(days=window, mailbox_id=change.mailbox_id)
        figures = {**recent.to_dict(), "window_days": window, **figures}
    line = _figures_line(figures)
    details = f"\n{change.reason}" + (f"\n{line}" if line else "")
    if change.mailbox_id is not None:
        mailbox = change.mailbox
        assert mailbox is not None
        address = mailbox.address
        if change.to_state == Mailbox.State.PAUSED:
            raise_alert(
                key, Kind.MAILBOX_PAUSED, f"⏸ {address} paused{details}", "critical", figures
            )
        elif change.to_state == Mailbox.State.COOLDOWN:
            until = f" until {mailbox.cooldown_until:%Y-%m-%d}" if mailbox.cooldown_until else ""
            raise_alert(
                key,
                Kind.MAILBOX_COOLDOWN,
                f"🧊 {address} in cooldown{until}{details}",
                "critical",
                figures,
            )
        elif change.to_state == Mailbox.State.ACTIVE and change.from_state == Mailbox.State.WARMING:
            raise_alert(
                key,
                Kind.WARMUP_GRADUATED,
                f"🎓 {address} graduated from warm-up{details}",
                "info",
                figures,
            )
        elif (
            change.to_state == Mailbox.State.WARMING and change.from_state == Mailbox.State.COOLDOWN
        ):
            raise_alert(
                key, Kind.MAILBOX_REWARMING, f"🔁 {address} re-warming{details}", "info", figures
            )
        return
    if change.domain_id is not None:
        domain = change.domain
        assert domain is not None
        if change.to_state == Domain.State.COOLDOWN:
            until = f" until {domain.cooldown_until:%Y-%m-%d}" if domain.cooldown_until else ""
            raise_alert(
                key,
                Kind.DOMAIN_COOLDOWN,
                f"🧊 domain {domain.name} in cooldown{until}: all its mailboxes stop{details}",
                "critical",
                figures,
            )
        return
