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
import time
from concurrent.futures import Future, ThreadPoolExecutor
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
from outreach.sending.take import Taken, default_policy, take_batch, worker_name


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
    threads. With more than one thread the batches overlap: the next batch is taken and
    built, and the previous one finished, while the threads send the current one, so the
    connections never wait for the bookkeeping. Every batch taken is finished before
    :meth:`handle_one` returns, so a stop never leaves one half done."""

    HEALTH_EVERY = timedelta(minutes=1)
    # Messages taken per thread and batch: the take, the loading and the finish cost about as
    # much for one message as for a hundred (a few statements each), so a batch spreads
    # them; a stop request still waits for at most a few seconds of work (50 sends at a
    # provider's usual 20-100 ms). A kill leaves at most one message per connection in doubt
    # whatever the batch (begin_call).
    BATCH_PER_THREAD = 50
    # One handle_one() keeps batches overlapping for at most this long, then lets the last
    # one finish and returns, so the loop's heartbeat and tick (recovery, provider health;
    # Loop.tick_seconds) come between two calls under a backlog. Each return drains the
    # connections (the last messages of the last batch, then the next take and build before
    # the next call): at 20 ms a message, 30-50 ms of four connections' time, 1% of every
    # 5 seconds. A stop request does not wait for it (the loop's stop event is checked
    # between batches).
    PIPELINE_SECONDS = 30.0

    def __init__(
        self,
        concurrency: int | None = None,
        name: str | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.policy = default_policy()
        self.concurrency = max(1, concurrency or self.policy.concurrency)
        self.name = name or worker_name()
        self._stop = stop
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
        """Send due batches; False when none was due.

        1. Take a batch, and build its messages one after the other in this thread, each
           handed to the sending threads as soon as it is built: the threads only talk to
           providers (waiting on sockets, not competing for the interpreter).
        2. While they send it, take and build the next batch (queued behind it), then wait
           for the current batch's calls and finish it, from this thread: the sending
           threads never wait for the batch's database writes.
        3. Repeat until nothing is due, the stop event is set or ``PIPELINE_SECONDS`` ran
           out; finish the last batch.

        Overlapping changes no promise: each message is ``sending`` for this worker from its
        take on, and its call begins only through :func:`begin_call`.
        """
        if self._pool is None:
            taken = self._take()
            if not taken:
                return False
            batch = [self._deliver(prepare_call(m, t)) for m, t in load_taken(taken)]
            finish_batch(batch, self.policy)
            return True
        pool = self._pool
        deadline = time.monotonic() + self.PIPELINE_SECONDS
        # The batches handed to the threads and not finished yet, oldest first (two at most).
        in_flight: list[list[Future[Called]]] = []
        handled = False
        try:
            while True:
                # The first batch is always taken: the loop checked the stop before calling.
                stopping = bool(in_flight) and (
                    time.monotonic() >= deadline or (self._stop is not None and self._stop.is_set())
                )
                taken = [] if stopping else self._take()
                if taken:
                    handled = True
                    futures: list[Future[Called]] = []
                    in_flight.append(futures)
                    for message, t in load_taken(taken):
                        futures.append(pool.submit(self._deliver, prepare_call(message, t)))
                if in_flight and (len(in_flight) > 1 or not taken):
                    self._finish(in_flight.pop(0))
                if not taken:
                    return handled
        finally:
            # After an error too: the calls handed to the threads go out, and are recorded
            # as a batch that ends normally would be.
            while in_flight:
                self._finish(in_flight.pop(0))

    def _finish(self, futures: list[Future[Called]]) -> None:
        finish_batch([future.result() for future in futures], self.policy)

    def _take(self) -> list[Taken]:
        return take_batch(
            self.name, clock.now(), self.concurrency * self.BATCH_PER_THREAD, self.policy
        )

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
    worker = Worker(stop=stop)
    return Loop(
        name="worker",
        handle_one=worker.handle_one,
        idle_seconds=1.0,
        on_tick=worker.on_tick,
        on_stop=worker.close,
        stop=stop,
    )
