"""A scheduler or a sending worker process on simulated time, driven step by step.

``python -m outreach.tests.soakdriver scheduler|worker [--concurrency N]`` reads one ISO 8601
instant per line on stdin, pins the engine clock (:mod:`outreach.lib.clock`) to it, does the
work of that instant with the real engine code, and answers one JSON line on stdout:

- ``scheduler``: one pass of the control plane (``run_pass``: leases, planning, health rules,
  routing and claiming; no sending);
- ``worker``: the sending worker's tick and batches (``Worker.on_tick`` + ``handle_one``) until
  nothing is due;
- ``web --bind HOST:PORT``: the web app (the WSGI application ``outreach run`` serves, on
  waitress), each request on the instant its ``X-Soak-Clock`` header gives, so what a webhook
  writes (events, rollups, pauses and the alerts' figures) is dated on the simulated day.
  One server thread: the clock is process-wide.

The processes share nothing but the database and the instants the driver hands them, so a
month runs in minutes while every hand-over between them stays the production one: claims and
takes are the same conditional UPDATEs as in ``outreach scheduler`` and ``outreach worker``.
EOF at stdin ends the process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import datetime

import django


def _scheduler() -> Callable[[datetime], dict[str, object]]:
    import random

    from outreach.scheduler import claim
    from outreach.scheduler.engine import run_pass

    rng = random.Random(os.getpid())
    name = claim.worker_name()

    def step(now: datetime) -> dict[str, object]:
        report = run_pass(now, send=False, health=True, worker=name, rng=rng)
        return {
            "claimed": report.claimed,
            "planned": report.planned,
            "unknown": report.unknown,
            "found_sent": report.found_sent,
            "resent": report.resent,
        }

    return step


def _worker(concurrency: int) -> tuple[Callable[[datetime], dict[str, object]], Callable[[], None]]:
    from outreach.sending.engine import Worker

    worker = Worker(concurrency=concurrency)

    def step(now: datetime) -> dict[str, object]:
        worker.on_tick()
        batches = 0
        while worker.handle_one() and batches < 10_000:
            batches += 1
        return {"batches": batches}

    return step, worker.close


def _web(bind: str) -> None:
    from typing import Any

    from waitress import serve

    from outreach.lib import clock
    from outreach.wsgi import application

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        at = environ.get("HTTP_X_SOAK_CLOCK")
        clock.set_now(datetime.fromisoformat(at) if at else None)
        return application(environ, start_response)

    host, _, port = bind.rpartition(":")
    serve(app, host=host, port=int(port), threads=1, ident="outreach")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="soakdriver")
    parser.add_argument("role", choices=["scheduler", "worker", "web"])
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--bind", default="127.0.0.1:8000", help="web: where to listen")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "outreach.settings")
    django.setup()
    if args.role == "web":
        _web(args.bind)
        return
    from outreach.lib import clock

    close: Callable[[], None] = lambda: None  # noqa: E731
    if args.role == "scheduler":
        step = _scheduler()
    else:
        step, close = _worker(args.concurrency)
    try:
        for line in sys.stdin:
            now = datetime.fromisoformat(line.strip())
            clock.set_now(now)
            print(json.dumps(step(now)), flush=True)
    finally:
        close()


if __name__ == "__main__":
    main()
