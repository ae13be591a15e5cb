"""Planning: due enrollment steps become ``scheduled`` messages at the right time.

An enrollment is due when ``next_due_at`` has come. Its next step (``last_step + 1``) becomes a
message whose ``not_before`` is the next opening of the campaign's window in the lead's time
zone (else the campaign's). Follow-ups are pinned to the thread's mailbox and carry its
Message-ID in ``In-Reply-To``/``References``. Planning sets ``last_step`` to the planned step
and clears ``next_due_at``; the sending engine sets it again when the message is sent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q

from outreach.campaigns.models import Campaign, Enrollment, Message, Step
from outreach.campaigns.suppression import is_suppressed, normalize, suppressed_among
from outreach.lib import bulk
from outreach.pool.models import PoolSettings
from outreach.scheduler import routing

log = logging.getLogger(__name__)

BATCH = 500
# A planned message before it is saved: Message field attnames to values.
PlannedRow = dict[str, Any]


# Messages still on their way, or waiting for the operator's decision (``unknown``: never
# resent on its own, see the dashboard's decisions): their enrollment has something planned.
LIVE_MESSAGE_STATES = (
    Message.State.SCHEDULED,
    Message.State.CLAIMED,
    Message.State.SENDING,
    Message.State.RETRY,
    Message.State.UNKNOWN,
)


@dataclass
class PlanReport:
    planned: int = 0
    finished: int = 0
    suppressed: int = 0
    waiting: int = 0  # follow-ups whose thread is not known yet
    gave_up: int = 0  # follow-ups that waited past the limit for their thread


@dataclass(frozen=True)
class DueEnrollment:
    """A due enrollment and its lead as planning reads them: plain values, no model
    instances (planning reads every enrollment of a large list once per step)."""

    pk: int
    campaign_id: int
    last_step: int
    next_due_at: datetime | None
    thread_mailbox_id: int | None
    thread_message_id: str
    email: str
    email_domain: str
    timezone: str


_DUE_FIELDS = (
    "pk",
    "campaign_id",
    "last_step",
    "next_due_at",
    "thread_mailbox_id",
    "thread_message_id",
    "lead__email",
    "lead__email_domain",
    "lead__timezone",
)


@dataclass(frozen=True)
class _StepPlan:
    step_id: int
    variants: list[tuple[int, int]]  # (variant id, weight)


class _Campaigns:
    """Steps, variants and windows of the active campaigns, read once per planning pass at
    ``now``."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.campaigns: dict[int, Campaign] = {}
        self.steps: dict[tuple[int, int], _StepPlan] = {}
        self._openings: dict[tuple[int, str], datetime | None] = {}
        campaigns = Campaign.objects.filter(state=Campaign.State.ACTIVE)
        steps = Step.objects.filter(campaign__in=campaigns).prefetch_related("variants")
        for campaign in campaigns:
            self.campaigns[campaign.pk] = campaign
        for step in steps:
            self.steps[(step.campaign_id, step.position)] = _StepPlan(
                step.pk, [(v.pk, v.weight) for v in step.variants.all()]
            )

    def window(self, campaign_id: int) -> routing.Window:
        c = self.campaigns[campaign_id]
        return routing.Window.of(c.window_days, c.window_start, c.window_end)

    def opening(self, campaign_id: int, lead_zone: str) -> datetime | None:
        """The first instant from the pass's ``now`` inside the campaign's window in the lead's time
        zone (else the campaign's); None when the window never opens. Worked out once per
        campaign and zone."""
        key = (campaign_id, lead_zone)
        if key not in self._openings:
            campaign = self.campaigns[campaign_id]
            tz = routing.recipient_zone(lead_zone, campaign.timezone)
            window = self.window(campaign_id)
            self._openings[key] = routing.next_window_start(self.now, window, tz)
        return self._openings[key]


def plan_due(now: datetime, *, limit: int = 10_000) -> PlanReport:
    """Plan the next step of every active enrollment of an active campaign that is due."""
    report = PlanReport()
    limits = PoolSettings.load().limits
    wait = timedelta(hours=limits.follow_up_wait_hours)
    campaigns = _Campaigns(now)
    if not campaigns.campaigns:
        return report
    done = 0
    due = Enrollment.objects.filter(
        state=Enrollment.State.ACTIVE,
        campaign_id__in=list(campaigns.campaigns),
        next_due_at__lte=now,
    )
    after = Q()
    while done < limit:
        # Earliest due first, in the order of the (state, next_due_at) index: a batch is a
        # seek, whatever the number of enrollments waiting with nothing due. The keyset skips
        # the enrollments an earlier batch left due (a follow-up waiting for its thread).
        batch = [
            DueEnrollment(*values)
            for values in due.filter(after)
            .order_by("next_due_at", "pk")
            .values_list(*_DUE_FIELDS)[:BATCH]
        ]
        if not batch:
            break
        # One look at the suppression list for the whole batch.
        suppressed = suppressed_among([e.email for e in batch])
        planned = [
            (message, enrollment)
            for enrollment in batch
            if (message := _plan_one(enrollment, campaigns, now, wait, report, suppressed))
        ]
        report.planned += _save_all_planned(planned)
        done += len(batch)
        last = batch[-1]
        # (The first term gives the index a lower bound; the rest is the keyset proper.)
        after = Q(next_due_at__gte=last.next_due_at) & (
            Q(next_due_at__gt=last.next_due_at) | Q(next_due_at=last.next_due_at, pk__gt=last.pk)
        )
    return report


