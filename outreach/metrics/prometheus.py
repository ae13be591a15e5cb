"""The Prometheus text exposition of /metrics: sends, events, states and cap use.

Counters are sums over all rollups (monotonic while rollups are only added to); gauges are
read now. A handful of grouped queries, whatever the history length.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from django.db.models import Count, Sum

from outreach.campaigns.models import Campaign, Message, Step, Variant
from outreach.events.models import RefusedWebhook
from outreach.lib import clock
from outreach.metrics.figures import COUNTERS
from outreach.metrics.models import DailyRollup
from outreach.pool.models import Domain, Mailbox, PoolSettings, ProviderAccount
from outreach.scheduler.models import DailyCounter

Sample = tuple[dict[str, str], float]

# Families of the packages above metrics (alerts: the outbox and provider health), registered
# in their AppConfig.ready with :func:`register_families`.
_more_families: list[Callable[[], list[str]]] = []


def register_families(families: Callable[[], list[str]]) -> None:
    if families not in _more_families:
        _more_families.append(families)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def family(name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        number = repr(float(value)) if isinstance(value, float) else str(int(value))
        lines.append(f"{name}{{{label_text}}} {number}" if label_text else f"{name} {number}")
    return lines


def render() -> str:
    pool = PoolSettings.load()
    mailboxes = {m.pk: m for m in Mailbox.objects.select_related("domain")}
    domains = {d.pk: d for d in Domain.objects.all()}
    providers = {p.pk: p for p in ProviderAccount.objects.all()}
    out = _rollup_families(mailboxes, providers)
    out += _state_families(mailboxes, domains)
    out += _cap_families(pool, mailboxes, domains)
    out += _message_families()
    for families in _more_families:
        out += families()
    return "\n".join(out) + "\n"


def _rollup_families(
    mailboxes: dict[int, Mailbox], providers: dict[int, ProviderAccount]
) -> list[str]:
    """The rollups' counters: sends, failures and events per mailbox and provider, and the
    campaigns' per step and variant."""
    per_mailbox = (
        DailyRollup.objects.values("mailbox_id", "provider_id")
        .annotate(**{name: Sum(name) for name in COUNTERS})
        .order_by("mailbox_id", "provider_id")
    )
    counters: dict[str, list[Sample]] = {name: [] for name in COUNTERS}
    for row in per_mailbox:
        mailbox = mailboxes.get(row["mailbox_id"])
        provider = providers.get(row["provider_id"])
        labels = {
            "mailbox": mailbox.address if mailbox else "",
            "domain": mailbox.domain.name if mailbox else "",
            "provider": provider.name if provider else "",
        }
        for name in COUNTERS:
            counters[name].append((labels, row[name] or 0))

    out: list[str] = []
    out += family(
        "outreach_sent_total", "counter", "Messages accepted by a provider.", counters["sent"]
    )
    out += family(
        "outreach_send_failed_total", "counter", "Permanent send failures.", counters["failed"]
    )
    event_samples = [
        ({**labels, "type": name}, value)
        for name in COUNTERS
        if name not in ("sent", "failed", "transient")
        for labels, value in counters[name]
    ]
    out += family(
        "outreach_events_total", "counter", "Events by type (rollup counters).", event_samples
    )
    out += family(
        "outreach_campaign_events_total",
        "counter",
        "Sends, replies, opens and clicks per campaign, step and variant; opened_human and"
        " clicked_human are the estimates of people (opened and clicked count every visitor).",
        _campaign_samples(),
    )
    return out


def _state_families(mailboxes: dict[int, Mailbox], domains: dict[int, Domain]) -> list[str]:
    """The state each mailbox and each domain is in."""
    out = family(
        "outreach_mailbox_state",
        "gauge",
        "1 for the state each mailbox is in.",
        [
            ({"mailbox": m.address, "domain": m.domain.name, "state": m.state}, 1)
            for m in mailboxes.values()
        ],
    )
    out += family(
        "outreach_domain_state",
        "gauge",
        "1 for the state each domain is in.",
        [({"domain": d.name, "state": d.state}, 1) for d in domains.values()],
    )
    return out


