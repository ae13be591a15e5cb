"""Sending engine throughput against a local SMTP sink, next to a plain smtplib loop.

    .venv/bin/python bench/send_throughput.py [--messages 20000] [--mailboxes 300]
        [--connections 4] [--latency-ms 0] [--workers 1] [--json]

The sink is aiosmtpd in another process (it accepts and counts). The engine sends
``--messages`` claimed messages over ``--mailboxes`` mailboxes with ``--connections`` parallel
SMTP connections, doing all its bookkeeping (take, render, build, send, record, enrollment);
the baseline sends the same number of pre-built messages with plain smtplib over the same
number of connections to the same sink, once before the engine and once after (their mean is
the baseline: this machine's speed drifts). The ratio engine/baseline says how much the engine's
own work costs next to the protocol (goal: >= 0.9 with the sink at 20 ms).

Each run also measures CPU: the process time the engine's process (or worker processes) spent
per message sent, against the process time of the smtplib baseline per message
(``cpu_ratio`` = engine / smtplib, goal <= 2.0; lower is better). The database server's own
CPU is not counted in either.

By default it runs twice. First the sink answers at once: the protocol costs next to nothing
and the ratio is the engine's CPU per message (render, build, record) against smtplib's, its
worst case. Then the sink takes 20 ms per message, as a real server does (SES, Google and
Microsoft take tens to hundreds of milliseconds): the ratio says how much of the connections'
time the engine's bookkeeping leaves unused. ``--latency-ms N`` runs once, at N.

It also measures the **floor**: the CPU per message of what any engine that keeps
outreach's promises must do, on as many new messages, already taken and read: render and
build each message, commit that its call begins (the marker that leaves at most one message
per connection in doubt after a kill), send it with smtplib. ``floor_cpu_ratio`` (floor /
smtplib) is the least ``cpu_ratio`` could be; ``engine_floor_cpu_ratio`` (engine / floor) is
what the engine's own bookkeeping (take, load, finish, metrics, alerts) adds. The floor's
rate (marker and smtplib, the messages built beforehand) against smtplib's,
``floor_baseline_ratio``, is the most ``engine_baseline_ratio`` could be.

Measured: docs/scaling.md, Cost of a send, has the runs and what the figures mean.

``--dkim`` gives every mailbox a DKIM key: the engine then signs every message, as it does for
SMTP mailboxes of a domain that publishes DKIM (the baseline's messages stay unsigned: its
cost is the protocol's).

``--batch N`` takes N messages per connection and batch instead of the worker's 50: with
``--batch 1`` each batch of four connections holds four messages, as when the scheduler hands
the mission's 1,200 a day over a few at a time; what a batch costs before its first message
(the take's, the load's and the finish's statements) then counts for every few messages.

``--workers 2`` runs the engine as two worker processes sharing the connections (one per
core, as docs/scaling.md advises), started together after their set-up.

The database is ``DATABASE_URL`` (default: a fresh SQLite file under var/); on PostgreSQL a
database named ``outreach_bench`` (or ``OUTREACH_BENCH_DATABASE``) is created next to the one
in the URL and dropped after.
"""

from __future__ import annotations

import argparse
import json
import os
import smtplib
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
# The scratch database on PostgreSQL (dropped after): another name lets two benchmarks share
# a server.
BENCH_DATABASE = os.environ.get("OUTREACH_BENCH_DATABASE", "outreach_bench")
if not BENCH_DATABASE.isidentifier():
    raise SystemExit(f"OUTREACH_BENCH_DATABASE: not a plain name: {BENCH_DATABASE!r}")
sys.path.insert(0, str(ROOT))