def _plan_one(
    enrollment: DueEnrollment,
    campaigns: _Campaigns,
    now: datetime,
    wait: timedelta,
    report: PlanReport,
    suppressed: set[str],
) -> PlannedRow | None:
    """The message to plan for ``enrollment`` (a row, not saved), or None when there is none:
    the enrollment finished, stopped, or waits (counted in ``report``)."""
    position = enrollment.last_step + 1
    step = campaigns.steps.get((enrollment.campaign_id, position))
    if step is None:
        _finish(enrollment, Enrollment.State.FINISHED, "", now)
        report.finished += 1
        return None
    if normalize(enrollment.email) in suppressed:
        _finish(enrollment, Enrollment.State.STOPPED, Enrollment.StopReason.SUPPRESSED, now)
        report.suppressed += 1
        return None
    follow_up = position > 1
    if follow_up and (enrollment.thread_mailbox_id is None or not enrollment.thread_message_id):
        # The first message's mailbox and Message-ID are not known yet (it has not been sent):
        # wait, and give up after the same limit a follow-up waits for its mailbox.
        assert enrollment.next_due_at is not None
        if now - enrollment.next_due_at > wait:
            _finish(
                enrollment,
                Enrollment.State.STOPPED,
                Enrollment.StopReason.MAILBOX_UNAVAILABLE,
                now,
            )
            report.gave_up += 1
        else:
            report.waiting += 1
        return None
    campaign = campaigns.campaigns[enrollment.campaign_id]
    not_before = campaigns.opening(campaign.pk, enrollment.timezone)
    if not_before is None:
        log.warning("campaign %s: its window never opens; nothing planned", campaign.slug)
        return None
    return _new_message(enrollment, step, campaign.pk, not_before, position, wait, now)


def _new_message(
    enrollment: DueEnrollment,
    step: _StepPlan,
    campaign_id: int,
    not_before: datetime,
    position: int,
    wait: timedelta,
    now: datetime,
) -> PlannedRow:
    """The scheduled message of the enrollment's step at ``position``, as a row (field
    attnames to values; the rest take their defaults): no model instance per message."""
    variant_id = routing.choose_variant(step.variants, f"{enrollment.pk}:{step.step_id}")
    message: PlannedRow = {
        "kind": Message.Kind.CAMPAIGN,
        "enrollment_id": enrollment.pk,
        "step_id": step.step_id,
        "variant_id": variant_id,
        "campaign_id": campaign_id,
        "to_email": enrollment.email,
        "to_domain": enrollment.email_domain or enrollment.email.rpartition("@")[2],
        "state": Message.State.SCHEDULED,
        "not_before": not_before,
        "created_at": now,
        "updated_at": now,
    }
    if position > 1:
        message["pinned_mailbox_id"] = enrollment.thread_mailbox_id
        message["in_reply_to"] = enrollment.thread_message_id
        message["references"] = _thread_references(enrollment, position)
        # Waiting for the thread's mailbox has a limit; moving the follow-up to another
        # mailbox would break the thread, so past it the follow-up is cancelled instead.
        message["expires_at"] = not_before + wait
    return message


def _save_all_planned(planned: list[tuple[PlannedRow, DueEnrollment]]) -> int:
    """Insert a batch's planned messages and move their enrollments on, in one transaction:
    one INSERT (:func:`outreach.lib.bulk.insert`), and one UPDATE per step position. When any
    of the steps was already planned (another scheduler got there first: each enrollment step
    yields at most one message), the whole batch is rolled back and saved one message at a
    time, as :func:`_save_planned` does. Returns how many messages were inserted."""
    if not planned:
        return 0
    by_position: dict[int, list[int]] = {}
    for _, enrollment in planned:
        by_position.setdefault(enrollment.last_step + 1, []).append(enrollment.pk)
    try:
        with transaction.atomic():
            # Without the ORM's compiling of every field of every message (lib.bulk).
            bulk.insert(Message, [message for message, _ in planned])
            for position, pks in sorted(by_position.items()):
                # Conditional on the step read: an enrollment another scheduler moved on
                # meanwhile is never moved back.
                Enrollment.objects.filter(
                    pk__in=pks, state=Enrollment.State.ACTIVE, last_step=position - 1
                ).update(last_step=position, next_due_at=None)
    except IntegrityError:
        saved = 0
        for message, enrollment in planned:
            saved += _save_planned(Message(**message), enrollment, enrollment.last_step + 1)
        return saved
    return len(planned)