def _cap_families(
    pool: PoolSettings, mailboxes: dict[int, Mailbox], domains: dict[int, Domain]
) -> list[str]:
    """Today's caps and the units of each used: per mailbox, domain and the whole pool."""
    limits = pool.limits
    day = clock.today(pool.timezone)
    used = DailyCounter.objects.filter(day=day).values_list("scope", "key", "used")
    cap_used: list[Sample] = []
    cap_limit: list[Sample] = []
    for scope, key, n in used:
        if scope == DailyCounter.Scope.MAILBOX and key.isdigit() and int(key) in mailboxes:
            mailbox = mailboxes[int(key)]
            labels = {"scope": scope, "subject": mailbox.address}
            cap_limit.append((labels, mailbox.cap_today(pool, day)))
        elif scope == DailyCounter.Scope.DOMAIN and key.isdigit() and int(key) in domains:
            domain = domains[int(key)]
            labels = {"scope": scope, "subject": domain.name}
            cap_limit.append((labels, domain.cap(limits)))
        elif scope == DailyCounter.Scope.GLOBAL:
            labels = {"scope": scope, "subject": "*"}
            cap_limit.append((labels, limits.global_daily_cap))
        else:
            continue
        cap_used.append((labels, n))
    out = family("outreach_cap_used", "gauge", "Units of today's caps used.", cap_used)
    out += family("outreach_cap_limit", "gauge", "Today's caps.", cap_limit)
    return out


def _message_families() -> list[str]:
    """Messages by state, and the webhook requests refused."""
    states = Message.objects.values("state").annotate(n=Count("id")).order_by("state")
    out = family(
        "outreach_messages",
        "gauge",
        "Messages by state.",
        [({"state": row["state"]}, row["n"]) for row in states],
    )
    refused = (
        RefusedWebhook.objects.values("endpoint", "status_code")
        .annotate(n=Sum("count"))
        .order_by("endpoint", "status_code")
    )
    out += family(
        "outreach_webhook_refused_total",
        "counter",
        "Webhook requests refused for their credentials or signature (401, 403, 409) or "
        "because no webhook secret is set (503), within the dead-letter retention.",
        [({"endpoint": r["endpoint"], "status": str(r["status_code"])}, r["n"]) for r in refused],
    )
    return out


# Per campaign, step and variant: what the A/B comparison reads. Replies first: they are the
# figure that matters; opens and clicks are signals, and only the human estimates are rates.
CAMPAIGN_COUNTERS = ("sent", "replied", "opened", "opened_human", "clicked", "clicked_human")


def _campaign_samples() -> list[Sample]:
    rows = list(
        DailyRollup.objects.exclude(campaign_id=0)
        .values("campaign_id", "step_id", "variant_id")
        .annotate(**{name: Sum(name) for name in CAMPAIGN_COUNTERS})
        .order_by("campaign_id", "step_id", "variant_id")
    )
    campaigns = Campaign.objects.in_bulk({r["campaign_id"] for r in rows})
    steps = Step.objects.in_bulk({r["step_id"] for r in rows})
    variants = Variant.objects.in_bulk({r["variant_id"] for r in rows})
    samples: list[Sample] = []
    for row in rows:
        campaign = campaigns.get(row["campaign_id"])
        step = steps.get(row["step_id"])
        variant = variants.get(row["variant_id"])
        labels = {
            "campaign": campaign.slug if campaign else str(row["campaign_id"]),
            "step": str(step.position) if step else "",
            "variant": variant.label if variant else "",
        }
        samples += [({**labels, "type": name}, row[name] or 0) for name in CAMPAIGN_COUNTERS]
    return samples
