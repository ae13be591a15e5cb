"""Alerting: health rules applied to the pool, and alerts delivered through Apprise.

Alerts are stored in the outbox and delivered by the ``outreach alerts`` loop. Packages below
alerts raise them through :func:`outreach.lib.alerting.raise_alert` (the outbox registers itself
there in ``AlertsConfig.ready``); ``raise_alert`` here serves the entry points above.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import timedelta

    from outreach.alerts.models import Alert


def raise_alert(
    key: str,
    kind: str,
    text: str,
    severity: str = "warning",
    figures: dict[str, Any] | None = None,
    *,
    quiet: timedelta | None = None,
) -> Alert | None:
    """Store an alert in the outbox unless the same ``key`` was raised within its quiet period.

    See :func:`outreach.alerts.outbox.raise_alert`.
    """
    from outreach.alerts.outbox import raise_alert as _raise

    return _raise(key, kind, text, severity, figures, quiet=quiet)
