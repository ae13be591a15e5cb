"""Complaint to stop: how long from a complaint webhook to its mailbox being unable to send.

    .venv/bin/python bench/complaint_to_pause.py [--json] [--count 40] [--postgres URL]

The app is served as in production (waitress, as ``outreach run``) in a child process over a
fresh database (embedded SQLite in a scratch directory by default; with --postgres a scratch
database on that server, dropped afterwards). For each of ``--count`` mailboxes, each with a
sent message, the benchmark:

1. claims a message on the mailbox (as the scheduler does) and posts a Postmark
   spam-complaint webhook about the sent message (basic auth, over HTTP);
2. as soon as the webhook is answered, runs the sending worker's take step
   (``outreach.sending.take.take_batch``) from this process, on its own connection, and
   checks the claimed message was refused and the mailbox is paused;
3. records the time from the start of the POST to the answer (the pause commits in the
   webhook's transaction, so this bounds complaint → pause) and to the worker's refusal.

Prints median, p95 and max of both (goal: under one second; the seed only asks for the day).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PG_DB = "outreach_bench_complaint"
SECRET = ("bench", "bench-webhook-secret")


def serve(port: int) -> None:
    """Child: the app under waitress."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "outreach.settings")
    django.setup()
    from waitress.server import create_server

    from outreach.wsgi import application

    server = create_server(application, host="127.0.0.1", port=port, threads=4, ident="outreach")
    print("ready", flush=True)
    server.run()


def setup_database(count: int) -> list[dict[str, Any]]:
    """Migrate; one mailbox per domain, each with a sent message."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "outreach.settings")
    django.setup()
    from django.core.management import call_command

    from outreach.campaigns.models import Message
    from outreach.lib import clock
    from outreach.testing import make_pool, make_provider

    call_command("migrate", verbosity=0, interactive=False)
    provider = make_provider("postmark", kind="postmark")
    boxes = make_pool(domains=count, mailboxes_per_domain=1, provider=provider)
    now = clock.now()
    cases = []
    for i, box in enumerate(boxes):
        sent = Message.objects.create(
            to_email=f"lead{i}@prospect.example.org",
            to_domain="prospect.example.org",
            mailbox=box,
            provider_account=provider,
            state=Message.State.SENT,
            provider_message_id=f"pm-bench-{i:04d}",
            message_id_header=f"<bench-{i}@{box.domain.name}>",
            sent_at=now,
        )
        cases.append({"mailbox": box.pk, "sent": sent.pk, "to": sent.to_email, "n": i})
    return cases


def claim(case: dict[str, Any]) -> Any:
    """A message the scheduler has claimed on the case's mailbox, waiting for a worker."""
    from outreach.campaigns.models import Message
    from outreach.lib import clock

    now = clock.now()
    return Message.objects.create(
        to_email=f"next{case['n']}@prospect.example.org",
        to_domain="prospect.example.org",
        mailbox_id=case["mailbox"],
        provider_account=Message.objects.get(pk=case["sent"]).provider_account,
        state=Message.State.CLAIMED,
        claimed_by="bench-scheduler",
        lease_expires_at=now + timedelta(hours=1),
        quota_day=now.date(),
    )


def complaint(case: dict[str, Any], n: int) -> dict[str, Any]:
    """A Postmark SpamComplaint webhook, shaped as Postmark documents it."""
    return {
        "RecordType": "SpamComplaint",
        "MessageStream": "outbound",
        "ID": 4323372036854770000 + n,
        "Type": "SpamComplaint",
        "TypeCode": 512,
        "Name": "Spam complaint",
        "Tag": "outreach",
        "MessageID": f"pm-bench-{n:04d}",
        "Metadata": {"outreach_message_id": str(case["sent"])},
        "ServerID": 23,
        "Description": "",
        "Details": "Test spam complaint details",
        "Email": case["to"],
        "From": "rep1@bench.example.com",
        "BouncedAt": "2026-11-28T03:01:05.9070259Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": False,
        "Subject": "Quick question",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(p95 * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--postgres", metavar="URL", help="run on a scratch PostgreSQL database")
    parser.add_argument("--serve", metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve))
        return 0
    count = max(1, min(args.count, 500))

    scratch = tempfile.mkdtemp(prefix="outreach-bench-complaint-")
    env = {
        **os.environ,
        "OUTREACH_VAR_DIR": scratch,
        "SECRET_KEY": "bench-secret-key",
        "OUTREACH_WEBHOOK_SECRET": f"{SECRET[0]}:{SECRET[1]}",
        "OUTREACH_LOG_LEVEL": "ERROR",
        "DATABASE_URL": f"sqlite:///{scratch}/bench.sqlite3",
    }
    if args.postgres:
        import psycopg

        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {PG_DB}")
            conn.execute(f"CREATE DATABASE {PG_DB}")
        env["DATABASE_URL"] = args.postgres.rsplit("/", 1)[0] + f"/{PG_DB}"
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))

    cases = setup_database(count)
    import requests

    from outreach.campaigns.models import Message
    from outreach.lib import clock
    from outreach.pool.models import Mailbox
    from outreach.sending.take import take_batch

    port = free_port()
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port)], env=env, stdout=subprocess.PIPE, text=True
    )
    answered: list[float] = []
    refused: list[float] = []
    failures = 0
    try:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("the server did not start")
        url = f"http://127.0.0.1:{port}/webhooks/postmark/tracking/"
        session = requests.Session()
        session.get(f"http://127.0.0.1:{port}/healthz", timeout=30)  # warm the connection
        deadline = time.monotonic() + 300
        for n, case in enumerate(cases):
            if time.monotonic() > deadline:
                break
            # Claimed just now, so the worker's take step sees this message alone.
            case["claimed"] = claim(case).pk
            body = complaint(case, n)
            started = time.perf_counter()
            response = session.post(url, json=body, auth=SECRET, timeout=30)
            t_answer = time.perf_counter() - started
            taken = take_batch("bench-worker", clock.now(), limit=10)
            t_refused = time.perf_counter() - started
            state = Mailbox.objects.values_list("state", flat=True).get(pk=case["mailbox"])
            claimed_state = Message.objects.values_list("state", flat=True).get(pk=case["claimed"])
            if (
                response.status_code != 200
                or taken
                or state != "paused"
                or claimed_state != "claimed"
            ):
                failures += 1
                print(
                    f"complaint {n}: HTTP {response.status_code}, taken {taken}, mailbox "
                    f"{state}, claimed message {claimed_state}",
                    file=sys.stderr,
                )
                continue
            answered.append(t_answer)
            refused.append(t_refused)
    finally:
        child.terminate()
        child.wait(timeout=30)

    from django.db import connections

    connections.close_all()
    if args.postgres:
        import psycopg

        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
    if not answered:
        print("no complaint was measured", file=sys.stderr)
        return 1
    result = {
        "database": "postgresql" if args.postgres else "sqlite",
        "complaints": len(answered),
        "failures": failures,
        "webhook_answered": _ms(answered),
        "worker_refuses": _ms(refused),
        "goal_ms": 1000,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"complaint -> mailbox unable to send ({result['database']}, "
            f"{len(answered)} complaints, {failures} failures)"
        )
        print(f"{'':28} {'median':>9} {'p95':>9} {'max':>9}")
        for label, key in (
            ("webhook answered (paused)", "webhook_answered"),
            ("worker refuses the mailbox", "worker_refuses"),
        ):
            row = result[key]
            cells = (row["median_ms"], row["p95_ms"], row["max_ms"])
            print(f"{label:28} " + " ".join(f"{c:>7.1f}ms" for c in cells))
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
