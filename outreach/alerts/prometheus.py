"""The alert families of /metrics (registered with :mod:`outreach.metrics.prometheus`)."""

from __future__ import annotations

from django.db.models import Count

from outreach.alerts.models import Alert, ProviderHealth
from outreach.metrics.prometheus import family


def families() -> list[str]:
    out: list[str] = []
    alerts = Alert.objects.values("state").annotate(n=Count("id")).order_by("state")
    out += family(
        "outreach_alerts",
        "gauge",
        "Alerts in the outbox by delivery state.",
        [({"state": row["state"]}, row["n"]) for row in alerts],
    )
    out += family(
        "outreach_provider_healthy",
        "gauge",
        "1 when the provider account's last check was healthy.",
        [
            ({"provider": h.provider_account.name}, 1 if h.healthy else 0)
            for h in ProviderHealth.objects.select_related("provider_account")
        ],
    )
    return out
