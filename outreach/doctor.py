"""``outreach doctor``: what is wrong with this deployment, and how to fix it.

Each check is a function returning findings; a check that crashes is itself a critical finding,
so the doctor always finishes. Critical findings make the command exit non-zero.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Sum

log = logging.getLogger(__name__)

CRITICAL, WARNING, OK = "critical", "warning", "ok"


@dataclass(frozen=True)
class Finding:
    area: str
    severity: str  # critical | warning | ok
    message: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


Check = Callable[[], list[Finding]]


def check_settings() -> list[Finding]:
    found = []
    if settings.DEBUG:
        found.append(
            Finding(
                "settings",
                CRITICAL if settings.PRODUCTION else WARNING,
                "DEBUG is on: error pages show secrets",
                "unset DEBUG",
            )
        )
    if not settings.OUTREACH_BASE_URL.startswith("https://"):
        found.append(
            Finding(
                "settings",
                CRITICAL if settings.PRODUCTION else WARNING,
                f"OUTREACH_BASE_URL is {settings.OUTREACH_BASE_URL}: unsubscribe links must "
                "be https for the one-click unsubscribe of Gmail and Yahoo",
                "set OUTREACH_BASE_URL=https://your-host",
            )
        )
    if "*" in settings.ALLOWED_HOSTS:
        found.append(
            Finding(
                "settings",
                WARNING,
                "ALLOWED_HOSTS accepts any host",
                "list the host names in ALLOWED_HOSTS",
            )
        )
    if not settings.PRODUCTION:
        found.append(
            Finding(
                "settings",
                WARNING,
                f"OUTREACH_ENV is {settings.OUTREACH_ENV}",
                "set OUTREACH_ENV=production on a server",
            )
        )
    return found or [Finding("settings", OK, "settings look right for production")]


def check_database() -> list[Finding]:
    vendor = connection.vendor
    try:
        connection.ensure_connection()
        plan = MigrationExecutor(connection).migration_plan(
            MigrationExecutor(connection).loader.graph.leaf_nodes()
        )
    except DatabaseError as exc:
        return [
            Finding(
                "database",
                CRITICAL,
                f"{vendor}: not reachable: {exc}".strip(),
                "check DATABASE_URL and that the server runs",
            )
        ]
    if plan:
        return [
            Finding(
                "database", CRITICAL, f"{len(plan)} migration(s) not applied", "outreach migrate"
            )
        ]
    return [Finding("database", OK, f"{vendor}: reachable and migrated")]


def check_providers() -> list[Finding]:
    from outreach.pool.models import ProviderAccount
    from outreach.providers.base import SendError, build

    found = []
    accounts = list(ProviderAccount.objects.filter(enabled=True).order_by("name"))
    if not accounts:
        return [Finding("providers", WARNING, "no provider account", "outreach apply pool.toml")]
    for account in accounts:
        area = f"provider {account.name}"
        if account.kind == ProviderAccount.Kind.SANDBOX:
            found.append(
                Finding(
                    area,
                    WARNING,
                    "sandbox: mail is written to files, not sent",
                    "declare a google, microsoft, smtp, ses, mailgun or postmark provider",
                )
            )
            continue
        try:
            provider = build(account.kind, account.settings, account.secrets)
            health = provider.check_health()
            provider.close()
        except SendError as exc:
            found.append(
                Finding(
                    area,
                    CRITICAL,
                    f"credentials not usable: {exc}",
                    "fix the account's secrets in the pool file or environment",
                )
            )
            continue
        if health is None:
            found.append(Finding(area, OK, f"{account.kind}: credentials resolve"))
        elif health.healthy:
            found.append(Finding(area, OK, f"{account.kind}: healthy"))
        else:
            found.append(
                Finding(
                    area,
                    CRITICAL,
                    f"{account.kind}: {health.reason}",
                    "see the provider's console; outreach fails over meanwhile",
                )
            )
    return found


def check_cold_mail() -> list[Finding]:
    """Campaigns that may send cold mail through SES, Mailgun or Postmark, whose policies
    forbid it (outreach.campaigns.cold_mail)."""
    from outreach.campaigns.cold_mail import FIX, cold_mail_warning
    from outreach.campaigns.models import Campaign

    live = Campaign.objects.filter(
        state__in=[Campaign.State.DRAFT, Campaign.State.ACTIVE, Campaign.State.PAUSED]
    ).order_by("slug")
    found = []
    for campaign in live:
        warning = cold_mail_warning(campaign)
        if warning:
            found.append(Finding(f"campaign {campaign.slug}", WARNING, warning, FIX))
    return found or [
        Finding("cold mail", OK, "no campaign sends cold mail through SES, Mailgun or Postmark")
    ]


def check_webhooks() -> list[Finding]:
    secret = (settings.ANYMAIL or {}).get("WEBHOOK_SECRET")
    if not secret:
        # Critical whatever the providers: without it anyone may post a complaint and
        # suppress any address (in production the webhooks answer 503 until it is set).
        return [
            Finding(
                "webhooks",
                CRITICAL,
                "no webhook secret: webhooks accept anyone"
                + (" (refused with 503 in production)" if settings.PRODUCTION else ""),
                "set OUTREACH_WEBHOOK_SECRET=user:long-random-password",
            )
        ]
    return [Finding("webhooks", OK, "webhook secret set")]


def check_alerts(send_test: bool = False) -> list[Finding]:
    urls = settings.OUTREACH_ALERT_URLS
    found = check_telegram_bot()
    if not urls:
        return [
            Finding(
                "alerts",
                WARNING,
                "no alert channel: alerts go to the log only",
                "set OUTREACH_ALERT_URLS=tgram://BOT_TOKEN/CHAT_ID",
            ),
            *found,
        ]
    if not send_test:
        return [
            Finding("alerts", OK, f"{len(urls)} channel(s) configured (--test-alert to try)"),
            *found,
        ]
    from outreach.alerts import delivery

    failed = [name for name, outcome in delivery.test_channels() if not outcome.ok]
    if not failed:
        return [Finding("alerts", OK, "test alert delivered on every channel"), *found]
    return [
        Finding(
            "alerts",
            CRITICAL,
            f"test alert could not be delivered: {', '.join(failed)}",
            "check OUTREACH_ALERT_URLS (outreach alerts --test says why each failed)",
        ),
        *found,
    ]


def check_telegram_bot() -> list[Finding]:
    """The Telegram bot, when it has a token: whom it answers, and the strangers it ignored."""
    from outreach.telegram.models import IgnoredChat

    if not settings.OUTREACH_TELEGRAM_BOT_TOKEN:
        return []
    if not settings.OUTREACH_TELEGRAM_CHAT_IDS:
        return [
            Finding(
                "telegram bot",
                WARNING,
                "no allowed chat: the bot ignores every message",
                "set OUTREACH_TELEGRAM_CHAT_IDS (docs/telegram.md: finding a chat id)",
            )
        ]
    ignored = IgnoredChat.objects.aggregate(n=Sum("messages"))["n"] or 0
    chats = len(settings.OUTREACH_TELEGRAM_CHAT_IDS)
    return [
        Finding(
            "telegram bot",
            OK,
            f"answers {chats} chat(s); {ignored} message(s) from other chats ignored",
        )
    ]


def check_dns() -> list[Finding]:
    from outreach.pool.models import Domain

    try:
        from outreach.pool.dns import latest_check
    except ImportError:  # pragma: no cover - the DNS checks ship with the pool app
        return []
    found = []
    for domain in Domain.objects.exclude(state="retired").select_related("provider"):
        if domain.provider.kind == "sandbox":
            continue
        check = latest_check(domain)
        area = f"dns {domain.name}"
        if check is None:
            found.append(
                Finding(area, WARNING, "never checked", f"outreach dns check {domain.name}")
            )
        elif check.blocks_sending:
            found.append(
                Finding(
                    area,
                    CRITICAL,
                    "critical DNS failure blocks sending",
                    f"outreach dns plan {domain.name}",
                )
            )
        else:
            found.append(Finding(area, OK, "authentication records pass"))
    return found


def check_loops() -> list[Finding]:
    from outreach.heartbeats import stale_loops
    from outreach.models import Heartbeat

    stale = stale_loops()
    found = [
        Finding(
            f"loop {s.name}",
            CRITICAL,
            f"silent for {s.silent_seconds}s on {s.host} (pid {s.pid})",
            "restart outreach run (or the loop's service) and read its log",
        )
        for s in stale
    ]
    running = set(Heartbeat.objects.filter(running=True).values_list("name", flat=True))
    if not running and not stale:
        found.append(
            Finding(
                "loops",
                WARNING,
                "no engine loop is running",
                "start outreach run",
            )
        )
    elif not stale:
        found.append(Finding("loops", OK, f"running: {', '.join(sorted(running))}"))
    return found


CHECKS: list[tuple[str, Check]] = [
    ("settings", check_settings),
    ("database", check_database),
    ("providers", check_providers),
    ("cold mail", check_cold_mail),
    ("webhooks", check_webhooks),
    ("alerts", check_alerts),
    ("dns", check_dns),
    ("loops", check_loops),
]


def run_checks(*, send_test_alert: bool = False) -> list[Finding]:
    findings: list[Finding] = []
    database_ok = True
    for name, check in CHECKS:
        if name != "settings" and name != "database" and not database_ok:
            continue  # every other check reads the database
        try:
            result = check_alerts(send_test_alert) if name == "alerts" else check()
        except Exception as exc:
            log.exception("doctor: check %s crashed", name)
            result = [Finding(name, CRITICAL, f"the check itself failed: {exc}")]
        if name == "database":
            database_ok = all(f.severity != CRITICAL for f in result)
        findings.extend(result)
    return findings
