"""The sending engine: claimed messages out through their provider, at most once.

The flow of one message (docs/rules.md, Messages), one module per step:

1. **Take** (:mod:`outreach.sending.take`): a conditional UPDATE ``claimed``/due ``retry`` →
   ``sending``, only while the mailbox (and its domain) may still send, the sequence is live
   and the address is not suppressed, choosing the provider account (primary, or its standby
   while the primary's circuit is open). The transaction **commits before any provider
   call**: a process killed during the call leaves a ``sending`` row whose lease expires into
   ``unknown``, never resent automatically.
2. **Send** (:mod:`outreach.sending.deliver`): render, build the MIME message, commit that
   the call begins (``begin_call``, which also records the connection's previous acceptance),
   hand it to the provider.
3. **Finish** (:mod:`outreach.sending.finish`, once per batch of calls): ``sent`` (enrollment
   advanced), ``retry`` (transient; backoff with jitter, bounded attempts then ``failed``),
   ``failed`` (permanent; a hard bounce suppresses the address, a policy block records a
   ``blocked`` event, an authentication failure pauses the mailbox). Every provider call is a
   ``SendAttempt``; each finished batch is one ``send_attempted`` signal carrying them all.
4. **Recovery** (:mod:`outreach.sending.recovery`): a killed worker's messages whose call
   never began go back to routing, accepted ones are finished as ``sent``: at most one per
   connection is in doubt. A process killed between a call and the finish leaves ``sending``
   rows, settled the same way after their lease.

Quota was reserved when the message was claimed and is never released after a provider call.

This module is the worker that runs the steps: :class:`Worker` (``outreach worker`` and the
``worker`` loop of ``outreach run``) and :func:`send_due` (one batch in this thread).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from outreach.lib import clock, dbstats
from outreach.lib.loop import Loop
from outreach.pool.models import ProviderAccount
from outreach.sending import circuit, hooks
from outreach.sending.deliver import (
    Called,
    Prepared,
    ProviderCache,
    call_provider,
    deliver,
    load_taken,
    prepare_call,
)
from outreach.sending.finish import finish_batch
from outreach.sending.recovery import expire_sending
from outreach.sending.take import default_policy, take_batch, worker_name


def sync_provider_health() -> int:
    """Open the circuit of every account the health check (``alerts.ProviderHealth``) found
    unhealthy (SES SendingEnabled false, PROBATION/SHUTDOWN, quota nearly used)."""
    unhealthy = hooks.provider_problems()
    opened = 0
    for account in ProviderAccount.objects.filter(pk__in=unhealthy).select_related("standby"):
        problems = unhealthy[account.pk]
        said = "; ".join(str(p) for p in problems) or "reported unhealthy"
        if circuit.open_circuit(
            account,
            reason=f"provider health: {said}"[:400],
            figures={"problems": problems},
        ):
            opened += 1
    return opened


def send_due(now: datetime | None = None, *, limit: int = 100, worker: str | None = None) -> int:
    """Take and send up to ``limit`` due messages in this thread; returns how many were taken."""
    worker = worker or worker_name()
    taken = take_batch(worker, now or clock.now(), limit)
    if not taken:
        return 0
    providers = ProviderCache()
    try:
        finish_batch([call_provider(m, t, providers=providers) for m, t in load_taken(taken)])
    finally:
        providers.close()
    return len(taken)


class Worker:
    """``outreach worker``: takes due messages in batches and sends them on ``concurrency``
    threads; a batch is finished before the next is taken and before a stop is honoured."""

    HEALTH_EVERY = timedelta(minutes=1)
    # Messages taken per thread and batch: the take, the loading and the finish cost about as
    # much for one message as for a hundred (a few dozen ORM statements), so a batch spreads
    # them; a stop request still waits for at most a few seconds of work (50 sends at a
    # provider's usual 20-100 ms). A kill leaves at most one message per connection in doubt
    # whatever the batch (begin_call).
    BATCH_PER_THREAD = 50

    def __init__(self, concurrency: int | None = None, name: str | None = None) -> None:
        self.policy = default_policy()
        self.concurrency = max(1, concurrency or self.policy.concurrency)
        self.name = name or worker_name()
        self._local = threading.local()
        self._caches: list[ProviderCache] = []
        self._caches_lock = threading.Lock()
        self._pool = (
            ThreadPoolExecutor(self.concurrency, thread_name_prefix="send")
            if self.concurrency > 1
            else None
        )
        self._next_health: datetime | None = None

    def handle_one(self) -> bool:
        taken = take_batch(
            self.name, clock.now(), self.concurrency * self.BATCH_PER_THREAD, self.policy
        )
        if not taken:
            return False
        # Rendering and building happen here, one message after the other, each handed to
        # the sending threads as soon as it is built: the threads only talk to providers
        # (waiting on sockets, not competing for the interpreter) while the next is built.
        ready = (prepare_call(message, t) for message, t in load_taken(taken))
        if self._pool is None:
            batch = [self._deliver(item) for item in ready]
        else:
            batch = [
                future.result()
                for future in [self._pool.submit(self._deliver, item) for item in ready]
            ]
        # The batch's bookkeeping in one transaction, from this thread: the sending threads
        # never wait for each other's database writes.
        finish_batch(batch, self.policy)
        return True

    def on_tick(self) -> None:
        now = clock.now()
        dbstats.refresh()
        expire_sending(now)
        if self._next_health is None or now >= self._next_health:
            sync_provider_health()
            self._next_health = now + self.HEALTH_EVERY

    def _deliver(self, item: Prepared | Called) -> Called:
        cache = getattr(self._local, "providers", None)
        if cache is None:
            cache = self._local.providers = ProviderCache()
            with self._caches_lock:
                self._caches.append(cache)
        try:
            return deliver(item, providers=cache)
        finally:
            if self._pool is not None:
                _close_thread_connection()

    def close(self) -> None:
        if self._pool is not None:
            # One task per thread (the barrier keeps any thread from taking two), each closing
            # its own database connection: connections belong to the thread that opened them.
            barrier = threading.Barrier(self.concurrency)

            def close_own() -> None:
                from django.db import connections

                try:
                    barrier.wait(timeout=10)
                except threading.BrokenBarrierError:
                    pass
                connections.close_all()

            for future in [self._pool.submit(close_own) for _ in range(self.concurrency)]:
                future.result()
            self._pool.shutdown(wait=True)
        with self._caches_lock:
            for cache in self._caches:
                cache.close()
            self._caches.clear()


def _close_thread_connection() -> None:
    """A sending thread keeps its database connection between calls (:func:`begin_call`
    writes through it before every call; reopening it each time, as ``CONN_MAX_AGE=0`` does
    on SQLite, cost more than the write). One an error left unusable is closed, to be
    opened again by the next call."""
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        if conn.errors_occurred and not conn.is_usable():
            conn.close()


def make_loop(stop: threading.Event) -> Loop:
    """The worker loop for ``outreach run`` (listed in ``settings.OUTREACH_LOOPS``)."""
    worker = Worker()
    return Loop(
        name="worker",
        handle_one=worker.handle_one,
        idle_seconds=1.0,
        on_tick=worker.on_tick,
        on_stop=worker.close,
        stop=stop,
    )
