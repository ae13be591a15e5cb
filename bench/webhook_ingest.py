"""Webhook ingest benchmark: signed SES notifications per second through the real server.

    .venv/bin/python bench/webhook_ingest.py [--json] [--count N] [--clients 16] [--postgres URL]

The app is served as in production (waitress, 8 threads, as ``outreach run``) in a child
process over a fresh database (embedded SQLite in a scratch directory by default; with
--postgres a scratch database on that server, dropped afterwards). The benchmark:

1. creates 1,000 sent messages and signs ``--count`` SES delivery notifications for them
   (SNS SignatureVersion 1 and 2 alternately) with its own certificate, which it serves on
   loopback; the child trusts that URL instead of sns.<region>.amazonaws.com;
2. posts them with ``--clients`` concurrent keep-alive clients, basic auth included;
3. does the same number of GETs on ``/healthz`` (a trivial view: one ``SELECT 1``) on the same
   server in the same run;
4. prints events/s, the trivial view's requests/s, their ratio (goal >= 0.5), and the
   ``posted`` and ``stored`` counts (they must be equal).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PG_DB = "outreach_bench_webhooks"
SECRET = ("bench", "bench-webhook-secret")
MESSAGES = 1000
TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-events"


def serve(port: int, cert_base: str) -> None:
    """Child: the app under waitress, trusting the benchmark's certificate server."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "outreach.settings")
    django.setup()
    from waitress.server import create_server

    from outreach.events import sns
    from outreach.wsgi import application

    sns.verifier = sns.SnsVerifier(url_allowed=lambda url: url.startswith(cert_base))
    server = create_server(application, host="127.0.0.1", port=port, threads=8, ident="outreach")
    print("ready", flush=True)
    server.run()


