"""Campaign lifecycle (draft → active ⇄ paused → stopped) and enrollment of leads.

Every state change is a conditional UPDATE on the state that was read, so two operators (or
the CLI and the dashboard) acting at once cannot both start or both stop a campaign.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, QuerySet

from outreach.campaigns.models import Campaign, Enrollment, Lead, Message, Suppression
from outreach.campaigns.signals import claim_cancelled
from outreach.lib import alerting, bulk, clock
from outreach.pool.models import Mailbox

log = logging.getLogger(__name__)

# Campaigns whose active enrollments still lead to mail.
LIVE_STATES = (Campaign.State.DRAFT, Campaign.State.ACTIVE, Campaign.State.PAUSED)
# Messages that have not reached a provider and can still be cancelled.
UNSENT_STATES = (Message.State.SCHEDULED, Message.State.RETRY)


class CampaignError(Exception):
    pass


class CampaignInvalid(CampaignError):
    def __init__(self, campaign: Campaign, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"campaign {campaign.slug} does not validate: " + "; ".join(problems))


@dataclass
class EnrollReport:
    enrolled: int = 0
    already_enrolled: int = 0
    suppressed: int = 0
    # Active in another live campaign sharing mailboxes, and neither allows shared leads.
    in_other_campaign: int = 0
    skipped_emails: list[tuple[str, str]] = field(default_factory=list)

    def merge(self, other: EnrollReport) -> None:
        self.enrolled += other.enrolled
        self.already_enrolled += other.already_enrolled
        self.suppressed += other.suppressed
        self.in_other_campaign += other.in_other_campaign


# --- lifecycle -------------------------------------------------------------------------------


def start(campaign: Campaign, actor: str = "system") -> None:
    """Draft → active. Refused when the campaign does not validate (see validate_campaign)."""
    _require_valid(campaign)
    _move(campaign, (Campaign.State.DRAFT,), Campaign.State.ACTIVE, actor, started_at=clock.now())
    _forget_build_failures(campaign)


def pause(campaign: Campaign, actor: str = "system") -> None:
    """Active → paused: nothing more is planned or claimed until resumed."""
    _move(campaign, (Campaign.State.ACTIVE,), Campaign.State.PAUSED, actor)


def resume(campaign: Campaign, actor: str = "system") -> None:
    """Paused → active; validated again, since steps may have changed while paused."""
    _require_valid(campaign)
    _move(campaign, (Campaign.State.PAUSED,), Campaign.State.ACTIVE, actor)
    _forget_build_failures(campaign)


def stop(campaign: Campaign, actor: str = "system") -> int:
    """Stop for good: active enrollments stop, unsent messages are cancelled.

    Returns the number of messages cancelled. ``sending`` messages are already at a provider
    and are left to finish; ``claimed`` ones never reached one, so they are cancelled and the
    quota units they reserved are released.
    """
    with transaction.atomic():
        _move(campaign, LIVE_STATES, Campaign.State.STOPPED, actor)
        now = clock.now()
        Enrollment.objects.filter(campaign=campaign, state=Enrollment.State.ACTIVE).update(
            state=Enrollment.State.STOPPED,
            stop_reason=Enrollment.StopReason.CAMPAIGN_STOPPED,
            stopped_at=now,
            next_due_at=None,
        )
        cancelled = _cancel_messages(Message.objects.filter(campaign=campaign), "campaign stopped")
    log.info("campaign %s: %d unsent messages cancelled", campaign.slug, cancelled)
    return cancelled


def stop_enrollment(enrollment: Enrollment, reason: str) -> bool:
    """Stop one active enrollment with ``reason`` and cancel its unsent messages."""
    with transaction.atomic():
        updated = Enrollment.objects.filter(pk=enrollment.pk, state=Enrollment.State.ACTIVE).update(
            state=Enrollment.State.STOPPED,
            stop_reason=reason,
            stopped_at=clock.now(),
            next_due_at=None,
        )
        if updated:
            _cancel_messages(
                Message.objects.filter(enrollment=enrollment), f"enrollment stopped: {reason}"
            )
    enrollment.refresh_from_db()
    return bool(updated)


# A template that cannot render fails every message it meets: five failures are a broken
# campaign, not bad luck, and stopping there keeps the alert to one.
BUILD_FAILURES_TO_PAUSE = 5


def record_build_failure(campaign_id: int, error: str) -> bool:
    """A message of the campaign could not be built and went back to waiting (the sending
    engine calls this). The failure that reaches :data:`BUILD_FAILURES_TO_PAUSE` pauses the
    campaign and raises one alert naming the step and the error; returns whether this one
    did."""
    Campaign.objects.filter(pk=campaign_id).update(build_failures=F("build_failures") + 1)
    # Conditional on `active`: of several workers failing at once, exactly one pauses it,
    # so exactly one alert goes out.
    paused = Campaign.objects.filter(
        pk=campaign_id, state=Campaign.State.ACTIVE, build_failures__gte=BUILD_FAILURES_TO_PAUSE
    ).update(state=Campaign.State.PAUSED)
    if not paused:
        return False
    campaign = Campaign.objects.get(pk=campaign_id)
    log.warning(
        "campaign %s: paused after %d build failures", campaign.slug, campaign.build_failures
    )
    alerting.raise_alert(
        key=f"campaign-build-failed:{campaign.pk}:{clock.now().isoformat()}",
        kind="campaign_paused",
        severity="critical",
        text=(
            f"⏸ campaign {campaign.slug} paused: {campaign.build_failures} messages could not "
            f"be built. {error}\nFix the template, `outreach campaign apply` the file, then "
            f"`outreach campaign resume {campaign.slug}`: the messages are waiting."
        ),
        figures={"campaign": campaign.slug, "build_failures": campaign.build_failures},
    )
    return True


def _forget_build_failures(campaign: Campaign) -> None:
    Campaign.objects.filter(pk=campaign.pk).update(build_failures=0)
    campaign.build_failures = 0


def _require_valid(campaign: Campaign) -> None:
    from outreach.campaigns.validation import validate_campaign

    problems = validate_campaign(campaign)
    if problems:
        raise CampaignInvalid(campaign, problems)


def _move(
    campaign: Campaign,
    from_states: Sequence[str],
    to_state: str,
    actor: str,
    **changes: datetime,
) -> None:
    current = campaign.state
    if current == to_state:
        return
    if current not in from_states:
        raise CampaignError(f"campaign {campaign.slug} is {current}: cannot become {to_state}")
    if changes.get("started_at") and campaign.started_at:
        del changes["started_at"]
    # Conditional on the state we read: a concurrent stop and start cannot both win.
    if (
        Campaign.objects.filter(pk=campaign.pk, state=current).update(state=to_state, **changes)
        != 1
    ):
        campaign.refresh_from_db()
        raise CampaignError(f"campaign {campaign.slug} changed meanwhile (now {campaign.state})")
    campaign.state = to_state
    for name, value in changes.items():
        setattr(campaign, name, value)
    log.info("campaign %s: %s → %s by %s", campaign.slug, current, to_state, actor)


def _cancel_messages(messages: QuerySet[Message], why: str) -> int:
    now = clock.now()
    cancelled = messages.filter(state__in=UNSENT_STATES).update(
        state=Message.State.CANCELLED, last_error=why, updated_at=now
    )
    for message in messages.filter(state=Message.State.CLAIMED).select_related("campaign"):
        # Conditional: the worker may be taking this very message to `sending` right now;
        # whichever UPDATE lands first wins and the other changes no row.
        if (
            Message.objects.filter(pk=message.pk, state=Message.State.CLAIMED).update(
                state=Message.State.CANCELLED, last_error=why, updated_at=now
            )
            == 1
        ):
            _release_units(message)
            cancelled += 1
    return cancelled


def _release_units(message: Message) -> None:
    """Give back the units a claim reserved (it never reached a provider).

    The control plane owns the counters and knows exactly which ones a claim holds: it listens
    to :data:`outreach.campaigns.signals.claim_cancelled`.
    """
    claim_cancelled.send(sender=Message, message=message)


# --- enrollment ------------------------------------------------------------------------------


def enroll(campaign: Campaign, leads: Sequence[Lead], *, dry_run: bool = False) -> EnrollReport:
    """Enroll ``leads`` in ``campaign``; returns what happened to each.

    Skipped: leads already in the campaign, suppressed addresses and domains (checked again
    at send time), and leads with an active enrollment in another live campaign that shares
    a mailbox with this one, unless either campaign allows shared leads. A new enrollment's
    ``next_due_at`` is when step 1 falls due; the scheduler applies the sending window.
    """
    report = EnrollReport()
    if not leads:
        return report
    by_id = {lead.pk: lead for lead in leads}
    already = set(
        Enrollment.objects.filter(campaign=campaign, lead_id__in=by_id).values_list(
            "lead_id", flat=True
        )
    )
    emails = {lead.email for lead in leads}
    domains = {lead.email_domain for lead in leads}
    suppressed_addresses = set(
        Suppression.objects.filter(kind=Suppression.Kind.ADDRESS, value__in=emails).values_list(
            "value", flat=True
        )
    )
    suppressed_domains = set(
        Suppression.objects.filter(kind=Suppression.Kind.DOMAIN, value__in=domains).values_list(
            "value", flat=True
        )
    )
    conflicting = _conflicting_campaigns(campaign)
    busy = set(
        Enrollment.objects.filter(
            lead_id__in=by_id, campaign_id__in=conflicting, state=Enrollment.State.ACTIVE
        ).values_list("lead_id", flat=True)
    )
    now = clock.now()
    due = now + _first_delay(campaign)
    new: list[dict[str, Any]] = []
    for lead in leads:
        if lead.pk in already:
            report.already_enrolled += 1
        elif lead.email in suppressed_addresses or lead.email_domain in suppressed_domains:
            report.suppressed += 1
            report.skipped_emails.append((lead.email, "suppressed"))
        elif lead.pk in busy:
            report.in_other_campaign += 1
            report.skipped_emails.append((lead.email, "active in another campaign"))
        else:
            new.append(
                {
                    "campaign_id": campaign.pk,
                    "lead_id": lead.pk,
                    "next_due_at": due,
                    "created_at": now,
                }
            )
    if new and not dry_run:
        # Without the ORM's compiling of every field of every enrollment (an import or a
        # simulation enrolls tens of thousands); a lead enrolled meanwhile is skipped.
        bulk.insert(Enrollment, new, ignore_conflicts=True)
    report.enrolled = len(new)
    return report


def _first_delay(campaign: Campaign) -> timedelta:
    first = campaign.steps.filter(position=1).first()
    if first is None:
        return timedelta()
    return timedelta(days=first.delay_days, hours=first.delay_hours)


def _conflicting_campaigns(campaign: Campaign) -> list[int]:
    """Live campaigns whose leads this one must not take: they share at least one mailbox."""
    if campaign.allow_shared_leads:
        return []
    others = list(
        Campaign.objects.filter(state__in=LIVE_STATES, allow_shared_leads=False).exclude(
            pk=campaign.pk
        )
    )
    if not others:
        return []
    mine = sending_mailboxes(campaign)
    return [
        other.pk
        for other in others
        if mine is None or (theirs := sending_mailboxes(other)) is None or mine & theirs
    ]


def sending_mailboxes(campaign: Campaign) -> set[int] | None:
    """Ids of the mailboxes allowed to send ``campaign``; None means the whole pool."""
    if campaign.pk is None:
        return None
    mailboxes = set(campaign.allowed_mailboxes.values_list("pk", flat=True))
    domain_ids = list(campaign.allowed_domains.values_list("pk", flat=True))
    if not mailboxes and not domain_ids:
        return None
    mailboxes |= set(Mailbox.objects.filter(domain_id__in=domain_ids).values_list("pk", flat=True))
    return mailboxes
