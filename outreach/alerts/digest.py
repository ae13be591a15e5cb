"""The daily digest: yesterday per domain and mailbox, state changes, and the month's cost."""

from __future__ import annotations

from datetime import date, timedelta

from django.conf import settings

from outreach.alerts.models import Alert
from outreach.alerts.outbox import Kind, raise_alert
from outreach.lib import clock
from outreach.metrics import rollups
from outreach.metrics.cost import month_cost
from outreach.metrics.figures import Figures
from outreach.pool.models import Domain, Mailbox, StateChange


def _line(figures: Figures) -> str:
    # Refused messages are attempts that bounced: left out, a mailbox whose every message is
    # refused would read "0 sent · 0.0% bounced".
    refused = f" · {figures.refused} refused" if figures.refused else ""
    text = f"{figures.sent} sent{refused} · {figures.bounce_rate * 100:.1f}% bounced"
    if figures.complained:
        text += f" · {figures.complained} complaint(s)"
    if figures.replied:
        text += f" · {figures.replied} repl{'y' if figures.replied == 1 else 'ies'}"
    return text


def build(day: date) -> str:
    """The digest text for ``day``: short lines, one per domain and mailbox."""
    tz = rollups.pool_timezone()
    by_domain = rollups.figures_by("domain_id", first=day, last=day)
    by_mailbox = rollups.figures_by("mailbox_id", first=day, last=day)
    pool = sum(by_domain.values(), Figures())
    lines = [f"📋 {day:%a %d %b}: {_line(pool)}"]
    mailboxes = Mailbox.objects.exclude(state=Mailbox.State.RETIRED).select_related("domain")
    per_domain: dict[int, list[Mailbox]] = {}
    for mailbox in mailboxes:
        per_domain.setdefault(mailbox.domain_id, []).append(mailbox)
    for domain in Domain.objects.exclude(state=Domain.State.RETIRED):
        state = "" if domain.state == Domain.State.ACTIVE else f" [{domain.state}]"
        lines.append(f"\n{domain.name}{state}: {_line(by_domain.get(domain.pk, Figures()))}")
        for mailbox in per_domain.get(domain.pk, []):
            local = mailbox.address.split("@")[0]
            state = "" if mailbox.state == Mailbox.State.ACTIVE else f" [{mailbox.state}]"
            lines.append(f"  {local}{state}: {_line(by_mailbox.get(mailbox.pk, Figures()))}")
    start, end = rollups.day_bounds(day, tz)
    changes = StateChange.objects.filter(at__gte=start, at__lt=end).select_related(
        "mailbox", "domain", "provider"
    )
    if changes:
        lines.append("\nState changes:")
        for change in changes.order_by("at")[:20]:
            subject = change.mailbox or change.domain or change.provider or "database"
            lines.append(f"  {subject}: {change.from_state}→{change.to_state} ({change.reason})")
    cost = month_cost(day)
    budget = f" (budget ${cost.budget})" if cost.budget is not None else ""
    lines.append(
        f"\n💰 month to date ${cost.total} · projected ${cost.projection}{budget}"
        + (" ⚠️ over budget" if cost.over_budget else "")
    )
    return "\n".join(lines)


def send_if_due() -> Alert | None:
    """Raise yesterday's digest once the pool-local hour reaches ``OUTREACH_DIGEST_HOUR``."""
    hour = settings.OUTREACH_DIGEST_HOUR
    if hour < 0:
        return None
    tz = rollups.pool_timezone()
    local = clock.now().astimezone(tz)
    if local.hour < hour:
        return None
    key = f"digest:{local.date()}"
    if Alert.objects.filter(key=key).exists():
        return None
    yesterday = local.date() - timedelta(days=1)
    return raise_alert(key, Kind.DIGEST, build(yesterday), "info", quiet=timedelta(days=2))
