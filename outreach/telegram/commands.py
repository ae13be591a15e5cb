"""What the bot answers to each command of an allow-listed chat.

Reads go through the owners the dashboard reads (:mod:`outreach.scheduler.status` for today's
sends against capacity, :mod:`outreach.metrics.rollups` for today's figures); changes go
through :mod:`outreach.dashboard.actions`, which writes the audit log, with the Telegram user
as the actor. A resume is two steps: ``/resume`` shows the evidence that paused the mailbox
and what holds its domain, ``/confirm`` acts on it. The resume awaiting its confirm is kept in
the database (:class:`outreach.telegram.models.PendingResume`), so a restart of the bot loop
between the two steps loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from outreach.alerts.models import Alert
from outreach.dashboard.actions import ActionError, acknowledge_alert, act_on_mailbox
from outreach.lib import clock
from outreach.lib.telegram_api import Incoming
from outreach.metrics.rollups import window_figures
from outreach.pool.models import Domain, Mailbox, StateChange
from outreach.scheduler.capacity import domain_holds
from outreach.scheduler.status import pool_status
from outreach.telegram.models import PendingResume

# A /resume waits this long for its /confirm; later, the evidence shown may be stale.
CONFIRM_WITHIN = timedelta(minutes=10)
# Telegram refuses messages over 4096 characters; lists are cut before that.
MAX_LINES = 40

HELP = """outreach bot commands:
/status — today's sends against capacity, paused mailboxes with their reasons
/today — today's sends, deliveries, replies, bounces, complaints, open alerts
/pause ADDRESS|DOMAIN reason — pause a mailbox, or every sending mailbox of a domain
/resume ADDRESS [reason] — show why it was stopped, then /confirm to resume it
/ack ALERT — acknowledge alert number ALERT"""

# The states a mailbox is stopped in, for /status.
STOPPED = (Mailbox.State.PAUSED, Mailbox.State.COOLDOWN)
PAUSABLE = (Mailbox.State.WARMING, Mailbox.State.ACTIVE)


def _when(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC"


def _last_change(mailbox: Mailbox) -> StateChange | None:
    return (
        StateChange.objects.filter(mailbox=mailbox, to_state=mailbox.state)
        .order_by("-at", "-id")
        .first()
    )


def _cut(lines: list[str]) -> list[str]:
    if len(lines) <= MAX_LINES:
        return lines
    return [*lines[:MAX_LINES], f"... and {len(lines) - MAX_LINES} more (see the dashboard)"]


class Commands:
    """Answers one allow-listed message at a time."""

    def __init__(self) -> None:
        self.handlers: dict[str, Callable[[Incoming, list[str]], str]] = {
            "start": self.help,
            "help": self.help,
            "status": self.status,
            "today": self.today,
            "pause": self.pause,
            "resume": self.resume,
            "confirm": self.confirm,
            "ack": self.ack,
        }

    def answer(self, message: Incoming) -> str:
        words = message.text.split()
        if not words or not words[0].startswith("/"):
            return "Commands start with /. " + HELP
        # "/status@outreach_bot" in a group names the bot it is for.
        name = words[0][1:].split("@", 1)[0].lower()
        handler = self.handlers.get(name)
        if handler is None:
            return f"Unknown command /{name}.\n{HELP}"
        try:
            return handler(message, words[1:])
        except ActionError as exc:
            return f"Nothing changed: {exc}"

    def help(self, message: Incoming, args: list[str]) -> str:
        return HELP

    def status(self, message: Incoming, args: list[str]) -> str:
        status = pool_status()
        lines = [f"Today: {status.sent_today} sent of {status.capacity_today} capacity."]
        stopped = Mailbox.objects.filter(state__in=STOPPED).order_by("address")
        if not stopped:
            lines.append("No mailbox is paused.")
        else:
            lines.append(f"Stopped mailboxes ({len(stopped)}):")
            for mailbox in stopped:
                change = _last_change(mailbox)
                why = f"{change.reason} (since {_when(change.at)})" if change else "no reason"
                lines.append(f"• {mailbox.address} {mailbox.state}: {why}")
        names = dict(Domain.objects.values_list("pk", "name"))
        lines += [f"• domain {names[pk]}: {hold}" for pk, hold in sorted(domain_holds().items())]
        return "\n".join(_cut(lines))

    def today(self, message: Incoming, args: list[str]) -> str:
        figures = window_figures(days=1)
        status = pool_status()
        since = clock.now() - timedelta(days=1)
        open_alerts = (
            Alert.objects.filter(acknowledged_at__isnull=True, created_at__gte=since)
            .exclude(severity=Alert.Severity.INFO)
            .order_by("-created_at")
        )
        lines = [
            f"Today: {figures.sent} sent of {status.capacity_today} capacity, "
            f"{figures.delivered} delivered, {figures.replied} replied, "
            f"{figures.bounced_hard} hard bounces, {figures.complained} complaints, "
            f"{figures.unsubscribed} unsubscribes.",
            f"Open alerts of the last 24 h: {open_alerts.count()}",
        ]
        lines += [
            f"#{a.pk} [{a.severity}] {a.text.splitlines()[0][:120]}" for a in open_alerts[:10]
        ]
        return "\n".join(lines)

    def pause(self, message: Incoming, args: list[str]) -> str:
        if len(args) < 2:
            return "Usage: /pause ADDRESS|DOMAIN reason (the reason goes into the audit log)"
        target, reason = args[0].lower(), " ".join(args[1:])
        if "@" in target:
            mailbox = Mailbox.objects.filter(address__iexact=target).first()
            if mailbox is None:
                return f"No mailbox {target}."
            act_on_mailbox(mailbox, "pause", reason=reason, actor=message.sender, via="telegram")
            return f"Paused {mailbox.address}: {reason}"
        domain = Domain.objects.filter(name__iexact=target).first()
        if domain is None:
            return f"No mailbox or domain {target}."
        paused = []
        for mailbox in domain.mailboxes.filter(state__in=PAUSABLE).order_by("address"):
            act_on_mailbox(mailbox, "pause", reason=reason, actor=message.sender, via="telegram")
            paused.append(mailbox.address)
        if not paused:
            return f"No mailbox of {domain.name} was sending: nothing to pause."
        return f"Paused {len(paused)} mailbox(es) of {domain.name}: {', '.join(paused)}"

    def resume(self, message: Incoming, args: list[str]) -> str:
        if not args:
            return "Usage: /resume ADDRESS [reason]"
        mailbox = Mailbox.objects.select_related("domain").filter(address__iexact=args[0]).first()
        if mailbox is None:
            return f"No mailbox {args[0]}."
        if mailbox.state not in STOPPED:
            return f"{mailbox.address} is {mailbox.state}: nothing to resume."
        lines = [f"{mailbox.address} is {mailbox.state}."]
        change = _last_change(mailbox)
        if change is not None:
            lines.append(f"Since {_when(change.at)}, by {change.actor}: {change.reason}")
            evidence = {k: v for k, v in change.figures.items() if k != "via"}
            if evidence:
                lines.append("Evidence: " + ", ".join(f"{k} {v}" for k, v in evidence.items()))
        if mailbox.state == Mailbox.State.COOLDOWN:
            lines.append("Resuming a cooldown restarts its warm-up at the re-entry day.")
        hold = domain_holds().get(mailbox.domain_id)
        if hold:
            lines.append(f"Its domain {mailbox.domain.name} cannot send: {hold}.")
            lines.append("Resumed, the mailbox still sends nothing until that is over.")
        reason = " ".join(args[1:]) or "resumed from Telegram"
        now = clock.now()
        # The chat's latest /resume replaces an earlier one; expired ones of any chat go too.
        PendingResume.objects.filter(expires_at__lt=now).delete()
        PendingResume.objects.update_or_create(
            chat_id=message.chat_id,
            defaults={
                "mailbox": mailbox,
                "state": mailbox.state,
                "reason": reason[:500],
                "expires_at": now + CONFIRM_WITHIN,
            },
        )
        minutes = int(CONFIRM_WITHIN.total_seconds() // 60)
        lines.append(f"Send /confirm within {minutes} minutes to resume it.")
        return "\n".join(lines)

    def confirm(self, message: Incoming, args: list[str]) -> str:
        pending = (
            PendingResume.objects.select_related("mailbox").filter(chat_id=message.chat_id).first()
        )
        # Taken by deleting it: one /confirm acts once, even if it arrives twice.
        taken = pending is not None and PendingResume.objects.filter(pk=pending.pk).delete()[0]
        if pending is None or not taken or pending.expires_at < clock.now():
            return "Nothing to confirm: send /resume ADDRESS first."
        mailbox = pending.mailbox
        if mailbox.state != pending.state:
            return f"{mailbox.address} is now {mailbox.state}: nothing changed; look again."
        change = act_on_mailbox(
            mailbox, "resume", reason=pending.reason, actor=message.sender, via="telegram"
        )
        return f"Resumed {mailbox.address}: {change.from_state} → {change.to_state}."

    def ack(self, message: Incoming, args: list[str]) -> str:
        if len(args) != 1 or not args[0].lstrip("#").isdigit():
            return "Usage: /ack ALERT (the alert's number, as in /today)"
        alert_id = int(args[0].lstrip("#"))
        if acknowledge_alert(alert_id, actor=message.sender, via="telegram"):
            return f"Alert #{alert_id} acknowledged."
        if Alert.objects.filter(pk=alert_id).exists():
            return f"Alert #{alert_id} was already acknowledged."
        return f"No alert #{alert_id}."