def run_sink(port: int, latency_ms: float) -> None:
    """The sink process: accept every message, count nothing, answer 250 (after
    ``latency_ms``: a real server's time to take responsibility for a message)."""
    import asyncio

    from aiosmtpd.controller import Controller

    class Sink:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            if latency_ms:
                await asyncio.sleep(latency_ms / 1000)
            return "250 2.0.0 Ok: queued"

    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        asyncio.run(asyncio.sleep(3600))
    finally:
        controller.stop()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url() -> tuple[str, str | None]:
    """The URL to use, and the PostgreSQL maintenance URL to drop it with afterwards."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        path = ROOT / "var" / "bench_send.sqlite3"
        path.parent.mkdir(exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}", None
    import psycopg

    parsed = urlparse(url)
    admin = urlunparse(parsed._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE}")
        conn.execute(f"CREATE DATABASE {BENCH_DATABASE}")
    return urlunparse(parsed._replace(path=f"/{BENCH_DATABASE}")), admin


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "outreach.settings")
    os.environ.setdefault("OUTREACH_LOG_LEVEL", "WARNING")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


# The environment variable that holds the DKIM key of --dkim (a mailbox's secret reference).
DKIM_KEY_ENV = "OUTREACH_SECRET_BENCH_DKIM_KEY"


def prepare(messages: int, mailboxes: int, port: int, *, dkim: bool = False) -> None:
    """A pool of ``mailboxes`` on one SMTP account and ``messages`` claimed step-1 messages;
    with ``dkim``, every mailbox signs with a 2,048-bit key, as an SMTP mailbox whose domain
    publishes a DKIM record does (one key for the pool: signing costs the same per key)."""
    from outreach.pool.models import Mailbox, ProviderAccount
    from outreach.sending.tests.helpers import claimed_campaign_messages
    from outreach.testing import make_pool

    account = ProviderAccount.objects.create(
        name="sink",
        kind="smtp",
        settings={
            "host": "127.0.0.1",
            "port": port,
            "security": "none",
            "timeout": 10,
            "max_per_connection": 1_000_000,
        },
    )
    per_domain = 3
    make_pool(-(-mailboxes // per_domain), per_domain, provider=account)
    if dkim:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        os.environ[DKIM_KEY_ENV] = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        Mailbox.objects.update(
            settings={"dkim_selector": "s1"}, secrets={"dkim_private_key": f"env:{DKIM_KEY_ENV}"}
        )
    claimed_campaign_messages(messages, provider=account, steps=2, lease_seconds=3600)


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_engine(connections: int, batch: int | None = None) -> tuple[int, float]:
    from outreach.sending.engine import Worker

    worker = Worker(concurrency=connections)
    if batch:
        worker.BATCH_PER_THREAD = batch
    started = time.perf_counter()
    batches = 0
    try:
        while worker.handle_one():
            batches += 1
    finally:
        worker.close()
    elapsed = time.perf_counter() - started
    from outreach.campaigns.models import Message

    return Message.objects.filter(state="sent").count(), elapsed


def run_engine_processes(
    url: str, workers: int, connections: int, batch: int | None = None
) -> tuple[int, float]:
    """``workers`` worker processes sharing ``connections``, started together once each has
    set up (a worker's start-up is not the engine's sending speed)."""
    from django.db import connection

    from outreach.campaigns.models import Message

    connection.close()
    start_at = time.time() + 3.0
    per_worker = max(1, connections // workers)
    env = {**os.environ, "DATABASE_URL": url}
    children = [
        subprocess.Popen(
            [
                *(sys.executable, __file__, "--engine-child", str(per_worker), str(start_at)),
                *(["--batch", str(batch)] if batch else []),
            ],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    ends = []
    for child in children:
        out, _ = child.communicate(timeout=3600)
        assert child.returncode == 0
        ends.append(float(out.strip().splitlines()[-1]))
    return Message.objects.filter(state="sent").count(), max(ends) - start_at


def engine_child(concurrency: int, start_at: float, batch: int | None = None) -> None:
    """One worker process of --workers: set up, wait for the common start, send, print when
    it ran out of work."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "outreach.settings")
    import django

    django.setup()
    from outreach.sending.engine import Worker

    worker = Worker(concurrency=concurrency)
    if batch:
        worker.BATCH_PER_THREAD = batch
    time.sleep(max(0.0, start_at - time.time()))
    try:
        while worker.handle_one():
            pass
    finally:
        worker.close()
    print(time.time(), flush=True)


