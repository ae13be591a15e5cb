"""``outreach run [--bind HOST:PORT]``: the web app and every engine loop in one process.

The web side is served by waitress: a production-grade, pure-Python, multi-threaded WSGI server
that runs in-process, so the engine loops (``settings.OUTREACH_LOOPS``) live in threads of the
same process and the whole system fits a small VPS. On PostgreSQL the loops can also run as
separate processes on other machines (``outreach scheduler``, ``outreach worker`` ...), and
``--no-loops`` then keeps this process to the web side.

SIGTERM/SIGINT let every loop finish its unit of work, within ``OUTREACH_SHUTDOWN_SECONDS``, while
the web server goes on answering (``/healthz``: 503 "stopping"); then the process exits.
"""

from __future__ import annotations

import logging
import signal
import threading
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.module_loading import import_string
from waitress.server import create_server

from outreach.lib.loop import Loop, run_loop, stop_on_signals
from outreach.wsgi import application

log = logging.getLogger(__name__)


def parse_bind(bind: str) -> tuple[str, int]:
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise CommandError(f"--bind: expected HOST:PORT, got {bind!r}")
    return host.strip("[]"), int(port)


class Command(BaseCommand):
    help = "Serve the app (waitress) and run the engine loops."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--bind", default="127.0.0.1:8000")
        parser.add_argument("--threads", type=int, default=8, help="web server threads")
        parser.add_argument("--no-loops", action="store_true", help="web only")

    def handle(self, *args: Any, **options: Any) -> None:
        host, port = parse_bind(options["bind"])
        stop = threading.Event()
        loops: list[Loop] = []
        if not options["no_loops"]:
            loops = [import_string(path)(stop) for path in settings.OUTREACH_LOOPS]
        threads = [
            threading.Thread(target=run_loop, args=(loop,), name=f"loop-{loop.name}", daemon=True)
            for loop in loops
        ]
        server = create_server(
            application, host=host, port=port, threads=options["threads"], ident="outreach"
        )

        def serve() -> None:
            try:
                server.run()
            finally:
                # The server only ends on an error: stop the loops as on SIGTERM.
                signal.raise_signal(signal.SIGTERM)

        # The web server runs in a thread and keeps serving during the stop (/healthz answers
        # 503 "stopping"); the main thread only waits, so no signal handler ever interrupts it
        # in the middle of something (outreach.lib.shutdown).
        web = threading.Thread(target=serve, name="web", daemon=True)
        with stop_on_signals(stop):
            for thread in threads:
                thread.start()
            web.start()
            names = ", ".join(loop.name for loop in loops) or "none"
            self.stdout.write(
                f"outreach serving on http://{host}:{server.effective_port} "  # type: ignore[union-attr]
                f"(loops: {names}); Ctrl-C or SIGTERM to stop",
            )
            self.stdout.flush()
            stop.wait()
            # Each loop finishes its unit of work; past OUTREACH_SHUTDOWN_SECONDS the process
            # exits without waiting.
            for thread in threads:
                thread.join()
        if not web.is_alive():
            raise CommandError("the web server stopped unexpectedly (see the log above)")
        self.stdout.write("outreach stopped")
