"""Failover: a circuit breaker per provider account, kept in the database.

Several workers on several machines must agree on whether a provider is down, so the state
lives in :class:`~outreach.sending.models.ProviderCircuit` and every change is a conditional
UPDATE (STYLE habit 2): two workers seeing the fifth failure at once open the circuit once,
and only one of them wins the half-open probe.

Opening and closing are written to the audit log (``StateChange`` with ``provider=``) and sent
as ``outreach.sending.signals.circuit_changed``, on which the alerts raise theirs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F

from outreach.lib import clock, sql
from outreach.pool.models import ProviderAccount, StateChange
from outreach.sending import hooks
from outreach.sending.models import ProviderCircuit
from outreach.sending.signals import circuit_changed

log = logging.getLogger(__name__)

State = ProviderCircuit.State


@dataclass(frozen=True)
class CircuitPolicy:
    # Five transient failures in a row: one flaky reply is noise, five is an outage.
    failure_threshold: int = 5
    # How long sends go to the standby before one probe tries the primary again.
    open_seconds: int = 60
    # A probe not concluded within this (its worker died) may be taken by another worker.
    probe_seconds: int = 120


POLICY = CircuitPolicy()


class Router:
    """Chooses the provider account of each send, for one batch of sends.

    The primary when its circuit is closed; the primary for one probe when its open period is
    over; else its standby when the standby's circuit lets it; else nothing (the message waits).
    """

    def __init__(self, now: datetime, policy: CircuitPolicy = POLICY) -> None:
        self.now = now
        self.policy = policy
        self._circuits = {
            c.provider_account_id: c for c in sql.load_every(ProviderCircuit).values()
        }
        self._unhealthy = _unhealthy_accounts()

    def is_clean(self, account_id: int) -> bool:
        """The account's circuit is closed with no failure counted (as read for this batch)."""
        circuit = self._circuits.get(account_id)
        return circuit is None or (circuit.state == State.CLOSED and circuit.failures == 0)

    def route(self, account: ProviderAccount) -> ProviderAccount | None:
        if self._usable(account):
            return account
        standby = account.standby
        if standby is not None and standby.enabled and self._usable(standby):
            return standby
        return None

    def _usable(self, account: ProviderAccount) -> bool:
        if not account.enabled:
            return False
        circuit = self._circuits.get(account.pk)
        if account.pk in self._unhealthy and circuit is not None and circuit.state != State.CLOSED:
            # The provider itself says the account must not send (SES PROBATION, SHUTDOWN,
            # quota used up): no probe until its health check says otherwise.
            return False
        if circuit is None or circuit.state == State.CLOSED:
            return True
        if circuit.state == State.OPEN and circuit.retry_at and circuit.retry_at <= self.now:
            return self._take_probe(circuit, State.OPEN)
        if (
            circuit.state == State.HALF_OPEN
            and circuit.probe_until is not None
            and circuit.probe_until <= self.now
        ):
            return self._take_probe(circuit, State.HALF_OPEN)
        return False

    def _take_probe(self, circuit: ProviderCircuit, from_state: str) -> bool:
        probe_until = self.now + timedelta(seconds=self.policy.probe_seconds)
        # Race: every worker sees the open period end at once; the conditional UPDATE lets
        # exactly one of them send the probe, the others keep using the standby.
        won = (
            ProviderCircuit.objects.filter(
                pk=circuit.pk, state=from_state, probe_until=circuit.probe_until
            ).update(state=State.HALF_OPEN, probe_until=probe_until, updated_at=self.now)
            == 1
        )
        circuit.state = State.HALF_OPEN
        circuit.probe_until = probe_until
        if won:
            log.info("circuit of provider %s: half-open, probing", circuit.provider_account_id)
        return won


def _unhealthy_accounts() -> set[int]:
    return set(hooks.provider_problems())


def record_success(account: ProviderAccount) -> None:
    """A send through ``account`` succeeded: reset the failure count, close an open circuit."""
    circuit = ProviderCircuit.objects.filter(provider_account=account).first()
    if circuit is None or (circuit.state == State.CLOSED and circuit.failures == 0):
        return
    now = clock.now()
    if circuit.state == State.CLOSED:
        ProviderCircuit.objects.filter(pk=circuit.pk, state=State.CLOSED).update(failures=0)
        return
    _change(
        account,
        circuit,
        State.CLOSED,
        reason="a send succeeded again",
        figures={"failures": circuit.failures},
        extra={"failures": 0, "retry_at": None, "probe_until": None, "opened_at": None},
        now=now,
    )


def record_failure(account: ProviderAccount, error: str, policy: CircuitPolicy = POLICY) -> None:
    """A transient failure of ``account``: count it; open the circuit at the threshold."""
    circuit, _ = ProviderCircuit.objects.get_or_create(provider_account=account)
    ProviderCircuit.objects.filter(pk=circuit.pk).update(failures=F("failures") + 1)
    circuit.refresh_from_db()
    if circuit.state == State.HALF_OPEN or (
        circuit.state == State.CLOSED and circuit.failures >= policy.failure_threshold
    ):
        open_circuit(
            account,
            reason=f"{circuit.failures} transient failures in a row; last: {error[:300]}",
            figures={"failures": circuit.failures},
            circuit=circuit,
            policy=policy,
        )


def open_circuit(
    account: ProviderAccount,
    *,
    reason: str,
    figures: dict[str, Any] | None = None,
    circuit: ProviderCircuit | None = None,
    policy: CircuitPolicy = POLICY,
) -> bool:
    """Open ``account``'s circuit (sends go to its standby); False when it already was open."""
    if circuit is None:
        circuit, _ = ProviderCircuit.objects.get_or_create(provider_account=account)
    if circuit.state == State.OPEN:
        return False
    now = clock.now()
    return _change(
        account,
        circuit,
        State.OPEN,
        reason=reason,
        figures=figures or {},
        extra={
            "opened_at": now,
            "retry_at": now + timedelta(seconds=policy.open_seconds),
            "probe_until": None,
        },
        now=now,
    )


def _change(
    account: ProviderAccount,
    circuit: ProviderCircuit,
    to_state: str,
    *,
    reason: str,
    figures: dict[str, Any],
    extra: dict[str, Any],
    now: datetime,
) -> bool:
    from_state = circuit.state
    with transaction.atomic():
        updated = ProviderCircuit.objects.filter(pk=circuit.pk, state=from_state).update(
            state=to_state, reason=reason[:500], updated_at=now, **extra
        )
        if updated != 1:
            return False
        StateChange.objects.create(
            provider=account,
            from_state=from_state,
            to_state=to_state,
            reason=f"circuit {to_state}: {reason}"[:500],
            figures={**figures, "standby": account.standby.name if account.standby else None},
            actor="system:circuit",
            at=now,
        )
    log.warning("circuit of provider %s: %s → %s (%s)", account.name, from_state, to_state, reason)
    # Robust: each listener (the alerts among them) runs even when another fails.
    for receiver, answer in circuit_changed.send_robust(
        sender=ProviderCircuit,
        account=account,
        from_state=from_state,
        to_state=to_state,
        reason=reason,
    ):
        if isinstance(answer, Exception):
            log.error("circuit_changed listener %r failed", receiver, exc_info=answer)
    return True
