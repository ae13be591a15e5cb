"""Settling the ``sending`` messages of a worker that died or stalled (see
:mod:`outreach.sending.engine`): at most one per connection is left in doubt."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from outreach.campaigns.models import Message
from outreach.providers.base import SendResult
from outreach.sending.deliver import Called, load_taken
from outreach.sending.finish import finish_batch
from outreach.sending.take import State, Taken, worker_name


def expire_sending(now: datetime, *, limit: int = 1000) -> int:
    """``sending`` rows whose lease ran out (their worker died or stalled), settled by what
    :func:`begin_call` wrote; returns how many became ``unknown``. The scheduler's recovery
    calls this too; a worker calling it keeps a worker-only deployment honest.

    1. The provider accepted the call: finished as ``sent``, as its worker would have.
    2. The call never began: nothing went out. A first attempt goes back to ``claimed`` with
       its lease run out, so the scheduler's recovery releases its units and routes it again;
       a retry goes back to ``retry``, due now (its units were used by an earlier call).
    3. The call began and no answer was written: ``unknown``, for reconciliation
       (:mod:`outreach.sending.reconcile`); never resent without it.

    Each step is conditional on the row still being ``sending`` with its lease run out, so
    two recoveries (the scheduler's, a worker's) and a late worker never both win.
    """
    expired = Message.objects.filter(state=State.SENDING, lease_expires_at__lt=now)
    _finish_accepted(expired, now, limit)
    never_began = expired.filter(call_started_at__isnull=True)
    # Their lease stays run out: an expired claim, which only the scheduler's recovery takes.
    back = {"updated_at": now}
    # A first message may be routed to another domain: a Message-ID named after the old one
    # would tie the two together (the next take gives it a new one).
    never_began.filter(attempts=0, pinned_mailbox__isnull=True).update(
        state=State.CLAIMED, message_id_header=None, **back
    )
    never_began.filter(attempts=0).update(state=State.CLAIMED, **back)
    never_began.update(state=State.RETRY, not_before=now, lease_expires_at=None, updated_at=now)
    return expired.update(
        state=State.UNKNOWN,
        last_error="the provider call began and its worker stopped before recording the "
        "answer; not resent without reconciliation",
        updated_at=now,
    )


def _finish_accepted(expired: Any, now: datetime, limit: int) -> int:
    """Finish the accepted messages of ``expired`` as ``sent``; returns how many.

    They are first made this recovery's own (a conditional UPDATE of ``claimed_by``), so a
    second recovery running at the same moment finishes none of them twice.
    """
    pks = list(expired.filter(accepted_at__isnull=False).values_list("pk", flat=True)[:limit])
    if not pks:
        return 0
    me = f"recovery:{worker_name()}"[:128]
    expired.filter(pk__in=pks, accepted_at__isnull=False).update(claimed_by=me)
    mine = Message.objects.filter(pk__in=pks, state=State.SENDING, claimed_by=me)
    taken = [Taken(pk, account) for pk, account in mine.values_list("pk", "provider_account_id")]
    batch = [
        Called(
            message,
            message.provider_account,
            result=SendResult(
                message.provider_message_id,
                response="accepted; recorded after its worker stopped",
            ),
        )
        for message, _ in load_taken(taken)
        if message.provider_account is not None
    ]
    finish_batch(batch)
    return len(batch)
