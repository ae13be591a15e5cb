"""Health rules applied to the pool: figures gathered, verdicts of :mod:`outreach.metrics.health`
carried out through :mod:`outreach.pool.states`, alerts raised.

Rules run when evidence arrives (``events_recorded``, ``send_attempted``: see
:mod:`outreach.alerts.receivers`) and periodically (:func:`periodic_pass`, in the ``outreach
alerts`` loop). Both paths are idempotent: transitions are conditional UPDATEs and alerts are
keyed, so running a rule twice on the same figures changes nothing.

Evidence and resumes: a mailbox put back into service (``paused``/``cooldown`` → ``active``/
``warming``, by a person or by a cooldown ending) is judged only on what happened after that
moment. The old figures were already acted on; a rule fires again only on new evidence.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Collection
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, QuerySet, Sum

from outreach import retention
from outreach.alerts.digest import send_if_due
from outreach.alerts.outbox import Kind, quiet_keys, raise_alert
from outreach.alerts.ses_watch import check_due_accounts
from outreach.events.models import DeadLetter, Event, InboxCursor, RefusedWebhook, SeedCursor
from outreach.events.seeds import seeds_with_imap
from outreach.lib import clock, sql
from outreach.lib.logins import prune_failed_logins
from outreach.metrics import health
from outreach.metrics.figures import Figures
from outreach.metrics.mailbox_evidence import NONE as NO_EVIDENCE
from outreach.metrics.mailbox_evidence import OUT_OF_SERVICE, Evidence, mailbox_evidence
from outreach.pool.models import Domain, Mailbox, PoolSettings, ProviderAccount, StateChange
from outreach.pool.policy import SENDING_STATES, Thresholds
from outreach.pool.states import mark_auth_failed, transition_domain, transition_mailbox
from outreach.scheduler.models import DailyCounter
from outreach.sending.models import SendAttempt

log = logging.getLogger(__name__)

# Pauses that say nothing about the domain's reputation (a rotated password, a provider
# outage): they do not count towards putting the whole domain into cooldown.
NOT_REPUTATION = ("rule:auth_failed", "rule:failure_streak")
# A domain at 90% of its cap gets a heads-up before it stops for the day.
DOMAIN_CAP_NEAR_RATIO = 0.9
# Webhook sources: replies over IMAP and one-click unsubscribes say nothing about them.
NON_WEBHOOK_SOURCES = ("imap", "unsubscribe", "smtp", "seed")
# Webhooks are expected only from providers that publish events.
WEBHOOK_PROVIDERS = (
    ProviderAccount.Kind.SES,
    ProviderAccount.Kind.MAILGUN,
    ProviderAccount.Kind.POSTMARK,
)
# Fewer sends than this in the silence window prove nothing about webhooks.
WEBHOOK_SILENCE_MIN_SENDS = 5
ONE_DAY = timedelta(days=1)


# -- mailboxes ---------------------------------------------------------------------------------


def mailbox_figures(mailbox: Mailbox, thresholds: Thresholds) -> tuple[Figures, datetime | None]:
    """The mailbox's figures over the window, counting only evidence newer than its return to
    service; the second value is that moment when it cut the window short."""
    found = evidence_of(mailbox, thresholds)
    return found.figures, found.since


def evidence_of(mailbox: Mailbox, thresholds: Thresholds) -> Evidence:
    """One mailbox's evidence: the pool's grouped read restricted to it."""
    found = mailbox_evidence(Mailbox.objects.filter(pk=mailbox.pk), thresholds)
    return found.get(mailbox.pk, NO_EVIDENCE)


def evaluate_mailbox(
    mailbox: Mailbox, thresholds: Thresholds | None = None, evidence: Evidence | None = None
) -> health.Verdict:
    """Judge one mailbox on its current figures and act on the verdict. A mailbox cooling down
    is judged too, for complaints only: any complaint pauses it (docs/rules.md).

    The periodic pass hands over the thresholds and the evidence it read for the whole pool;
    right after an event both are read here, for this mailbox only."""
    cooling = mailbox.state == Mailbox.State.COOLDOWN
    if mailbox.state not in SENDING_STATES and not cooling:
        return health.OK
    if thresholds is None:
        thresholds = PoolSettings.load().thresholds
    if evidence is None:
        evidence = evidence_of(mailbox, thresholds)
    since = evidence.since
    verdict = health.mailbox_verdict(
        evidence.figures,
        thresholds,
        failure_streak=evidence.failure_streak,
        auth_failed=evidence.auth_failed,
    )
    if cooling and verdict.rule != "complaint":
        return health.OK
    if since is not None and verdict.action != health.Action.NONE:
        verdict.figures["evidence_since"] = since.isoformat()
    if verdict.rule == "auth_failed":
        # The pause's one alert names the provider's words and how to reconnect.
        words = SendAttempt.objects.filter(mailbox=mailbox).order_by("-at", "-id")[:1]
        reason = mark_auth_failed(mailbox, words[0].response if words else "")
        verdict = dataclasses.replace(verdict, reason=reason)
    apply_mailbox_verdict(mailbox, verdict, thresholds)
    return verdict


def apply_mailbox_verdict(
    mailbox: Mailbox, verdict: health.Verdict, thresholds: Thresholds
) -> StateChange | None:
    actor = f"rule:{verdict.rule}"
    if verdict.action == health.Action.PAUSE:
        change = transition_mailbox(
            mailbox,
            Mailbox.State.PAUSED,
            reason=verdict.reason,
            actor=actor,
            figures=verdict.figures,
        )
    elif verdict.action == health.Action.COOLDOWN:
        change = transition_mailbox(
            mailbox,
            Mailbox.State.COOLDOWN,
            reason=verdict.reason,
            actor=actor,
            figures=verdict.figures,
            cooldown_until=clock.now() + timedelta(days=thresholds.block_cooldown_days),
        )
    elif verdict.action == health.Action.WARN:
        kind = Kind.BOUNCE_WARNING if verdict.rule == "bounce_warning" else Kind.COMPLAINT_WARNING
        raise_alert(
            f"{verdict.rule}:mailbox:{mailbox.pk}",
            kind,
            f"⚠️ {mailbox.address}\n{verdict.reason}",
            "warning",
            {"mailbox": mailbox.address, **verdict.figures},
        )
        return None
    else:
        return None
    # The domain is judged by the state-change receiver, whoever paused the mailbox.
    return change


# -- domains -----------------------------------------------------------------------------------


def evaluate_domain(
    domain: Domain,
    *,
    blocklisted: list[str] | None = None,
    thresholds: Thresholds | None = None,
    pauses: int | None = None,
) -> health.Verdict:
    """Put a domain into cooldown when its mailboxes keep getting paused for reputation
    (complaints, bounces, blocks: rules, not people, not credentials) or it is blocklisted.

    ``blocklisted`` names the lists the domain was found on (the DNS checks call this). The
    periodic pass hands over the thresholds and the pauses it counted for every domain.
    """
    if pauses is None:
        domain.refresh_from_db(fields=["state", "cooldown_until"])
    if domain.state != Domain.State.ACTIVE:
        return health.OK
    if thresholds is None:
        thresholds = PoolSettings.load().thresholds
    if pauses is None:
        pauses = reputation_pauses(Domain.objects.filter(pk=domain.pk), thresholds).get(
            domain.pk, 0
        )
    verdict = health.domain_verdict(pauses, thresholds, blocklisted=blocklisted)
    if verdict.action == health.Action.COOLDOWN:
        transition_domain(
            domain,
            Domain.State.COOLDOWN,
            reason=verdict.reason,
            actor=f"rule:{verdict.rule}",
            figures=verdict.figures,
            cooldown_until=clock.now() + timedelta(days=thresholds.block_cooldown_days),
        )
    return verdict


def reputation_pauses(domains: QuerySet[Domain], thresholds: Thresholds) -> dict[int, int]:
    """Per domain: its mailboxes' pauses for reputation within the window, counted after the
    domain last came back to ``active`` (two grouped queries, whatever the number of domains)."""
    ids = domains.values("pk")
    window_start = clock.now() - timedelta(days=thresholds.window_days)
    back = dict(
        StateChange.objects.filter(
            domain_id__in=ids, mailbox__isnull=True, to_state=Domain.State.ACTIVE
        )
        .values("domain_id")
        .annotate(at=Max("at"))
        .values_list("domain_id", "at")
    )
    rows = (
        StateChange.objects.filter(
            mailbox__domain_id__in=ids,
            to_state__in=OUT_OF_SERVICE,
            at__gt=window_start,
            actor__startswith="rule:",
        )
        .exclude(actor__in=NOT_REPUTATION)
        .values_list("mailbox__domain_id", "at")
    )
    counts: dict[int, int] = {}
    for domain_id, at in rows:
        since = back.get(domain_id)
        if since is None or at > since:
            counts[domain_id] = counts.get(domain_id, 0) + 1
    return counts


# -- cooldowns ending --------------------------------------------------------------------------


def expire_cooldowns() -> int:
    """Mailboxes whose cooldown ended re-enter warm-up at the schedule's re-entry day; domains
    whose cooldown ended become active again. Returns how many moved."""
    now = clock.now()
    pool = PoolSettings.load()
    moved = 0
    for mailbox in Mailbox.objects.filter(
        state=Mailbox.State.COOLDOWN, cooldown_until__lte=now
    ).select_related("domain"):
        change = transition_mailbox(
            mailbox,
            Mailbox.State.WARMING,
            reason=f"cooldown ended: re-warming from warm-up day {pool.warmup.reentry_day}",
            actor="rule:cooldown_ended",
            figures={
                "cooldown_until": mailbox.cooldown_until.isoformat()
                if mailbox.cooldown_until
                else None
            },
            warmup_start_day=pool.warmup.reentry_day,
        )
        moved += change is not None
    for domain in Domain.objects.filter(state=Domain.State.COOLDOWN, cooldown_until__lte=now):
        change = transition_domain(
            domain,
            Domain.State.ACTIVE,
            reason="cooldown ended",
            actor="rule:cooldown_ended",
            figures={
                "cooldown_until": domain.cooldown_until.isoformat()
                if domain.cooldown_until
                else None
            },
        )
        moved += change is not None
    return moved


# -- caps --------------------------------------------------------------------------------------


def check_caps(domain_ids: list[int] | None = None) -> int:
    """Alert once a day per domain at ≥ 90% and at 100% of its cap, and once when the global
    cap is reached; returns the alerts raised.

    This runs after every batch of sends, for the domains that sent (``domain_ids``), and
    a batch is often a handful of messages: two plain statements (today's counters of those
    domains and the global one; the domains' names and caps), and the alert keys are read
    only when a domain is near its cap."""
    pool = PoolSettings.load()
    limits = pool.limits
    day = clock.today(pool.timezone)
    used, total = _counters_of(day, domain_ids)
    due: list[tuple[str, str, str, dict[str, object]]] = []
    for pk, name, daily_cap in _domain_caps(used):
        cap = Domain.cap_of(daily_cap, limits)
        n = used[pk]
        if cap <= 0:
            continue
        figures = {"domain": name, "used": n, "cap": cap, "day": day.isoformat()}
        if n >= cap:
            due.append(
                (
                    f"domain-cap-reached:{pk}:{day}",
                    Kind.DOMAIN_CAP_REACHED,
                    f"🛑 {name} reached its daily cap: {n}/{cap}",
                    figures,
                )
            )
        elif n >= DOMAIN_CAP_NEAR_RATIO * cap:
            due.append(
                (
                    f"domain-cap-near:{pk}:{day}",
                    Kind.DOMAIN_CAP_NEAR,
                    f"📈 {name} at {n}/{cap} of its daily cap ({n / cap:.0%})",
                    figures,
                )
            )
    # Most of these were raised earlier today.
    quiet = quiet_keys([key for key, *_ in due]) if due else set()
    raised = sum(_once_today(*alert) for alert in due if alert[0] not in quiet)
    if total is not None and total >= limits.global_daily_cap:
        raised += _once_today(
            f"global-cap:{day}",
            Kind.GLOBAL_CAP_REACHED,
            f"🛑 global daily cap reached: {total}/{limits.global_daily_cap}",
            {"used": total, "cap": limits.global_daily_cap, "day": day.isoformat()},
        )
    return raised


def _counters_of(day: date, domain_ids: list[int] | None) -> tuple[dict[int, int], int | None]:
    """``day``'s counters of the domains ``domain_ids`` (all when None), by domain, and the
    global counter (None before the first send of the day): one statement."""
    c = functools.partial(sql.column, DailyCounter)
    params: list[Any] = []
    if domain_ids is None:
        mine = "1 = 1"
    else:
        mine, params = sql.any_of(c("key"), [str(pk) for pk in domain_ids])
    used: dict[int, int] = {}
    total = None
    for scope, key, n in sql.fetch(
        f"SELECT {c('scope')}, {c('key')}, {c('used')} FROM {sql.table(DailyCounter)} "  # noqa: S608
        f"WHERE {c('day')} = %s AND ({c('scope')} = %s OR ({c('scope')} = %s AND {mine}))",
        [sql.day(day), DailyCounter.Scope.GLOBAL, DailyCounter.Scope.DOMAIN, *params],
    ):
        if scope == DailyCounter.Scope.GLOBAL:
            total = n
        elif key.isdigit():
            used[int(key)] = n
    return used, total


def _domain_caps(domain_ids: Collection[int]) -> list[tuple[Any, ...]]:
    """(pk, name, own daily cap) of each of ``domain_ids`` that exists."""
    if not domain_ids:
        return []
    d = functools.partial(sql.column, Domain)
    mine, params = sql.any_of(d("pk"), sorted(domain_ids))
    return sql.fetch(
        f"SELECT {d('pk')}, {d('name')}, {d('daily_cap')} "  # noqa: S608
        f"FROM {sql.table(Domain)} WHERE {mine}",
        params,
    )


def _once_today(key: str, kind: str, text: str, figures: dict[str, object]) -> int:
    return raise_alert(key, kind, text, "warning", figures, quiet=ONE_DAY) is not None


# -- webhooks ----------------------------------------------------------------------------------


def check_webhooks_silent() -> bool:
    """Alert when mail went out through providers that publish events but no webhook arrived
    for ``OUTREACH_WEBHOOK_SILENCE_MINUTES`` (a broken SNS subscription or a lost secret
    leaves bounces and complaints unseen: the health rules go blind)."""
    minutes = settings.OUTREACH_WEBHOOK_SILENCE_MINUTES
    now = clock.now()
    window_start = now - timedelta(minutes=minutes)
    # Sends old enough that their delivery events should have arrived by now.
    sends = SendAttempt.objects.filter(
        outcome=SendAttempt.Outcome.SENT,
        provider_account__kind__in=WEBHOOK_PROVIDERS,
        at__gte=window_start - timedelta(minutes=minutes),
        at__lt=window_start,
    ).count()
    if sends < WEBHOOK_SILENCE_MIN_SENDS:
        return False
    last = Event.objects.exclude(source__in=NON_WEBHOOK_SOURCES).aggregate(at=Max("received_at"))[
        "at"
    ]
    if last is not None and last >= window_start:
        return False
    since = f"since {last:%Y-%m-%d %H:%M} UTC" if last else "ever"
    return (
        raise_alert(
            "webhooks-silent",
            Kind.WEBHOOKS_SILENT,
            f"🔇 no provider webhook {since} while {sends} messages were sent: bounces and "
            "complaints are not being seen",
            "critical",
            {
                "sends": sends,
                "silence_minutes": minutes,
                "last_event_at": last.isoformat() if last else None,
            },
        )
        is not None
    )


def check_refused_webhooks() -> bool:
    """Alert when provider webhook requests were refused within the last silence period
    (a wrong secret, an unsubscribed SNS topic, a provider changing its payload): the events
    in them are not recorded until someone replays them. Once per quiet period."""
    since = clock.now() - timedelta(minutes=settings.OUTREACH_WEBHOOK_SILENCE_MINUTES)
    counts: dict[tuple[str, int], int] = {}
    for row in (
        DeadLetter.objects.filter(received_at__gte=since, replayed_at__isnull=True)
        .values("endpoint", "status_code")
        .annotate(n=Count("id"))
    ):
        counts[row["endpoint"], row["status_code"]] = row["n"]
    # Requests refused for their credentials or signature are counted, not kept. A bare 401
    # is left out: SNS sends its credentials only after that challenge.
    for row in (
        RefusedWebhook.objects.filter(window__gte=since)
        .exclude(status_code=401)
        .values("endpoint", "status_code")
        .annotate(n=Sum("count"))
    ):
        key = (row["endpoint"], row["status_code"])
        counts[key] = counts.get(key, 0) + row["n"]
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    refused = [{"endpoint": e, "status_code": status, "n": n} for (e, status), n in ranked]
    if not refused:
        return False
    total = sum(n for _, n in ranked)
    where = ", ".join(f"{r['endpoint']}: {r['n']} × {r['status_code']}" for r in refused[:5])
    return (
        raise_alert(
            "webhooks-refused",
            Kind.WEBHOOKS_REFUSED,
            f"📭 {total} provider webhook request(s) refused since {since:%H:%M} UTC ({where}): "
            "their events are not recorded. `outreach events list` shows them, "
            "`outreach events replay ID` processes them once the cause is fixed",
            "warning",
            {"refused": total, "by_endpoint": refused, "since": since.isoformat()},
        )
        is not None
    )


# An IMAP read failing this long (three tries, ten minutes apart) is no passing blip.
IMAP_FAILING_AFTER = timedelta(minutes=25)


def check_imap_failing() -> int:
    """Alert for every IMAP folder whose reads have failed for :data:`IMAP_FAILING_AFTER`
    (a changed password, a server down): a mailbox's replies there go unseen, so its
    follow-ups could reach people who answered; a seed's spam folder no longer tells about
    placement. Only folders still read count (not a retired mailbox's, not a seed no longer
    configured). Once per quiet period per folder; returns the alerts raised."""
    since = clock.now() - IMAP_FAILING_AFTER
    raised = 0
    failing = InboxCursor.objects.filter(failing_since__lte=since).exclude(
        mailbox__state=Mailbox.State.RETIRED
    )
    for cursor in failing.select_related("mailbox"):
        raised += (
            raise_alert(
                f"imap-failing:mailbox:{cursor.pk}",
                Kind.IMAP_FAILING,
                f"📪 cannot read {cursor.mailbox.address} {cursor.folder} over IMAP: "
                f"{cursor.last_error[:200]}. Replies and bounces there go unseen: follow-ups "
                "may reach people who answered",
                "critical",
                {"mailbox": cursor.mailbox.address, "folder": cursor.folder},
            )
            is not None
        )
    seeds = SeedCursor.objects.filter(failing_since__lte=since, address__in=list(seeds_with_imap()))
    for seed in seeds:
        raised += (
            raise_alert(
                f"imap-failing:seed:{seed.pk}",
                Kind.IMAP_FAILING,
                f"📪 cannot read seed {seed.address} {seed.folder} over IMAP: "
                f"{seed.last_error[:200]}. Its placement is not being checked",
                "warning",
                {"seed": seed.address, "folder": seed.folder},
            )
            is not None
        )
    return raised


# -- periodic pass -----------------------------------------------------------------------------


def evaluate_pool() -> int:
    """Judge every sending mailbox; returns how many verdicts were not "ok"."""
    findings = 0
    thresholds = PoolSettings.load().thresholds
    sending = Mailbox.objects.filter(state__in=SENDING_STATES)
    evidence = mailbox_evidence(sending, thresholds)
    for mailbox in sending.select_related("domain"):
        found = evidence.get(mailbox.pk, NO_EVIDENCE)
        findings += evaluate_mailbox(mailbox, thresholds, found).action != health.Action.NONE
    active = Domain.objects.filter(state=Domain.State.ACTIVE)
    pauses = reputation_pauses(active, thresholds)
    for domain in active:
        verdict = evaluate_domain(domain, thresholds=thresholds, pauses=pauses.get(domain.pk, 0))
        findings += verdict.action != health.Action.NONE
    return findings


def periodic_pass() -> None:
    """Everything that is checked on a timer, each step isolated so one failing (an SES API
    outage) does not stop the others."""
    steps: list[tuple[str, Callable[[], object]]] = [
        ("cooldowns", expire_cooldowns),
        ("pool", evaluate_pool),
        ("caps", check_caps),
        ("webhooks", check_webhooks_silent),
        ("refused webhooks", check_refused_webhooks),
        ("imap", check_imap_failing),
        ("dead letter retention", DeadLetter.prune),
        ("failed login retention", prune_failed_logins),
        ("retention", retention.prune_if_due),
        ("ses", check_due_accounts),
        ("digest", send_if_due),
    ]
    for name, step in steps:
        try:
            step()
        except Exception:
            log.exception("periodic health step %s failed", name)
