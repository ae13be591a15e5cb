"""The alert outbox: alerts are stored first and delivered by the ``outreach alerts`` loop."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from outreach.alerts.models import Alert, AlertKey
from outreach.lib import clock
from outreach.lib.alerting import Kind

__all__ = ["Kind", "quiet_keys", "quiet_period", "raise_alert"]

log = logging.getLogger(__name__)


def quiet_period() -> timedelta:
    return timedelta(minutes=settings.OUTREACH_ALERT_QUIET_MINUTES)


def quiet_keys(keys: list[str]) -> set[str]:
    """Those of ``keys`` whose quiet period has not ended: one read, for a caller that would
    otherwise try :func:`raise_alert` on many keys that are mostly quiet (its answer for a
    quiet key is the same None, after a write attempt each)."""
    now = clock.now()
    return set(
        AlertKey.objects.filter(key__in=keys, quiet_until__gt=now).values_list("key", flat=True)
    )


def raise_alert(
    key: str,
    kind: str,
    text: str,
    severity: str = Alert.Severity.WARNING,
    figures: dict[str, Any] | None = None,
    *,
    quiet: timedelta | None = None,
) -> Alert | None:
    """Store an alert unless ``key`` is still quiet; returns the alert, or None when suppressed.

    The quiet period (``OUTREACH_ALERT_QUIET_MINUTES``, or ``quiet``) starts when the alert is
    raised. Keys name the subject and the problem ("bounce-warning:mailbox:12"); put the day
    in the key for once-a-day alerts.
    """
    now = clock.now()
    until = now + (quiet if quiet is not None else quiet_period())
    with transaction.atomic():
        # Race: two processes raising the same key at once. The conditional UPDATE lets only
        # one of them move an expired quiet period; the unique key lets only one INSERT.
        claimed = AlertKey.objects.filter(key=key, quiet_until__lte=now).update(quiet_until=until)
        if not claimed:
            try:
                with transaction.atomic():
                    AlertKey.objects.create(key=key, quiet_until=until)
            except IntegrityError:
                log.debug("alert %s is quiet", key)
                return None
        alert = Alert.objects.create(
            key=key[:200],
            kind=kind,
            severity=severity,
            text=text,
            figures=figures or {},
            next_attempt_at=now,
            created_at=now,
        )
    log.info("alert raised: [%s] %s", severity, text.replace("\n", " | "))
    return alert
