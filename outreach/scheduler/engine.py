"""One pass of the control plane, and the ``scheduler`` loop that repeats it.

:func:`run_pass` is what ``outreach tick`` runs once and what the scheduler loop runs again
and again: recover expired leases, cancel follow-ups that waited too long, plan due enrollment
steps, plan warm-up, graduate warmed-up mailboxes, route and claim, and (for ``tick`` and the
simulation) hand the claimed messages to the sending engine when it is installed.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from outreach.lib import clock, dbstats
from outreach.lib.loop import Loop
from outreach.scheduler import claim, planning, recovery, routing_pass, warmup

log = logging.getLogger(__name__)


@dataclass
class PassSteps:
    """The steps of a pass that belong to layers above the scheduler, lent at start-up by
    their apps' ``ready`` (the sending engine and the health rules), so that the scheduler
    imports none of them. A step nobody lent is skipped."""

    reconcile: Callable[[datetime], Any] | None = None  # messages in doubt -> .sent, .resent
    send_due: Callable[[datetime], int] | None = None  # one batch of due messages sent
    health: Callable[[], Any] | None = None  # the health rules' periodic evaluation


steps = PassSteps()


def lend(**given: Callable[..., Any]) -> None:
    """Called by an app above the scheduler at start-up (idempotent)."""
    for name, function in given.items():
        if not hasattr(steps, name):
            raise TypeError(f"a pass has no step {name!r}")
        setattr(steps, name, function)


@dataclass
class PassReport:
    """What one pass did."""

    now: datetime
    released: int = 0  # expired claims back to scheduled, units released
    unknown: int = 0  # expired sending leases whose call began: in doubt
    found_sent: int = 0  # in doubt, then found at the provider or in a Sent folder
    resent: int = 0  # in doubt, not found after the grace: back to routing
    cancelled: int = 0  # follow-ups past their wait limit
    settled: int = 0  # enrollments with nothing planned given their next step or their end
    stranded: int = 0  # retries of mailboxes that cannot send, back to scheduled
    planned: int = 0
    finished: int = 0
    suppressed: int = 0
    warmup_planned: int = 0
    graduated: int = 0
    claimed: int = 0
    deferred: int = 0
    refused: int = 0
    sent: int | None = None  # None: the sending engine is not installed or not asked
    claimed_by_mailbox: dict[int, int] = field(default_factory=dict)

    @property
    def busy(self) -> bool:
        return bool(
            self.released
            or self.unknown
            or self.found_sent
            or self.resent
            or self.stranded
            or self.cancelled
            or self.settled
            or self.planned
            or self.warmup_planned
            or self.graduated
            or self.claimed
            or self.deferred
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["now"] = self.now.isoformat()
        data["claimed_by_mailbox"] = {str(k): v for k, v in self.claimed_by_mailbox.items()}
        return data


def run_pass(
    now: datetime,
    *,
    send: bool = True,
    health: bool = True,
    worker: str | None = None,
    rng: random.Random | None = None,
) -> PassReport:
    """One complete pass of the control plane as if it were ``now``.

    1. Leases: expired claims go back to ``scheduled`` (units released), expired ``sending``
       is settled (``sent``, back to routing, or ``unknown`` when its call began), messages in
       doubt are reconciled (the sending engine's reconciliation), retries of mailboxes that
       cannot send go back to ``scheduled``; follow-ups past their wait limit are cancelled;
       enrollments left with nothing planned get their next step or their end
       (:func:`planning.settle_stranded`).
    2. Planning: due enrollment steps become scheduled messages; warm-up mail is planned.
    3. Graduation: warming mailboxes that meet the rule become ``active``.
    4. With ``health``, the health rules (when installed) run their periodic evaluation.
    5. Routing: every due message that fits is claimed.
    6. With ``send``, the sending engine (when installed) sends what is due.
    """
    rng = rng or random.Random()
    report = PassReport(now=now)
    recovered = recovery.recover_leases(now)
    report.released, report.unknown = recovered.released, recovered.unknown
    report.stranded = recovered.stranded
    try:
        if steps.reconcile is not None:
            settled = steps.reconcile(now)
            report.found_sent, report.resent = settled.sent, settled.resent
    except Exception:
        # Lookups reach IMAP servers and provider APIs: their failure must not stop routing.
        log.exception("reconciliation of messages in doubt failed during the pass")
    report.cancelled = recovery.cancel_expired(now)
    report.settled = planning.settle_stranded(now)
    plan = planning.plan_due(now)
    report.planned, report.finished, report.suppressed = (
        plan.planned,
        plan.finished,
        plan.suppressed,
    )
    report.warmup_planned = warmup.plan_warmup(now, rng).planned
    report.graduated = warmup.graduate(now)
    if health and steps.health is not None:
        try:
            steps.health()
        except Exception:
            # The health rules are another part: their failure must not stop routing.
            log.exception("health evaluation failed during the pass")
    claims = routing_pass.claim_due(now, worker=worker, rng=rng)
    report.claimed, report.deferred, report.refused = (
        claims.claimed,
        claims.deferred,
        claims.refused,
    )
    report.claimed_by_mailbox = claims.by_mailbox
    if send:
        report.sent = _send_all_due(now)
    return report


def _send_all_due(now: datetime) -> int | None:
    """Hand every due message to the sending engine, batch after batch (bounded); None when
    no sending engine lent its step."""
    if steps.send_due is None:
        return None
    total = 0
    for _ in range(1000):
        taken = steps.send_due(now)
        total += taken
        if taken == 0:
            break
    return total


def make_loop(stop: threading.Event) -> Loop:
    """The scheduler loop for ``outreach run`` and ``outreach scheduler``: a pass at the
    clock's now. The sending workers send what it claims and the alerts loop runs the health
    rules, each in its own loop."""
    rng = random.Random()
    worker = claim.worker_name()

    def handle_one() -> bool:
        report = run_pass(clock.now(), send=False, health=False, worker=worker, rng=rng)
        if report.busy:
            log.info(
                "scheduler: planned %d, warm-up %d, claimed %d, deferred %d, released %d",
                report.planned,
                report.warmup_planned,
                report.claimed,
                report.deferred,
                report.released,
            )
        # A pass claims everything that fits now; one more pass picks up what became due
        # meanwhile, then the loop sleeps until pacing frees mailboxes again.
        return report.busy

    return Loop(
        name="scheduler",
        handle_one=handle_one,
        idle_seconds=5.0,
        on_tick=dbstats.refresh,
        stop=stop,
    )