def prebuilt(count: int) -> list[tuple[str, str, bytes]]:
    """The same kind of message the engine builds, built beforehand for the baseline."""
    from datetime import UTC, datetime

    from outreach.providers import mime

    out = []
    for i in range(count):
        msg = mime.Outgoing(
            from_address=f"rep{i % 3 + 1}@send{i % 100 + 1}.example.com",
            from_name="Rep",
            to_address=f"lead{i}@prospect.example.org",
            subject=f"Quick question, Lead{i}",
            text=f"Hi Lead{i},\n\nStep 1.\n\nUnsubscribe: https://outreach.example.com/u/x\n",
            html=f"<p>Hi Lead{i},</p><p>Step 1.</p><p><a href='https://outreach.example.com/u/x'>Unsubscribe</a></p>",
            message_id=mime.new_message_id("send1.example.com"),
            date=datetime.now(UTC),
            unsubscribe_url="https://outreach.example.com/u/x",
            tag=str(i),
        )
        out.append((msg.from_address, msg.to_address, mime.build(msg)))
    return out


def run_baseline(port: int, messages: list[tuple[str, str, bytes]], connections: int) -> float:
    chunks = [messages[i::connections] for i in range(connections)]

    def send(chunk: list[tuple[str, str, bytes]]) -> None:
        smtp = smtplib.SMTP("127.0.0.1", port, timeout=10)
        smtp.ehlo()
        for sender, recipient, raw in chunk:
            smtp.sendmail(sender, [recipient], raw)
        smtp.quit()

    threads = [threading.Thread(target=send, args=(c,)) for c in chunks]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def run_floor(port: int, count: int, connections: int) -> tuple[int, float, float]:
    """The least any engine keeping outreach's promises does per message, on ``count`` new
    claimed messages: render and build it (:func:`prepare_call`: template, unsubscribe
    token, MIME), commit that its call begins (:func:`begin_call`, what makes a kill leave
    at most one message per connection in doubt), send it with plain smtplib. No take, no
    loading, no finish, no metrics: the messages are taken and read before the clock starts.
    Returns (messages sent, CPU seconds of this process spent on them, seconds the sending
    took: the marker and smtplib, the messages built before, as the engine builds a batch
    while the connections send the one before)."""
    from django.db import connections as db_connections

    from outreach.lib import clock
    from outreach.pool.models import ProviderAccount
    from outreach.sending.deliver import (
        Prepared,
        ProviderCache,
        begin_call,
        load_taken,
        prepare_call,
    )
    from outreach.sending.take import take_batch
    from outreach.sending.tests.helpers import claimed_campaign_messages

    account = ProviderAccount.objects.get(name="sink")
    claimed_campaign_messages(
        count, provider=account, lead_domain="floor.example.org", lease_seconds=3600
    )
    loaded = load_taken(take_batch("floor", clock.now(), count))
    cpu_at = cpu_seconds()
    prepared = [prepare_call(message, taken) for message, taken in loaded]
    chunks = [prepared[i::connections] for i in range(connections)]
    sent = [0] * connections

    def send(index: int, chunk: list[Prepared]) -> None:
        providers = ProviderCache()
        smtp = smtplib.SMTP("127.0.0.1", port, timeout=10)
        smtp.ehlo()
        for item in chunk:
            if not begin_call(item.message, providers):
                continue
            smtp.sendmail(item.envelope.sender, [item.envelope.recipient], item.raw)
            providers.accepted = (item.message.pk, item.message.claimed_by, clock.now(), "")
            sent[index] += 1
        smtp.quit()
        db_connections.close_all()

    threads = [threading.Thread(target=send, args=(i, chunk)) for i, chunk in enumerate(chunks)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(sent), cpu_seconds() - cpu_at, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--mailboxes", type=int, default=300)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=None,
        help="the sink answers DATA after this long (default: a run at 0 ms, then one at 20 ms)",
    )
    parser.add_argument(
        "--no-listeners",
        action="store_true",
        help="disconnect the send_attempted listeners (metrics, alerts) to see the engine alone",
    )
    parser.add_argument(
        "--dkim",
        action="store_true",
        help="every mailbox signs with a DKIM key (SMTP mailboxes of a domain with DKIM)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes sharing the connections (one per core is the deployment advice)",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=None,
        help="messages per connection and batch (default: the worker's own, 50)",
    )
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--engine-child", nargs=2, type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        run_sink(args.sink, args.latency_ms)
        return
    if args.engine_child:
        engine_child(int(args.engine_child[0]), args.engine_child[1], args.batch)
        return
    if args.latency_ms is None:
        both(args)
        return

    port = free_port()
    sink = subprocess.Popen(
        [sys.executable, __file__, "--sink", str(port), "--latency-ms", str(args.latency_ms)],
        stdout=subprocess.PIPE,
        text=True,
    )
    admin = None
    try:
        assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
        url, admin = database_url()
        setup_django(url)
        from django.db import connection

        vendor = connection.vendor
        if args.no_listeners:
            from outreach.sending.signals import send_attempted

            send_attempted.receivers.clear()
            send_attempted.sender_receivers_cache.clear()
        built = prebuilt(args.messages)
        cpu_at = cpu_seconds()
        baseline_before_s = run_baseline(port, built, args.connections)
        baseline_cpu_s = cpu_seconds() - cpu_at
        t0 = time.perf_counter()
        prepare(args.messages, args.mailboxes, port, dkim=args.dkim)
        # Statistics as a running deployment has them: on PostgreSQL what autovacuum does
        # after a table grows this much, on SQLite what the loops' hourly ANALYZE does
        # (outreach/lib/dbstats.py). Without them the planner believes no message is
        # claimed and reads the whole backlog for every batch.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        prepare_s = time.perf_counter() - t0
        cpu_at = cpu_seconds()
        if args.workers > 1:
            sent, engine_s = run_engine_processes(url, args.workers, args.connections, args.batch)
        else:
            sent, engine_s = run_engine(args.connections, args.batch)
        engine_cpu_s = cpu_seconds() - cpu_at
        floor_sent, floor_cpu_s, floor_s = run_floor(port, args.messages, args.connections)
        cpu_at = cpu_seconds()
        baseline_after_s = run_baseline(port, built, args.connections)
        baseline_cpu_s += cpu_seconds() - cpu_at
        connection.close()
    finally:
        sink.terminate()
        sink.wait(timeout=10)
        if admin:
            import psycopg

            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")

    from outreach.sending.engine import Worker

    default_batch = Worker.BATCH_PER_THREAD
    engine_rate = sent / engine_s
    # The baseline runs once before the engine and once after, against the same sink: the
    # machine's speed drifts, and the ratio should not hang on one moment of it.
    before_rate = args.messages / baseline_before_s
    after_rate = args.messages / baseline_after_s
    baseline_rate = (before_rate + after_rate) / 2
    result = {
        "database": vendor,
        "messages": args.messages,
        "mailboxes": args.mailboxes,
        "connections": args.connections,
        "sink_latency_ms": args.latency_ms,
        "workers": args.workers,
        "batch_per_connection": args.batch or default_batch,
        "listeners": not args.no_listeners,
        "dkim": args.dkim,
        "sent": sent,
        "prepare_seconds": round(prepare_s, 2),
        "engine_seconds": round(engine_s, 2),
        "engine_messages_per_second": round(engine_rate, 1),
        "baseline_before_messages_per_second": round(before_rate, 1),
        "baseline_after_messages_per_second": round(after_rate, 1),
        "baseline_messages_per_second": round(baseline_rate, 1),
        "engine_baseline_ratio": round(engine_rate / baseline_rate, 3),
        "engine_cpu_ms_per_message": round(1000 * engine_cpu_s / max(sent, 1), 3),
        "baseline_cpu_ms_per_message": round(1000 * baseline_cpu_s / (2 * args.messages), 3),
    }
    result["cpu_ratio"] = round(
        result["engine_cpu_ms_per_message"] / max(result["baseline_cpu_ms_per_message"], 1e-9), 2
    )
    # The floor's rate against smtplib's: the most engine_baseline_ratio can be.
    result["floor_baseline_ratio"] = round(floor_sent / floor_s / baseline_rate, 3)
    result["engine_floor_ratio"] = round(engine_rate / (floor_sent / floor_s), 3)
    result["floor_cpu_ms_per_message"] = round(1000 * floor_cpu_s / max(floor_sent, 1), 3)
    # What any engine that renders, builds and marks each call costs next to smtplib alone
    # (the least cpu_ratio can be), and what outreach's own bookkeeping adds to that.
    result["floor_cpu_ratio"] = round(
        result["floor_cpu_ms_per_message"] / max(result["baseline_cpu_ms_per_message"], 1e-9), 2
    )
    result["engine_floor_cpu_ratio"] = round(
        result["engine_cpu_ms_per_message"] / max(result["floor_cpu_ms_per_message"], 1e-9), 2
    )
    if args.json:
        print(json.dumps(result))
        return
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")


