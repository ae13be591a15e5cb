"""Delivery of the alert outbox through Apprise, with retries, backoff and permanent failures.

One alert is delivered at a time (the ``outreach alerts`` loop). Apprise reports only success or
failure, so the reason of a failure is read from the log lines it writes during the call
(:class:`apprise.LogCapture`): the HTTP status and the provider's response body. Telegram's
``429`` carries ``parameters.retry_after`` (honoured as the next attempt); ``400 chat not found``,
``403 bot was blocked by the user`` and ``401 Unauthorized`` cannot succeed later and are marked
failed at once, with the reason shown on the dashboard.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import timedelta

import apprise
from django.conf import settings
from django.db.models import Q

from outreach.alerts.models import Alert
from outreach.lib import clock
from outreach.lib.telegram_api import BotApi, BotApiError

log = logging.getLogger(__name__)

# While one process delivers an alert, others leave it alone for this long; a process that
# dies mid-delivery only delays the alert by the lease.
LEASE = timedelta(seconds=120)
# Backoff between attempts: 30 s doubling, at most one hour (a channel outage rarely lasts
# longer, and alerts older than a few hours lose their point).
BACKOFF_BASE_SECONDS = 30
BACKOFF_MAX_SECONDS = 3600
# HTTP statuses after which the same request cannot succeed (bad chat id, blocked bot, bad
# token, unknown endpoint).
PERMANENT_STATUSES = {400, 401, 403, 404}

_STATUS = re.compile(r"error=(\d{3})")
_RETRY_AFTER = re.compile(r"retry_after\W+(\d+)|retry after (\d+)", re.IGNORECASE)
_SEVERITY_TYPE: dict[str, apprise.NotifyType] = {
    Alert.Severity.INFO: apprise.NotifyType.INFO,
    Alert.Severity.WARNING: apprise.NotifyType.WARNING,
    Alert.Severity.CRITICAL: apprise.NotifyType.FAILURE,
}


@dataclass(frozen=True)
class Outcome:
    ok: bool
    permanent: bool = False
    retry_after: int | None = None
    error: str = ""


def fingerprint(url: str) -> str:
    """A stable, non-secret name for a channel URL (the URL itself holds the bot token)."""
    return hashlib.sha256(url.encode()).hexdigest()[:12]


def classify(log_text: str) -> Outcome:
    """Read why an Apprise notification failed from what Apprise logged during it."""
    status_match = _STATUS.search(log_text)
    status = int(status_match.group(1)) if status_match else None
    retry_match = _RETRY_AFTER.search(log_text)
    retry_after = int(retry_match.group(1) or retry_match.group(2)) if retry_match else None
    lines = [ln for ln in log_text.splitlines() if " - WARNING - " in ln or " - ERROR - " in ln]
    error = (lines[-1].split(" - ", 2)[-1] if lines else log_text.strip()[-300:]) or "failed"
    if status == 429:
        return Outcome(False, retry_after=retry_after or BACKOFF_BASE_SECONDS, error=error)
    if status in PERMANENT_STATUSES:
        return Outcome(False, permanent=True, error=error)
    return Outcome(False, error=error)


def notify(url: str, title: str, body: str, severity: str) -> Outcome:
    """Send one notification to one Apprise URL."""
    channel = apprise.Apprise()
    if not channel.add(url):
        return Outcome(False, permanent=True, error="not a valid Apprise URL")
    with apprise.LogCapture(level=logging.DEBUG) as captured:
        # TEXT: Apprise escapes it for channels that parse HTML or Markdown (Telegram), so a
        # "<" in a reason cannot turn into a 400 "can't parse entities".
        ok = channel.notify(
            body=body,
            title=title,
            notify_type=_SEVERITY_TYPE.get(severity, apprise.NotifyType.INFO),
            body_format=apprise.NotifyFormat.TEXT,
        )
        text = captured.getvalue()
    return Outcome(True) if ok else classify(text)


def title_of(alert: Alert) -> str:
    marks = {"critical": "🔴", "warning": "🟠", "info": "🔵"}
    return f"{marks.get(alert.severity, '')} outreach: {alert.kind.replace('_', ' ')}".strip()


def _claim_due() -> Alert | None:
    now = clock.now()
    due = (
        Alert.objects.filter(state=Alert.State.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "id")
        .first()
    )
    if due is None:
        return None
    # Race: two delivery loops picking the same alert. Only the one whose UPDATE still sees
    # the old next_attempt_at owns it for the lease.
    claimed = Alert.objects.filter(
        Q(pk=due.pk), Q(state=Alert.State.PENDING), Q(next_attempt_at=due.next_attempt_at)
    ).update(next_attempt_at=now + LEASE)
    return due if claimed == 1 else None


def deliver_one() -> bool:
    """Deliver the oldest due alert; False when there was none (the loop then sleeps)."""
    alert = _claim_due()
    if alert is None:
        return False
    urls: list[str] = list(settings.OUTREACH_ALERT_URLS)
    now = clock.now()
    if not urls:
        level = logging.WARNING if alert.severity != Alert.Severity.INFO else logging.INFO
        log.log(level, "ALERT %s: %s", alert.kind, alert.text)
        _finish(alert, Alert.State.SENT, now)
        return True
    delivered = set(alert.delivered_to)
    failures: list[Outcome] = []
    for url in urls:
        if fingerprint(url) in delivered:
            continue
        outcome = notify(url, title_of(alert), alert.text, alert.severity)
        if outcome.ok:
            delivered.add(fingerprint(url))
        else:
            log.warning("alert %s to %s: %s", alert.pk, fingerprint(url), outcome.error)
            failures.append(outcome)
    alert.delivered_to = sorted(delivered)
    alert.attempts += 1
    if not failures:
        _finish(alert, Alert.State.SENT, now)
    elif (
        all(f.permanent for f in failures) or alert.attempts >= settings.OUTREACH_ALERT_MAX_ATTEMPTS
    ):
        alert.last_error = "; ".join(f.error for f in failures)[:2000]
        _finish(alert, Alert.State.FAILED, None)
    else:
        transient = [f for f in failures if not f.permanent]
        backoff = min(BACKOFF_BASE_SECONDS * 2 ** (alert.attempts - 1), BACKOFF_MAX_SECONDS)
        wait = max([backoff, *(f.retry_after or 0 for f in transient)])
        alert.last_error = "; ".join(f.error for f in failures)[:2000]
        alert.next_attempt_at = now + timedelta(seconds=wait)
        alert.save(update_fields=["attempts", "delivered_to", "last_error", "next_attempt_at"])
    return True


def _finish(alert: Alert, state: str, sent_at: object) -> None:
    alert.state = state
    alert.sent_at = sent_at  # type: ignore[assignment]
    alert.save(update_fields=["state", "sent_at", "attempts", "delivered_to", "last_error"])


def test_channels() -> list[tuple[str, Outcome]]:
    """Send a test alert on every channel: each Apprise URL, and the Telegram bot's chats.
    Returns each channel's name (without its secrets) and how it went; nothing is stored."""
    title = "🔵 outreach: test alert"
    body = f"A test alert sent at {clock.now():%Y-%m-%d %H:%M} UTC: this channel works."
    results = []
    for index, url in enumerate(settings.OUTREACH_ALERT_URLS, 1):
        # The URL holds the channel's secret (a bot token, a webhook key): name it by scheme.
        name = f"alert URL {index} ({url.split('://', 1)[0]}, {fingerprint(url)})"
        results.append((name, notify(url, title, body, Alert.Severity.INFO)))
    if settings.OUTREACH_TELEGRAM_BOT_TOKEN:
        bot = BotApi(settings.OUTREACH_TELEGRAM_API_URL, settings.OUTREACH_TELEGRAM_BOT_TOKEN)
        for chat_id in settings.OUTREACH_TELEGRAM_CHAT_IDS:
            try:
                bot.send_message(chat_id, f"{title}\n{body}")
                outcome = Outcome(True)
            except BotApiError as exc:
                outcome = Outcome(False, permanent=exc.code in PERMANENT_STATUSES, error=str(exc))
            results.append((f"telegram bot, chat {chat_id}", outcome))
    return results