def setup_database() -> list[str]:
    """Migrate and create the sent messages; returns their provider message ids."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "outreach.settings")
    django.setup()
    from django.core.management import call_command

    from outreach.campaigns.models import Message
    from outreach.lib import clock
    from outreach.testing import enroll, make_campaign, make_leads, make_pool

    call_command("migrate", verbosity=0, interactive=False)
    boxes = make_pool(domains=2, mailboxes_per_domain=3)
    campaign = make_campaign("bench")
    leads = make_leads(MESSAGES)
    enrollments = enroll(campaign, leads)
    step = campaign.steps.get()
    now = clock.now()
    ids = [f"0100018c{i:08d}-{uuid.uuid4()}-000000" for i in range(MESSAGES)]
    Message.objects.bulk_create(
        [
            Message(
                enrollment=enrollment,
                campaign=campaign,
                step=step,
                to_email=lead.email,
                to_domain=lead.email_domain,
                mailbox=boxes[i % len(boxes)],
                provider_account=boxes[0].provider_account,
                state=Message.State.SENT,
                provider_message_id=ids[i],
                message_id_header=f"<bench{i}@{boxes[i % len(boxes)].domain.name}>",
                sent_at=now,
            )
            for i, (lead, enrollment) in enumerate(zip(leads, enrollments, strict=True))
        ]
    )
    return ids


def stored_events() -> int:
    from outreach.events.models import DeadLetter, Event

    dead = DeadLetter.objects.count()
    if dead:
        print(f"warning: {dead} dead letters, first: {DeadLetter.objects.first()}", file=sys.stderr)
    return Event.objects.count()


def make_certificate() -> tuple[Any, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.us-east-1.amazonaws.com")])
    now = datetime.now().astimezone()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


def serve_certificate(pem: bytes) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(pem)))
            self.end_headers()
            self.wfile.write(pem)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/"


def signed_notifications(key: Any, cert_url: str, ids: list[str], count: int) -> list[bytes]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    from outreach.events.sns import string_to_sign

    bodies = []
    for i in range(count):
        recipient = f"lead{i % MESSAGES}@prospect.example.org"
        ses = {
            "eventType": "Delivery",
            "mail": {
                "timestamp": "2026-11-28T03:00:00.000Z",
                "source": "rep1@send1.example.com",
                "messageId": ids[i % MESSAGES],
                "destination": [recipient],
                "headersTruncated": False,
                "headers": [],
                "commonHeaders": {"to": [recipient], "subject": "Quick question"},
            },
            "delivery": {
                "timestamp": "2026-11-28T03:00:02.000Z",
                "processingTimeMillis": 546,
                "recipients": [recipient],
                "smtpResponse": "250 2.0.0 OK",
                "reportingMTA": "a8-70.smtp-out.amazonses.com",
            },
        }
        version = "1" if i % 2 else "2"
        message = {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": TOPIC,
            "Message": json.dumps(ses),
            "Timestamp": "2026-11-28T03:00:03.000Z",
            "SignatureVersion": version,
            "SigningCertURL": cert_url,
        }
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303
        signature = key.sign(string_to_sign(message), padding.PKCS1v15(), digest)
        message["Signature"] = base64.b64encode(signature).decode()
        bodies.append(json.dumps(message).encode())
    return bodies


def run_clients(
    clients: int, jobs: list[Any], send: Any, deadline: float
) -> tuple[float, int, dict[int, int]]:
    """Spread ``jobs`` over ``clients`` threads, each with its own keep-alive session."""
    import requests

    statuses: dict[int, int] = {}
    lock = threading.Lock()
    chunks = [jobs[i::clients] for i in range(clients)]

    def worker(chunk: list[Any]) -> int:
        done = 0
        with requests.Session() as session:
            session.auth = SECRET
            for job in chunk:
                if time.monotonic() > deadline:
                    break
                status = send(session, job)
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1
                done += 1
        return done

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        done = sum(pool.map(worker, chunks))
    return time.perf_counter() - started, done, statuses


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--postgres", metavar="URL", help="run on a scratch PostgreSQL database")
    parser.add_argument("--max-seconds", type=float, default=300, help="hard stop per phase")
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "CERT_BASE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1])
        return 0

    scratch = tempfile.mkdtemp(prefix="outreach-bench-webhooks-")
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

    ids = setup_database()
    key, pem = make_certificate()
    cert_server, cert_base = serve_certificate(pem)
    bodies = signed_notifications(
        key, cert_base + "SimpleNotificationService-bench.pem", ids, args.count
    )
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), cert_base],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("the server did not start")
        base = f"http://127.0.0.1:{port}"
        time.sleep(0.5)

        def post(session: Any, body: bytes) -> int:
            message = json.loads(body)
            response = session.post(
                base + "/webhooks/amazon_ses/tracking/",
                data=body,
                headers={
                    "Content-Type": "text/plain; charset=UTF-8",
                    "x-amz-sns-message-type": "Notification",
                    "x-amz-sns-message-id": message["MessageId"],
                },
                timeout=60,
            )
            return int(response.status_code)

        def get(session: Any, _: int) -> int:
            return int(session.get(base + "/healthz", timeout=60).status_code)

        hook_s, posted, hook_statuses = run_clients(
            args.clients, bodies, post, time.monotonic() + args.max_seconds
        )
        trivial_s, trivial_n, trivial_statuses = run_clients(
            args.clients, list(range(args.count)), get, time.monotonic() + args.max_seconds
        )
    finally:
        child.terminate()
        child.wait(timeout=30)
        cert_server.shutdown()

    from django.db import connections

    stored = stored_events()
    connections.close_all()
    shutil.rmtree(scratch, ignore_errors=True)
    if args.postgres:
        import psycopg

        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
    events_per_s = posted / hook_s
    trivial_per_s = trivial_n / trivial_s
    result = {
        "database": "postgresql" if args.postgres else "sqlite",
        "clients": args.clients,
        "events_per_s": round(events_per_s, 1),
        "trivial_per_s": round(trivial_per_s, 1),
        "ingest_to_trivial_ratio": round(events_per_s / trivial_per_s, 3),
        "posted": posted,
        "stored": stored,
        "webhook_statuses": {str(k): v for k, v in sorted(hook_statuses.items())},
        "trivial_statuses": {str(k): v for k, v in sorted(trivial_statuses.items())},
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"webhook ingest ({result['database']}, {args.clients} clients, waitress)")
        rows = [
            ("signed SES notifications, events/s", f"{events_per_s:,.1f}"),
            ("trivial view (/healthz), requests/s", f"{trivial_per_s:,.1f}"),
            ("ratio (goal >= 0.5)", f"{result['ingest_to_trivial_ratio']:.3f}"),
            ("posted", f"{posted:,}"),
            ("stored", f"{stored:,}"),
            ("webhook statuses", json.dumps(result["webhook_statuses"])),
        ]
        width = max(len(r[0]) for r in rows)
        for label, value in rows:
            print(f"  {label:<{width}}  {value:>12}")
    return 0 if stored == posted and hook_statuses.keys() == {200} else 1


if __name__ == "__main__":
    sys.exit(main())