def both(args: argparse.Namespace) -> None:
    """One run with the sink answering at once, one with 20 ms per message, each in its own
    process and database; one table (or one JSON object) for the two."""
    runs = []
    for latency in (0, 20):
        command = [sys.executable, __file__, "--json", "--latency-ms", str(latency)]
        command += ["--messages", str(args.messages), "--mailboxes", str(args.mailboxes)]
        command += ["--connections", str(args.connections), "--workers", str(args.workers)]
        if args.batch:
            command += ["--batch", str(args.batch)]
        if args.no_listeners:
            command.append("--no-listeners")
        if args.dkim:
            command.append("--dkim")
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    summary = {
        "database": runs[0]["database"],
        "messages": args.messages,
        "connections": args.connections,
        "workers": args.workers,
        "batch_per_connection": runs[0]["batch_per_connection"],
        "runs": runs,
        "engine_baseline_ratio": runs[0]["engine_baseline_ratio"],
        "engine_baseline_ratio_at_20ms": runs[1]["engine_baseline_ratio"],
        "engine_cpu_ms_per_message": runs[0]["engine_cpu_ms_per_message"],
        "baseline_cpu_ms_per_message": runs[0]["baseline_cpu_ms_per_message"],
        "cpu_ratio": runs[0]["cpu_ratio"],
        "floor_baseline_ratio": runs[0]["floor_baseline_ratio"],
        "floor_baseline_ratio_at_20ms": runs[1]["floor_baseline_ratio"],
        "floor_cpu_ms_per_message": runs[0]["floor_cpu_ms_per_message"],
        "floor_cpu_ratio": runs[0]["floor_cpu_ratio"],
        "engine_floor_cpu_ratio": runs[0]["engine_floor_cpu_ratio"],
    }
    if args.json:
        print(json.dumps(summary))
        return
    print(
        f"{summary['database']}: {args.messages:,} messages over {args.mailboxes} mailboxes, "
        f"{args.connections} connections, {args.workers} worker process(es), "
        f"{runs[0]['batch_per_connection']} messages per connection and batch"
    )
    print(
        f"{'sink latency':>14}{'engine msg/s':>14}{'baseline msg/s':>16}{'ratio':>8}"
        f"{'floor ratio':>13}"
        f"{'engine CPU ms':>15}{'smtplib CPU ms':>16}{'cpu_ratio':>11}"
        f"{'floor CPU ms':>14}{'floor/smtplib':>15}{'engine/floor':>14}"
    )
    for run in runs:
        print(
            f"{run['sink_latency_ms']:>12.0f}ms{run['engine_messages_per_second']:>14,.1f}"
            f"{run['baseline_messages_per_second']:>16,.1f}{run['engine_baseline_ratio']:>8.3f}"
            f"{run['floor_baseline_ratio']:>13.3f}"
            f"{run['engine_cpu_ms_per_message']:>15.3f}{run['baseline_cpu_ms_per_message']:>16.3f}"
            f"{run['cpu_ratio']:>11.2f}{run['floor_cpu_ms_per_message']:>14.3f}"
            f"{run['floor_cpu_ratio']:>15.2f}{run['engine_floor_cpu_ratio']:>14.2f}"
        )


if __name__ == "__main__":
    main()
