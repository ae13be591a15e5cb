"""Raising an alert from any layer.

The alert outbox lives in ``outreach.alerts``, above the packages that notice problems (the
pool's DNS checks, campaigns, events, the sending engine). They call :func:`raise_alert` here;
``AlertsConfig.ready`` registers the outbox as the one sink. The alert kinds are defined here,
once, so that callers below ``alerts`` can name them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Protocol

from django.db import models


class Kind:
    """The alert kinds (``Alert.kind``)."""

    MAILBOX_PAUSED = "mailbox_paused"
    MAILBOX_COOLDOWN = "mailbox_cooldown"
    MAILBOX_REWARMING = "mailbox_rewarming"
    DOMAIN_COOLDOWN = "domain_cooldown"
    BOUNCE_WARNING = "bounce_warning"
    COMPLAINT_WARNING = "complaint_warning"
    DOMAIN_CAP_NEAR = "domain_cap_near"
    DOMAIN_CAP_REACHED = "domain_cap_reached"
    GLOBAL_CAP_REACHED = "global_cap_reached"
    PROVIDER_PROBLEM = "provider_problem"
    PROVIDER_RECOVERED = "provider_recovered"
    WARMUP_GRADUATED = "warmup_graduated"
    WEBHOOKS_SILENT = "webhooks_silent"
    WEBHOOKS_REFUSED = "webhooks_refused"
    IMAP_FAILING = "imap_failing"
    LEAD_INTERESTED = "lead_interested"  # a reply labeled interested (outreach.events.replies)
    DIGEST = "digest"


class Severity(models.TextChoices):
    """The alert severities (``Alert.severity``)."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Sink(Protocol):
    """The outbox's ``raise_alert``: the stored alert, or None while the key is quiet."""

    def __call__(
        self,
        key: str,
        kind: str,
        text: str,
        severity: str,
        figures: dict[str, Any] | None,
        *,
        quiet: timedelta | None,
    ) -> object: ...


_sink: Sink | None = None


def register_sink(sink: Sink) -> None:
    """Called once by ``AlertsConfig.ready``: where raised alerts go."""
    global _sink
    _sink = sink


def raise_alert(
    key: str,
    kind: str,
    text: str,
    severity: str = Severity.WARNING,
    figures: dict[str, Any] | None = None,
    *,
    quiet: timedelta | None = None,
) -> object:
    """Store an alert in the outbox unless ``key`` was raised within its quiet period.

    Returns what the sink returns (the stored ``Alert``, or None while the key is quiet). See
    :func:`outreach.alerts.outbox.raise_alert`.
    """
    if _sink is None:
        raise RuntimeError("no alert sink registered: is outreach.alerts in INSTALLED_APPS?")
    return _sink(key, kind, text, severity, figures, quiet=quiet)
