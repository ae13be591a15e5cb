"""SES account watch: ``get_account`` read periodically, feeding alerts and the circuit breaker.

:func:`check_account` calls SES v2 ``GetAccount`` and judges the answer; the result is stored
in :class:`~outreach.alerts.models.ProviderHealth`, where the sending engine reads it
(:func:`is_healthy`) to fail over to the standby without calling SES itself.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings

from outreach.alerts.models import ProviderHealth
from outreach.alerts.outbox import Kind, raise_alert
from outreach.lib import clock, secrets
from outreach.pool.models import ProviderAccount

log = logging.getLogger(__name__)

# SES's own enforcement states in which mail must go elsewhere: PROBATION means AWS is
# reviewing the account (more bounces or complaints end in SHUTDOWN), SHUTDOWN means no
# sending at all.
UNHEALTHY_ENFORCEMENT = {"PROBATION", "SHUTDOWN"}
# Alert at 80% of the 24-hour quota (time to ask AWS for more); fail over at 95% so the last
# sends of the day do not bounce off the quota one by one.
QUOTA_WARNING_RATIO = 0.8
QUOTA_FAILOVER_RATIO = 0.95

_last_run: dict[int, float] = {}


@dataclass(frozen=True)
class AccountHealth:
    healthy: bool
    sending_enabled: bool
    enforcement_status: str
    production_access: bool
    max_24_hour_send: float
    sent_last_24_hours: float
    max_send_rate: float
    problems: list[str] = field(default_factory=list)

    @property
    def quota_used(self) -> float:
        if self.max_24_hour_send <= 0:
            return 0.0
        return self.sent_last_24_hours / self.max_24_hour_send

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "quota_used": round(self.quota_used, 4)}


def judge(response: dict[str, Any]) -> AccountHealth:
    """Pure: the health of an account from a ``GetAccount`` response."""
    quota = response.get("SendQuota") or {}
    enabled = bool(response.get("SendingEnabled", False))
    status = str(response.get("EnforcementStatus") or "HEALTHY").upper()
    max_24h = float(quota.get("Max24HourSend") or 0)
    sent_24h = float(quota.get("SentLast24Hours") or 0)
    problems = []
    if not enabled:
        problems.append("sending disabled (SendingEnabled false)")
    if status in UNHEALTHY_ENFORCEMENT:
        problems.append(f"enforcement status {status}")
    used = sent_24h / max_24h if max_24h > 0 else 0.0
    if used >= QUOTA_FAILOVER_RATIO:
        problems.append(f"24-hour quota {used:.0%} used ({sent_24h:.0f}/{max_24h:.0f})")
    return AccountHealth(
        healthy=not problems,
        sending_enabled=enabled,
        enforcement_status=status,
        production_access=bool(response.get("ProductionAccessEnabled", False)),
        max_24_hour_send=max_24h,
        sent_last_24_hours=sent_24h,
        max_send_rate=float(quota.get("MaxSendRate") or 0),
        problems=problems,
    )


def ses_client(account: ProviderAccount) -> Any:
    """A boto3 SES v2 client for the account: its region, and its credentials when it stores
    them as secret references (else boto3's own chain: environment, instance role)."""
    import boto3

    options: dict[str, Any] = {"region_name": account.settings.get("region") or "us-east-1"}
    refs = account.secrets or {}
    if refs.get("access_key_id") and refs.get("secret_access_key"):
        options["aws_access_key_id"] = secrets.resolve(refs["access_key_id"])
        options["aws_secret_access_key"] = secrets.resolve(refs["secret_access_key"])
    return boto3.client("sesv2", **options)


def check_account(account: ProviderAccount, client: Any = None) -> AccountHealth:
    """Call ``GetAccount`` for an SES account, store and return its health, raise alerts.

    Alerts: the account turning unhealthy (critical, once per distinct problem set), back to
    healthy (info), the 24-hour quota at ≥ 80% (warning, once a day). The provider's
    ``max_send_rate`` follows SES's MaxSendRate so the worker paces itself to it.
    """
    client = client or ses_client(account)
    result = judge(client.get_account())
    previous = ProviderHealth.objects.filter(provider_account=account).first()
    ProviderHealth.objects.update_or_create(
        provider_account=account,
        defaults={
            "healthy": result.healthy,
            "problems": result.problems,
            "details": result.to_dict(),
            "checked_at": clock.now(),
        },
    )
    if result.max_send_rate and account.max_send_rate != result.max_send_rate:
        ProviderAccount.objects.filter(pk=account.pk).update(max_send_rate=result.max_send_rate)
    figures = {"provider": account.name, **result.to_dict()}
    if not result.healthy:
        raise_alert(
            f"ses-account:{account.pk}:{'|'.join(result.problems)}",
            Kind.PROVIDER_PROBLEM,
            f"🚨 SES {account.name} not healthy: {'; '.join(result.problems)}\n"
            + (
                f"standby: {account.standby.name}"
                if account.standby
                else "no standby: its sends wait"
            ),
            "critical",
            figures,
        )
    elif previous is not None and not previous.healthy:
        raise_alert(
            f"ses-account:{account.pk}:recovered:{clock.now():%Y%m%d%H%M}",
            Kind.PROVIDER_RECOVERED,
            f"✅ SES {account.name} healthy again",
            "info",
            figures,
        )
    if result.quota_used >= QUOTA_WARNING_RATIO:
        raise_alert(
            f"ses-quota:{account.pk}:{clock.now():%Y-%m-%d}",
            Kind.PROVIDER_PROBLEM,
            f"📊 SES {account.name}: 24-hour quota {result.quota_used:.0%} used "
            f"({result.sent_last_24_hours:.0f}/{result.max_24_hour_send:.0f})",
            "warning",
            figures,
            quiet=timedelta(days=1),
        )
    return result


def is_healthy(account: ProviderAccount) -> bool:
    """The last known account health; True when it was never checked (not an SES account,
    or the watch has not run yet)."""
    return ProviderHealth.objects.filter(provider_account=account, healthy=False).exists() is False


def check_due_accounts() -> int:
    """Check every enabled SES account whose last check is older than
    ``OUTREACH_SES_WATCH_SECONDS`` (per process); returns how many were checked."""
    import time

    now = time.monotonic()
    checked = 0
    for account in ProviderAccount.objects.filter(kind=ProviderAccount.Kind.SES, enabled=True):
        if now - _last_run.get(account.pk, float("-inf")) < settings.OUTREACH_SES_WATCH_SECONDS:
            continue
        _last_run[account.pk] = now
        try:
            check_account(account)
        except Exception as exc:
            log.warning("SES account %s: get_account failed: %s", account.name, exc)
        checked += 1
    return checked
