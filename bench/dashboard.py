"""Dashboard render time with a year of data: 300 mailboxes and 2 million events.

    .venv/bin/python bench/dashboard.py [--events N] [--runs N] [--db sqlite|postgres|both] [--json]

For each database, fills a dedicated benchmark database (var/bench_dashboard.sqlite3, and
``bench_dashboard`` on the PostgreSQL at OUTREACH_BENCH_PG, default
postgresql://postgres@127.0.0.1:5432) once, with bulk inserts: 100 domains x 3 mailboxes,
a year of daily counters and of the campaign's rollups, N events spread over the year (its
opens and clicks from the tracking host, with their visitor class), a month of send
attempts, audit entries and open alerts, a year of inbox replies and outgoing webhook
deliveries. The data is kept between runs (``--regenerate`` rebuilds it). Then renders every
dashboard page (overview also with its 90-day trends, mailboxes, mailbox, domains, events,
audit log, suppression list, lead import, alerts, campaigns, campaign page, capacity planner,
inbox, an inbox thread and webhooks) through Django's test client as a logged-in staff user,
``--runs`` times each, and prints median and p95 render time and the number of queries per
page (goal: p95 <= 200 ms), with the machine's load average before and after each database
(the figures mean little on a loaded machine: compare runs made in the same conditions).

Each database runs in a child process, since the settings read DATABASE_URL at start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SQLITE_PATH = ROOT / "var" / "bench_dashboard.sqlite3"
PG_SERVER = os.environ.get("OUTREACH_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
PG_NAME = "bench_dashboard"
GOAL_P95_MS = 200.0

EVENT_MIX = [  # (type, bounce_type, weight): roughly what a cold pool sees
    ("delivered", "", 600),
    ("opened", "", 180),
    ("clicked", "", 40),
    ("deferred", "", 50),
    ("bounced", "hard", 25),
    ("bounced", "soft", 15),
    ("replied", "", 30),
    ("auto_replied", "", 20),
    ("unsubscribed", "", 8),
    ("complained", "", 1),
]


# Parent -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--mailboxes", type=int, default=300)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    results: dict[str, Any] = {}
    targets = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    for target in targets:
        url = database_url(target, regenerate=args.regenerate)
        if url is None:
            print(f"{target}: not reachable, skipped", file=sys.stderr)
            continue
        cmd = [
            sys.executable,
            __file__,
            "--child",
            f"--events={args.events}",
            f"--mailboxes={args.mailboxes}",
            f"--runs={args.runs}",
        ]
        if args.regenerate:
            cmd.append("--regenerate")
        env = {**os.environ, "DATABASE_URL": url, "OUTREACH_LOG_LEVEL": "WARNING"}
        out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            print(out.stderr, file=sys.stderr)
            raise SystemExit(f"{target}: benchmark failed")
        print(out.stderr, end="", file=sys.stderr)
        results[target] = json.loads(out.stdout.strip().splitlines()[-1])

    summary = {
        "events": args.events,
        "mailboxes": args.mailboxes,
        "runs": args.runs,
        "goal_p95_ms": GOAL_P95_MS,
        "databases": results,
        "p95_goal_ratio": max(
            (
                page["p95_ms"] / GOAL_P95_MS
                for r in results.values()
                for page in r["pages"].values()
            ),
            default=None,
        ),
    }
    if args.json:
        print(json.dumps(summary))
        return
    print(f"dashboard: {args.mailboxes} mailboxes, {args.events:,} events, {args.runs} runs/page")
    print(f"{'database':<10} {'page':<13} {'median ms':>10} {'p95 ms':>8} {'queries':>8}  goal")
    for target, r in results.items():
        for name, page in r["pages"].items():
            ok = "ok" if page["p95_ms"] <= GOAL_P95_MS else "MISSED"
            print(
                f"{target:<10} {name:<13} {page['median_ms']:>10.1f} {page['p95_ms']:>8.1f}"
                f" {page['queries']:>8}  {ok}"
            )
        print(f"{target:<10} generation {r['generation_s']:.0f} s (0 = data reused)")
        before, after = r["load_before"], r["load_after"]
        print(f"{target:<10} load average (1, 5, 15 min) before {before}, after {after}")


def database_url(target: str, *, regenerate: bool) -> str | None:
    if target == "sqlite":
        SQLITE_PATH.parent.mkdir(exist_ok=True)
        if regenerate:
            for suffix in ("", "-wal", "-shm"):
                Path(str(SQLITE_PATH) + suffix).unlink(missing_ok=True)
        return f"sqlite:///{SQLITE_PATH}"
    import psycopg

    try:
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=5) as conn:
            if regenerate:
                conn.execute(f"DROP DATABASE IF EXISTS {PG_NAME}")
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [PG_NAME]
            ).fetchone()
            if not exists:
                conn.execute(f"CREATE DATABASE {PG_NAME}")
    except psycopg.OperationalError:
        return None
    return f"{PG_SERVER}/{PG_NAME}"


# Child: one database -----------------------------------------------------------------------


def child(args: argparse.Namespace) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "outreach.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    generated = ensure_data(args.events, args.mailboxes)
    generated = ensure_inbox_and_webhooks(args.events) or generated
    generation_s = time.perf_counter() - started if generated else 0.0
    load_before = load_average()
    pages = measure(args.runs)
    print(
        json.dumps(
            {
                "generation_s": generation_s,
                "load_before": load_before,
                "load_after": load_average(),
                "pages": pages,
            }
        )
    )


def load_average() -> list[float]:
    """The machine's load average (1, 5, 15 minutes): timings on a busy machine are slower."""
    return [round(x, 2) for x in os.getloadavg()]


