"""Lease recovery and expiry: claims whose worker went away, retries stranded on a mailbox
that can no longer send, follow-ups that waited too long for their thread's mailbox."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction

from outreach.campaigns.models import Enrollment, Message
from outreach.pool.models import Domain, PoolSettings
from outreach.pool.policy import SENDING_STATES
from outreach.scheduler.counters import held_reservation, release

log = logging.getLogger(__name__)

# Settles ``sending`` rows whose lease ran out and returns how many became ``unknown``: the
# sending engine's ``expire_sending``, registered when the sending app is ready (the scheduler
# sits below the sending layer and does not import it).
SendingExpiry = Callable[..., int]
_sending_expiry: list[SendingExpiry] = []


def register_sending_expiry(expire: SendingExpiry) -> None:
    """Called once by the sending app at start-up (idempotent)."""
    if expire not in _sending_expiry:
        _sending_expiry.append(expire)


def _expire_sending(now: datetime, limit: int) -> int:
    return sum(expire(now, limit=limit) for expire in _sending_expiry)


@dataclass
class RecoveryReport:
    released: int = 0
    unknown: int = 0
    cancelled: int = 0
    stranded: int = 0


def recover_leases(now: datetime, *, limit: int = 1000) -> RecoveryReport:
    """Expired leases, as docs/rules.md, Messages says.

    A ``claimed`` message whose lease expired never reached a provider (the worker moves it to
    ``sending`` and commits before any call): it goes back to ``scheduled`` and its units are
    released, in one transaction, conditional on it still being ``claimed`` with that lease, so
    a worker taking it at the same moment and this recovery cannot both win.

    A ``sending`` message whose lease expired is settled by the sending engine
    (:func:`outreach.sending.engine.expire_sending`): ``sent`` if the provider accepted it,
    an expired claim (handled here) if its provider call never began, else ``unknown``, never
    resent without reconciliation (a duplicate cold email is worse than a missing one).
    Quota stays used once a provider was called.

    A ``retry`` message whose mailbox can no longer send is stranded: see
    :func:`return_stranded_retries`.
    """
    report = RecoveryReport()
    # First, so that a killed worker's messages whose call never began are expired claims
    # below: back to routing in this same pass.
    report.unknown = _expire_sending(now, limit)
    pool = PoolSettings.load()
    limits = pool.limits
    expired = list(
        Message.objects.filter(state=Message.State.CLAIMED, lease_expires_at__lt=now)
        .select_related("mailbox")
        .order_by("lease_expires_at")[:limit]
    )
    for message in expired:
        reservation = None
        if message.mailbox is not None:
            reservation = held_reservation(message, message.mailbox.domain_id, limits)
        with transaction.atomic():
            back = Message.objects.filter(
                pk=message.pk,
                state=Message.State.CLAIMED,
                lease_expires_at=message.lease_expires_at,
            ).update(
                state=Message.State.SCHEDULED,
                mailbox=None,
                provider_account=None,
                claimed_by="",
                lease_expires_at=None,
                quota_day=None,
                updated_at=now,
            )
            if back == 1 and reservation is not None and message.quota_day is not None:
                release(message.quota_day, reservation.keys())
        report.released += back
    if report.released or report.unknown:
        log.warning(
            "leases: %d claimed message(s) back to scheduled, %d sending message(s) unknown",
            report.released,
            report.unknown,
        )
    report.stranded = return_stranded_retries(now, limit=limit)
    return report


def return_stranded_retries(now: datetime, *, limit: int = 1000) -> int:
    """``retry`` messages whose mailbox can no longer send (paused, in cooldown, retired, or
    its domain not active) go back to ``scheduled``, to wait as every unclaimed message does.

    Left in ``retry`` they would wait for that mailbox with no limit. Back in ``scheduled``
    (mailbox and claim cleared, backoff kept) a first message is routed to another mailbox,
    and a follow-up keeps waiting for its thread's mailbox until its wait limit, then is
    cancelled (docs/rules.md, Routing: never silently moved). Their units stay used: a provider
    was called. Conditional on the message still being ``retry``: a worker taking it at the
    same moment and this pass cannot both win.
    """
    stranded = list(
        Message.objects.filter(state=Message.State.RETRY, mailbox__isnull=False)
        .exclude(
            mailbox__state__in=SENDING_STATES,
            mailbox__domain__state=Domain.State.ACTIVE,
        )
        .values_list("pk", flat=True)[:limit]
    )
    if not stranded:
        return 0
    back_to_router = {
        "state": Message.State.SCHEDULED,
        "mailbox": None,
        "provider_account": None,
        "claimed_by": "",
        "lease_expires_at": None,
        "quota_day": None,
        "updated_at": now,
    }
    waiting = Message.objects.filter(pk__in=stranded, state=Message.State.RETRY)
    back = waiting.filter(pinned_mailbox__isnull=False).update(**back_to_router)
    # A first message may leave from another domain: its Message-ID, named after the old
    # domain, would tie the two together. Its next take gives it one on the new domain.
    back += waiting.filter(pinned_mailbox__isnull=True).update(
        **back_to_router, message_id_header=None
    )
    if back:
        log.warning("%d retry message(s) of mailboxes that cannot send back to scheduled", back)
    return back


def cancel_expired(now: datetime, *, limit: int = 1000) -> int:
    """Scheduled messages past ``expires_at`` are cancelled (a follow-up that waited too long
    for its thread's mailbox); their enrollments stop with ``mailbox_unavailable``."""
    cancelled = 0
    expired = list(
        Message.objects.filter(state=Message.State.SCHEDULED, expires_at__lt=now).values_list(
            "pk", "enrollment_id"
        )[:limit]
    )
    for message_id, enrollment_id in expired:
        with transaction.atomic():
            done = Message.objects.filter(pk=message_id, state=Message.State.SCHEDULED).update(
                state=Message.State.CANCELLED,
                last_error="its thread's mailbox could not send before the wait limit",
                updated_at=now,
            )
            if done and enrollment_id is not None:
                Enrollment.objects.filter(pk=enrollment_id, state=Enrollment.State.ACTIVE).update(
                    state=Enrollment.State.STOPPED,
                    stop_reason=Enrollment.StopReason.MAILBOX_UNAVAILABLE,
                    stopped_at=now,
                    next_due_at=None,
                )
        cancelled += done
    return cancelled
