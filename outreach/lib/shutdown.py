"""Stopping a long-running command on SIGTERM or SIGINT: a handler that cannot deadlock; a bound.

Why the signal handler does nothing: Python runs a handler on the main thread between two
bytecodes of whatever that thread was doing, including the previous run of the same handler. A
handler that calls ``stop.set()`` takes the event's lock, which is not re-entrant; a second
signal arriving while the first handler holds it (``timeout`` signals the process and its
group, an operator presses Ctrl-C twice, a container runtime signals the whole group) runs the
handler again inside the first, and the main thread waits for that lock for ever: it neither
serves nor exits. Logging takes locks too, and writing is I/O that can block.

So the Python-level handler only sets a plain attribute. Delivery goes through
:func:`signal.set_wakeup_fd`: the interpreter's C-level handler writes the signal number into a
pipe (an async-signal-safe ``write(2)``), and a watcher thread, outside any signal context,
reads it and does the rest (a process has one wakeup fd: nothing else in a command may claim
it, as asyncio's ``add_signal_handler`` would):

1. The first SIGTERM or SIGINT logs, makes :func:`stopping` true (``/healthz`` answers 503
   "stopping") and sets the command's ``stop`` event: loops finish their unit of work and end.
2. Every later signal is ignored (the first of them logged): a second signal never turns a
   clean stop into a crash. Once the work is done the process ignores them until it exits.
3. If the command has not finished ``grace_seconds`` after the first signal, the watcher ends
   the process with :data:`EXIT_STOP_TIMED_OUT`. That is the crash path: a message still
   ``sending`` becomes ``unknown`` when its lease runs out and is never resent.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import threading
import time
from types import FrameType, TracebackType

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)
# The exit status of a command that did not finish its in-flight work within its bound.
EXIT_STOP_TIMED_OUT = 3

# Set by the watcher thread on the first signal; read by /healthz from request threads.
_stopping = False


def stopping() -> bool:
    """True once this process has received SIGTERM or SIGINT and is finishing its work."""
    return _stopping


class Shutdown:
    """Sets ``stop`` on the first SIGTERM/SIGINT and ends the process ``grace_seconds`` later
    if it is still running. Installs itself when created (main thread only); leaving its
    ``with`` block means the command finished: the bound is disarmed (see :meth:`finish`).
    """

    def __init__(self, stop: threading.Event, grace_seconds: float) -> None:
        self.stop = stop
        self.grace_seconds = grace_seconds
        self.signals_received = 0  # the only thing the handler touches
        # True once a signal started the stop (set by the watcher, before ``stop``).
        self.signalled = False
        self._finished = threading.Event()
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)  # the C handler must never block on it
        try:
            self._previous_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        except ValueError:  # not the main thread
            os.close(self._read_fd)
            os.close(self._write_fd)
            raise
        self._previous = {signum: signal.signal(signum, self._on_signal) for signum in SIGNALS}
        self._watcher = threading.Thread(target=self._watch, name="shutdown", daemon=True)
        self._watcher.start()

    def __enter__(self) -> Shutdown:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish()

    def finish(self) -> None:
        """The command is done: disarm the bound. A process that was told to stop stays deaf to
        SIGTERM/SIGINT until it exits (the tail of a burst must not kill it with the default
        action); one that finished on its own gets its previous handlers back."""
        self._finished.set()
        told_to_stop = self.signalled or self.signals_received > 0
        for signum, previous in self._previous.items():
            signal.signal(signum, signal.SIG_IGN if told_to_stop else previous)
        signal.set_wakeup_fd(self._previous_fd)
        os.close(self._write_fd)  # the watcher reads end-of-file and ends
        self._watcher.join(timeout=5)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # No lock, no I/O, no call that could take either: see the module docstring. The
        # signal number already went into the wakeup pipe.
        self.signals_received += 1

    def _watch(self) -> None:
        deadline: float | None = None
        ignored = False
        with os.fdopen(self._read_fd, "rb", buffering=0) as pipe:
            while True:
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not select.select([pipe], [], [], timeout)[0]:
                    self._time_out()
                    return
                received = pipe.read(64)
                if not received or self._finished.is_set():
                    return
                for signum in received:
                    if signum not in SIGNALS:
                        continue  # another signal with a Python handler
                    if deadline is None:
                        deadline = time.monotonic() + self.grace_seconds
                        self._begin(signum)
                    elif not ignored:  # once: a burst of signals is not a burst of lines
                        ignored = True
                        log.warning(
                            "signal %s: already stopping; ignored, as are later ones "
                            "(exit within %.0f s)",
                            signal.Signals(signum).name,
                            max(0.0, deadline - time.monotonic()),
                        )

    def _begin(self, signum: int) -> None:
        global _stopping
        _stopping = True
        self.signalled = True
        log.info(
            "signal %s: finishing in-flight work (at most %.0f s)",
            signal.Signals(signum).name,
            self.grace_seconds,
        )
        self.stop.set()

    def _time_out(self) -> None:
        if self._finished.is_set():
            return
        log.error(
            "in-flight work did not finish within %.0f s of the stop signal; exiting now "
            "(messages still sending become unknown when their lease runs out)",
            self.grace_seconds,
        )
        os._exit(EXIT_STOP_TIMED_OUT)