def ensure_data(n_events: int, n_mailboxes: int) -> bool:
    from django.db import connection

    from outreach.events.models import Event
    from outreach.pool.models import Mailbox

    if Mailbox.objects.count() == n_mailboxes and Event.objects.count() == n_events:
        return False
    if Mailbox.objects.exists():
        raise SystemExit("the benchmark database holds other data: run with --regenerate")
    log(f"generating {n_mailboxes} mailboxes and {n_events:,} events on {connection.vendor}")
    generate(n_events, n_mailboxes)
    analyze()
    return True


def analyze() -> None:
    """Fresh planner statistics (and, on PostgreSQL, the visibility map that index-only scans
    need) after bulk loading, as autovacuum would give a database that grew over a year."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")


def ensure_inbox_and_webhooks(n_events: int) -> bool:
    """A year of inbox replies (one per 60 events: the replies and auto-replies of the mix)
    and of outgoing webhook deliveries (two endpoints, one per 10 events), once."""
    from outreach.events.models import InboundMail, WebhookDelivery

    if InboundMail.objects.exists() or WebhookDelivery.objects.exists():
        return False
    log("generating inbox replies and webhook deliveries")
    generate_inbox(n_events // 60)
    generate_webhooks(n_events // 10)
    analyze()
    return True


def generate_inbox(count: int) -> None:
    from outreach.campaigns.models import Campaign
    from outreach.events.models import InboundMail
    from outreach.lib import clock
    from outreach.pool.models import Mailbox

    rng = random.Random(21)
    now = clock.now()
    box_ids = list(Mailbox.objects.values_list("pk", flat=True))
    campaign = Campaign.objects.get(slug="bench")
    labels = [label for label, _ in InboundMail.Label.choices]
    rows = []
    for i in range(count):
        at = now - timedelta(seconds=365 * 86400 * i / count + rng.random())
        lead = i % 20_000  # many leads write more than once: threads
        rows.append(
            InboundMail(
                mailbox_id=box_ids[i % len(box_ids)],
                key=f"bench-{i}",
                kind=InboundMail.Kind.REPLY,
                message_id_header=f"<r{i}@prospect{lead % 500}.example.org>",
                from_address=f"lead{lead}@prospect{lead % 500}.example.org",
                from_name=f"Lead {lead}",
                subject=f"Re: a question {i % 7}",
                text_body="Thanks, tell me more.\n\n> earlier message",
                visible_text="Thanks, tell me more.",
                campaign=campaign,
                label=labels[i % len(labels)],
                occurred_at=at,
                received_at=at,
                read_at=None if i < 40 else at,
            )
        )
    InboundMail.objects.bulk_create(rows, batch_size=5000)


def generate_webhooks(count: int) -> None:
    from outreach.events.models import WebhookDelivery, WebhookEndpoint
    from outreach.lib import clock

    now = clock.now()
    endpoints = [
        WebhookEndpoint.objects.create(
            name=name, url=f"https://hooks.example.net/{name}", secret="whsec_bench"
        )
        for name in ("crm", "slack")
    ]
    states = WebhookDelivery.State
    rows = []
    for i in range(count):
        at = now - timedelta(seconds=365 * 86400 * i / count)
        state = states.PENDING if i < 20 else states.DEAD if i % 500 == 0 else states.DELIVERED
        rows.append(
            WebhookDelivery(
                endpoint=endpoints[i % 2],
                event_type="message.replied" if i % 3 else "message.bounced",
                msg_id=f"msg_{i}",
                payload={"type": "message.replied", "data": {"n": i}},
                state=state,
                attempts=1 if state == states.DELIVERED else 8,
                last_status=200 if state == states.DELIVERED else 503,
                created_at=at,
                next_attempt_at=at,
                delivered_at=at if state == states.DELIVERED else None,
            )
        )
    WebhookDelivery.objects.bulk_create(rows, batch_size=5000)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def generate(n_events: int, n_mailboxes: int) -> None:
    from decimal import Decimal

    from django.contrib.auth.models import User
    from django.db import connection, transaction

    from outreach.alerts.models import Alert
    from outreach.campaigns.models import Message
    from outreach.lib import clock
    from outreach.pool.models import Domain, Mailbox, PoolSettings, ProviderAccount, StateChange
    from outreach.scheduler.models import DailyCounter
    from outreach.sending.models import SendAttempt
    from outreach.testing import make_campaign

    rng = random.Random(8)
    now = clock.now()
    today = now.date()
    User.objects.create_user("bench", password="bench", is_staff=True)
    PoolSettings.load()
    provider = ProviderAccount.objects.create(
        name="ses-main", kind="ses", price_per_1000=Decimal("0.10")
    )
    per_domain = 3
    domains = Domain.objects.bulk_create(
        [
            Domain(name=f"send{d:03d}.example.com", provider=provider, yearly_price=Decimal(12))
            for d in range(n_mailboxes // per_domain)
        ]
    )
    states = ["active"] * 20 + ["warming"] * 5 + ["paused", "cooldown", "retired"]
    boxes = Mailbox.objects.bulk_create(
        [
            Mailbox(
                address=f"rep{m}@{d.name}",
                domain=d,
                state=rng.choice(states),
                warmup_started_on=today - timedelta(days=rng.randint(0, 20)),
            )
            for d in domains
            for m in range(per_domain)
        ]
    )
    campaign = make_campaign("bench", steps=3)
    box_ids = [b.pk for b in boxes]

    log("  daily counters (a year)")
    counters = []
    for day_offset in range(365):
        day = today - timedelta(days=day_offset)
        total = 0
        for b in boxes:
            used = rng.randint(20, 40)
            total += used
            counters.append(DailyCounter(scope="mailbox", key=str(b.pk), day=day, used=used))
        for d in domains:
            counters.append(DailyCounter(scope="domain", key=str(d.pk), day=day, used=90))
        counters.append(DailyCounter(scope="global", key="*", day=day, used=min(total, 1500)))
        counters.append(DailyCounter(scope="campaign", key=str(campaign.pk), day=day, used=400))
    DailyCounter.objects.bulk_create(counters, batch_size=5000)

    log("  messages and send attempts (this month)")
    month_start = today.replace(day=1)
    days_this_month = (today - month_start).days + 1
    messages = [
        Message(
            to_email=f"lead{i}@prospect{i % 500}.example.org",
            to_domain=f"prospect{i % 500}.example.org",
            mailbox_id=box_ids[i % len(box_ids)],
            provider_account=provider,
            campaign=campaign,
            state="sent" if i % 1000 else "unknown",
            sent_at=now - timedelta(minutes=i),
        )
        for i in range(min(1200 * days_this_month, 36_000))
    ]
    messages = Message.objects.bulk_create(messages, batch_size=5000)
    SendAttempt.objects.bulk_create(
        [
            SendAttempt(
                message=m,
                mailbox_id=m.mailbox_id,
                provider_account=provider,
                outcome="sent",
                at=m.sent_at,
            )
            for m in messages
            if m.state == "sent"
        ],
        batch_size=5000,
    )
    StateChange.objects.bulk_create(
        [
            StateChange(
                mailbox_id=box_ids[i % len(box_ids)],
                from_state="active",
                to_state="paused",
                reason="bounce rate over 5%",
                actor="rule:bounce",
                at=now - timedelta(hours=i),
            )
            for i in range(2000)
        ]
    )
    Alert.objects.bulk_create(
        [Alert(key=f"k{i}", kind="bounce_warning", text=f"bounce warning {i}") for i in range(30)]
    )

    log(f"  {n_events:,} events over a year")
    types = [t for t, _, w in EVENT_MIX for _ in range(w)]
    bounce = {t: b for t, b, _ in EVENT_MIX}
    year = 365 * 86400
    start = now - timedelta(seconds=year)

    def rows(count: int) -> Any:
        for i in range(count):
            t = types[i % len(types)] if i % 7 else rng.choice(types)
            b = bounce[t] if t != "bounced" else ("hard" if i % 5 < 3 else "soft")
            at = start + timedelta(seconds=year * i / count + rng.random())
            tracked = t in ("opened", "clicked")
            yield (
                "tracking" if tracked else "ses",
                t,
                b,
                "",
                f"lead{i % 100_000}@prospect{i % 500}.example.org",
                box_ids[rng.randrange(len(box_ids))],
                campaign.pk,
                "",
                False,
                at,
                at,
                tracking_raw(i) if tracked else "{}",
            )

    def tracking_raw(i: int) -> str:
        # Opens and clicks from the tracking host: most are machines (Apple's proxy, image
        # proxies, scanners), about a third estimated people.
        human = i % 3 == 0
        return json.dumps(
            {
                "visitor": "human" if human else "machine",
                "reason": "" if human else "apple_mpp",
                "user_agent": "Mozilla/5.0" if not human else "Mozilla/5.0 (Macintosh)",
                "ip": f"17.58.{i % 250}.{i % 200}" if not human else f"198.51.100.{i % 250}",
            }
        )

    log("  rollups (a year, the campaign's steps)")
    rollups(campaign, boxes, today, rng)

    columns = (
        "source, type, bounce_type, diagnostic, recipient, mailbox_id, campaign_id,"
        " provider_message_id, unmatched, occurred_at, received_at, raw"
    )
    table = "events_event"
    chunk = 50_000
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in rows(n_events):
                    copy.write_row(row)
        else:
            placeholders = ", ".join(["%s"] * 12)
            sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"  # noqa: S608 (constants)
            batch = []
            for row in rows(n_events):
                at = row[9].isoformat(sep=" ")
                batch.append((*row[:9], at, at, row[11]))
                if len(batch) >= chunk:
                    cursor.executemany(sql, batch)
                    batch = []
            if batch:
                cursor.executemany(sql, batch)


def rollups(campaign: Any, boxes: list[Any], today: Any, rng: random.Random) -> None:
    """A year of daily rollup rows of the campaign: one per mailbox and day, the steps and
    their variant in turn, with opens and clicks (all and human-estimated) beside replies."""
    from outreach.campaigns.models import Variant
    from outreach.metrics.models import DailyRollup

    variants = list(Variant.objects.filter(step__campaign=campaign).order_by("step__position"))
    rows = []
    for day_offset in range(365):
        day = today - timedelta(days=day_offset)
        for n, b in enumerate(boxes):
            v = variants[(day_offset + n) % len(variants)]
            opened = rng.randint(5, 15)
            rows.append(
                DailyRollup(
                    day=day,
                    mailbox_id=b.pk,
                    domain_id=b.domain_id,
                    campaign_id=campaign.pk,
                    step_id=v.step_id,
                    variant_id=v.pk,
                    provider_id=b.domain.provider_id,
                    sent=30,
                    delivered=29,
                    replied=rng.randint(0, 2),
                    opened=opened,
                    opened_human=opened // 3,
                    clicked=2,
                    clicked_human=1,
                )
            )
    DailyRollup.objects.bulk_create(rows, batch_size=5000)


def measure(runs: int) -> dict[str, Any]:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from outreach.events.models import InboundMail
    from outreach.pool.models import Mailbox

    client = Client()
    client.force_login(User.objects.get(username="bench"))
    mailbox = Mailbox.objects.order_by("pk").first()
    mail = InboundMail.objects.order_by("-occurred_at", "-pk").first()
    assert mailbox is not None and mail is not None
    pages = {
        "overview": reverse("dashboard:overview"),
        "overview_90d": reverse("dashboard:overview") + "?trend=90",
        "mailboxes": reverse("dashboard:mailboxes"),
        "mailbox": reverse("dashboard:mailbox", args=[mailbox.pk]),
        "domains": reverse("dashboard:domains"),
        "events": reverse("dashboard:events"),
        "audit": reverse("dashboard:audit"),
        "suppression": reverse("dashboard:suppression"),
        "lead_import": reverse("dashboard:lead_import_form"),
        "alerts": reverse("dashboard:alerts"),
        "alerts_all": reverse("dashboard:alerts") + "?show=all",
        "campaigns": reverse("dashboard:campaigns"),
        "campaign": reverse("dashboard:campaign", args=["bench"]),
        "plan": reverse("dashboard:plan") + "?target=1200",
        "inbox": reverse("dashboard:inbox"),
        "inbox_thread": reverse("dashboard:inbox_thread", args=[mail.pk]),
        "webhooks": reverse("dashboard:webhooks"),
    }
    out = {}
    for name, url in pages.items():
        for _ in range(3):  # warm caches and the connection
            assert client.get(url).status_code == 200
        with CaptureQueriesContext(connection) as queries:
            client.get(url)
        # Counted now: the next request resets the connection's query log.
        n_queries = len(queries.captured_queries)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200
        times.sort()
        out[name] = {
            "median_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[min(len(times) - 1, round(0.95 * (len(times) - 1)))], 1),
            "queries": n_queries,
        }
        log(f"  {connection.vendor} {name}: {out[name]}")
    return out


if __name__ == "__main__":
    main()