def _save_planned(message: Message, enrollment: DueEnrollment, position: int) -> bool:
    """Insert the message and move the enrollment on, together; False when the step was
    already planned (each enrollment step yields at most one message): then only catch up."""
    # Conditional on an earlier step: an enrollment another scheduler moved further on
    # meanwhile is never moved back.
    behind = Enrollment.objects.filter(
        pk=enrollment.pk, state=Enrollment.State.ACTIVE, last_step__lt=position
    )
    try:
        with transaction.atomic():
            message.save(force_insert=True)
            behind.update(last_step=position, next_due_at=None)
    except IntegrityError:
        behind.update(last_step=position, next_due_at=None)
        return False
    return True


def _thread_references(enrollment: DueEnrollment, position: int) -> str:
    """The References of a follow-up: the Message-IDs of the thread so far, oldest first
    (RFC 5322 3.6.4), so that step 3 names steps 1 and 2. Step 2 needs no query."""
    ids = [enrollment.thread_message_id]
    if position > 2:
        sent = Message.objects.filter(
            enrollment_id=enrollment.pk,
            step__position__gt=1,
            step__position__lt=position,
            state=Message.State.SENT,
        ).exclude(message_id_header__isnull=True)
        ids += [
            i or ""
            for i in sent.order_by("step__position").values_list("message_id_header", flat=True)
        ]
    return " ".join(dict.fromkeys(i for i in ids if i))


def _finish(enrollment: DueEnrollment, state: str, reason: str, now: datetime) -> None:
    Enrollment.objects.filter(pk=enrollment.pk, state=Enrollment.State.ACTIVE).update(
        state=state, stop_reason=reason, stopped_at=now, next_due_at=None
    )


# --- enrollments with nothing planned -------------------------------------------------------


def stranded_enrollments() -> Any:
    """Active enrollments with no step due and no message on its way: nothing would ever
    happen to them again. Every path that ends a message should leave none; this finds the
    ones that did (and the tests assert there are none)."""
    live = Message.objects.filter(enrollment=OuterRef("pk"), state__in=LIVE_MESSAGE_STATES)
    return Enrollment.objects.filter(state=Enrollment.State.ACTIVE, next_due_at=None).exclude(
        Exists(live)
    )


# Where the last look for stranded enrollments stopped (per process). Every active enrollment
# with no step due is in flight, and there may be tens of thousands after a large import: each
# pass looks at the next SETTLE_BATCH of them, so a pass costs the same whatever the backlog.
SETTLE_BATCH = 1000
_settle_cursor = 0


def settle_stranded(now: datetime, *, batch: int = SETTLE_BATCH) -> int:
    """Give each stranded enrollment its next step or its end, from its last message:

    1. ``sent`` (e.g. an ``unknown`` message the operator said was sent): the next step falls
       due after its delay, counted from the send, or the enrollment finishes;
    2. ``failed`` (refused for good, retries exhausted, given up): stopped, ``send_failed``;
    3. ``cancelled``: stopped, ``suppressed`` when the address is, else ``message_cancelled``;
    4. no message at all: the current step is planned again.

    Each change is conditional on the enrollment still being stranded, so a message planned
    or a reply recorded at the same moment wins. One call looks at ``batch`` in-flight
    enrollments, the next ones on the next call (see ``_settle_cursor``).
    """
    global _settle_cursor
    in_flight = Enrollment.objects.filter(state=Enrollment.State.ACTIVE, next_due_at=None)
    window = list(
        in_flight.filter(pk__gt=_settle_cursor).order_by("pk").values_list("pk", flat=True)[:batch]
    )
    if not window and _settle_cursor:  # past the end: start again from the beginning
        window = list(in_flight.order_by("pk").values_list("pk", flat=True)[:batch])
    _settle_cursor = window[-1] if len(window) == batch else 0
    settled = 0
    for enrollment in stranded_enrollments().filter(pk__in=window).select_related("lead"):
        last = (
            Message.objects.filter(enrollment=enrollment)
            .select_related("step")
            .order_by("-step__position", "-pk")
            .first()
        )
        changes = _settlement(enrollment, last, now)
        settled += stranded_enrollments().filter(pk=enrollment.pk).update(**changes)
    if settled:
        log.warning("%d enrollment(s) with nothing planned were settled", settled)
    return settled


def _settlement(enrollment: Enrollment, last: Message | None, now: datetime) -> dict[str, Any]:
    stop = {"state": Enrollment.State.STOPPED, "stopped_at": now}
    if last is None or last.step is None:
        return {"last_step": max(enrollment.last_step - 1, 0), "next_due_at": now}
    if last.state == Message.State.SENT:
        following = (
            Step.objects.filter(campaign_id=enrollment.campaign_id, position__gt=last.step.position)
            .order_by("position")
            .first()
        )
        if following is None:
            return {"state": Enrollment.State.FINISHED, "last_step": last.step.position}
        sent_at = last.sent_at or now
        delay = timedelta(days=following.delay_days, hours=following.delay_hours)
        return {"last_step": last.step.position, "next_due_at": sent_at + delay}
    if last.state == Message.State.CANCELLED:
        reason = (
            Enrollment.StopReason.SUPPRESSED
            if is_suppressed(enrollment.lead.email)
            else Enrollment.StopReason.MESSAGE_CANCELLED
        )
        return {**stop, "stop_reason": reason}
    return {**stop, "stop_reason": Enrollment.StopReason.SEND_FAILED}
