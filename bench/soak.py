"""Soak on PostgreSQL: a month of the mission's volume on real, separate processes.

    python bench/soak.py [--days 30] [--per-day 1200] [--mailboxes N] [--kills K] [--json]

What runs, each in its own OS process, sharing only the database (``DATABASE_URL``, a
PostgreSQL server; the bench creates and drops its own database, ``--db-name outreach_soak``):

- the web app (the WSGI application ``outreach run`` serves, on waitress, through
  ``python -m outreach.tests.soakdriver web``, which dates each request on the simulated
  instant the bench sends with it): bounces and spam complaints arrive through its real
  Postmark webhook (basic auth, payloads as Postmark documents them);
- the scheduler and three sending workers, ``python -m outreach.tests.soakdriver``: the
  production ``run_pass`` and ``Worker.on_tick``/``handle_one`` on simulated time (see below);
  every few passes a worker is SIGKILLed in the middle of its batch and a new one started;
- an aiosmtpd sink answering each message after 20 ms (``--latency-ms``), that keeps every
  message it accepted (its Message-ID counts the duplicates);
- dovecot (IMAP): replies from leads are delivered to the mailboxes' INBOX and read by the
  real inbox reader; the sink files every message it accepts under the sender's Sent folder,
  as Google Workspace and Microsoft 365 do, where reconciliation looks for what is in doubt
  (in each scheduler pass once past the grace, and ``outreach reconcile`` every evening);
- the operator's commands, ``outreach apply``, ``campaign apply|start``, ``leads import``,
  ``reconcile``, run as ``outreach`` commands with the clock pinned (``--at``).

The pool (``--mailboxes``, 3 per domain, 40 a day each) and the campaign (two steps, the
follow-up in the thread three days later, a campaign cap of ``--per-day``) are generated as TOML
files, the leads as CSV, in a temporary directory.

Simulated clock: ``outreach scheduler`` and ``outreach worker`` loop on the system clock; the
engine's one clock (:mod:`outreach.lib.clock`) can be pinned per process, and the soak driver
processes pin it to each instant they read on stdin. The day advances one pass at a time
(from 08:00 to 19:00 UTC, one per pacing slot while there is work, else one an hour): the
scheduler plans and claims, webhooks arrive, the workers send 20 s later. After the last
pass the leads' replies are read over IMAP and what is still in doubt reconciled. Saturdays
and Sundays are outside the campaign's window (nothing is due), which the table shows.

Reported: days, sent, duplicates, cap overshoots (mailbox, domain, campaign and global per
day), unknown before reconciliation (every message a scheduler pass found in doubt) and
after it (left ``unknown`` at the end), capacity use per sending day (sent / what the
pool and the campaign cap allowed that day, as ``outreach status`` computes it in the
morning), CPU ms per message (all engine processes: scheduler, workers including the killed
ones, web app, inbox reader and reconcile; the lead imports are not counted) and database
growth per simulated month (``pg_database_size``).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import random
import resource
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MAILBOX_CAP = 40
PER_DOMAIN = 3
WORKERS = 3
CONCURRENCY = 4
# Passes from 08:00 to 19:00 UTC (the campaign's window is 09:00-17:00): one every PASS_STEP
# while the pass claims something (a mailbox takes one message per pacing slot, 60-180 s),
# else on the next hour. The workers send WORKER_DELAY after each pass.
FIRST_PASS_HOUR = 8
LAST_PASS_HOUR = 19
PASS_STEP = timedelta(seconds=190)
WORKER_DELAY = timedelta(seconds=20)
INDEX_LINE_BYTES = 90  # about one message in the sink's index (Message-ID, tag, sender)
WEBHOOK_AUTH = ("outreach", "soak-webhook-secret")
POSTMARK_URL = "/webhooks/postmark/tracking/"
IMAP_SECRET = "OUTREACH_SECRET_SOAK_IMAP"
SLUG = "soak"
TAG = "X-Outreach-Message"


# --- the sink process -------------------------------------------------------------------------


def run_sink(port: int, spool: Path, latency_ms: float, homes: Path) -> None:
    """Accept every message after ``latency_ms``; keep it as ``spool/N.eml`` and one line
    ``Message-ID <tab> outreach id <tab> MAIL FROM`` in ``spool/index.tsv``; and file it
    under the sender's Sent folder (dovecot's Maildir in ``homes``), as Google Workspace and
    Microsoft 365 do with what they accept."""
    import asyncio
    import pwd
    from email.parser import BytesHeaderParser

    from aiosmtpd.controller import Controller

    spool.mkdir(parents=True, exist_ok=True)
    index = (spool / "index.tsv").open("a", buffering=1)
    count = [0]

    class Sink:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            if latency_ms:
                await asyncio.sleep(latency_ms / 1000)
            raw = envelope.original_content or envelope.content or b""
            raw = raw.encode() if isinstance(raw, str) else bytes(raw)
            headers = BytesHeaderParser().parsebytes(raw)
            count[0] += 1
            (spool / f"{count[0]}.eml").write_bytes(raw)
            file_as_sent(homes / str(envelope.mail_from), raw, f"{count[0]}")
            index.write(
                f"{headers.get('Message-ID', '').strip()}\t{headers.get(TAG, '')}\t"
                f"{envelope.mail_from}\t{count[0]}\n"
            )
            return f"250 2.0.0 Ok: queued as Q{count[0]:08d}"

    nobody = pwd.getpwnam("nobody")

    def file_as_sent(home: Path, raw: bytes, name: str) -> None:
        """Maildir delivery into ``.Sent``: written under tmp/, renamed into new/."""
        folder = home / "Maildir" / ".Sent"
        if not (folder / "new").exists():
            for sub in (home, home / "Maildir", folder, folder / "tmp", folder / "new"):
                sub.mkdir(exist_ok=True)
                os.chown(sub, nobody.pw_uid, nobody.pw_gid)
            (folder / "cur").mkdir(exist_ok=True)
            os.chown(folder / "cur", nobody.pw_uid, nobody.pw_gid)
            (folder / "maildirfolder").touch()
        unique = f"{time.time_ns()}.{name}.soak"
        (folder / "tmp" / unique).write_bytes(raw)
        os.chown(folder / "tmp" / unique, nobody.pw_uid, nobody.pw_gid)
        os.rename(folder / "tmp" / unique, folder / "new" / unique)

    stop = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # for every thread, before they start
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        signal.sigwait(stop)
    finally:
        controller.stop()
        index.close()


# --- child processes on a pinned clock ------------------------------------------------------


def run_at(at: str, command: list[str]) -> None:
    """``outreach COMMAND`` with the engine clock pinned to ``at``."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "outreach.settings")
    import django

    django.setup()
    from django.core.management import execute_from_command_line

    from outreach.lib import clock

    clock.set_now(datetime.fromisoformat(at))
    execute_from_command_line(["outreach", *command])


def run_inbox_reader() -> None:
    """The inbox reader (``outreach inbox --once``) at each instant read on stdin."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "outreach.settings")
    import django

    django.setup()
    from outreach.events.loop import read_one_due
    from outreach.lib import clock

    for line in sys.stdin:
        clock.set_now(datetime.fromisoformat(line.strip()))
        folders = 0
        while folders < 100_000 and read_one_due():
            folders += 1
        print(json.dumps({"folders": folders}), flush=True)


# --- the controller ---------------------------------------------------------------------------


class Driven:
    """A process that reads one instant a line and answers one JSON line."""

    def __init__(self, role: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.role = role
        self.log = log
        with log.open("ab") as err:
            self.proc = subprocess.Popen(
                argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err
            )

    def send(self, when: datetime) -> None:
        stdin: IO[bytes] = self.proc.stdin  # type: ignore[assignment]
        stdin.write((when.isoformat() + "\n").encode())
        stdin.flush()

    def answered(self) -> bool:
        """Whether an answer is waiting (without reading it)."""
        ready, _, _ = select.select([self.proc.stdout], [], [], 0)
        return bool(ready)

    def answer(self) -> dict[str, Any]:
        stdout: IO[bytes] = self.proc.stdout  # type: ignore[assignment]
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"{self.proc.args!r} died: {self.log.read_text()[-3000:]}")
        result: dict[str, Any] = json.loads(line)
        return result

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=120)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=60)


def process_cpu(pid: int) -> float:
    """CPU seconds a live process has used so far (user + system, from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu() -> float | None:
    """CPU seconds the local PostgreSQL server has used so far: every ``postgres`` process
    (user + system), plus what its postmaster collected from backends that have ended. None
    when the server is not on this machine (or /proc does not show it). The whole cluster
    counts: the figure means something only while nothing else uses the server."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    found = False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # the process ended meanwhile
        name = text[text.index("(") + 1 : text.rindex(")")]
        if name != "postgres":
            continue
        fields = text.rsplit(")", 1)[1].split()
        found = True
        total += int(fields[11]) + int(fields[12])  # its own user + system time
        parent = Path(f"/proc/{fields[1]}/comm")
        if parent.exists() and parent.read_text().strip() != "postgres":  # the postmaster
            total += int(fields[13]) + int(fields[14])  # its reaped children's
    return total / tick if found else None


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def available_capacity(morning: Any, evening: Any) -> int:
    """What the pool could send on one pool day, from two
    :func:`~outreach.scheduler.status.pool_status` readings of that day: a mailbox still able to
    send in the evening counts for its cap (one that came back during the day, a domain's
    cooldown ended, included), one that stopped during the day (a pause by the health rules)
    for the units it used before it stopped, through the capacity arithmetic `outreach status`
    uses."""
    from outreach.pool.models import Domain, PoolSettings
    from outreach.scheduler.capacity import domain_capacity, pool_capacity

    limits = PoolSettings.load().limits
    domain_caps = {d.name: d.cap(limits) for d in Domain.objects.all()}
    earlier = {row.address: row for row in morning.mailboxes}
    caps: dict[str, list[int]] = collections.defaultdict(list)
    for row in evening.mailboxes:
        if row.cap_today > 0 and not row.held:
            caps[row.domain].append(row.cap_today)
            continue
        before = earlier.get(row.address)
        could = before.cap_today if before is not None and not before.held else 0
        caps[row.domain].append(min(could, row.sent_today))
    return pool_capacity(
        (domain_capacity(domain_caps[name], mine) for name, mine in caps.items()),
        limits.global_daily_cap,
    )


def first_monday_after(day: date) -> datetime:
    """Simulated time starts on a Monday after the real today, so anything that reads the
    system clock (the web app between webhooks) sees an instant before the simulation's."""
    days = (7 - day.weekday()) % 7 or 7
    start = day + timedelta(days=days)
    return datetime(start.year, start.month, start.day, tzinfo=UTC)


def pool_toml(mailboxes: int, per_day: int, smtp_port: int, imap_port: int) -> str:
    lines = [
        'timezone = "UTC"',
        "",
        "[limits]",
        f"mailbox_daily_cap = {MAILBOX_CAP}",
        f"domain_daily_cap = {MAILBOX_CAP * PER_DOMAIN}",
        f"global_daily_cap = {max(per_day, mailboxes * MAILBOX_CAP)}",
        "recipient_domain_daily_cap = 5",
        "pacing_gap_seconds = 120",
        "pacing_jitter_seconds = 60",
        "follow_up_wait_hours = 72",
        "",
        "[providers.sink]",
        'kind = "smtp"',
        'host = "127.0.0.1"',
        f"port = {smtp_port}",
        'security = "none"',
        "timeout = 10",
        "max_per_connection = 1000000",
    ]
    for d in range(-(-mailboxes // PER_DOMAIN)):
        lines += ["", "[[domains]]", f'name = "send{d + 1:04d}.example.com"', 'provider = "sink"']
        for m in range(min(PER_DOMAIN, mailboxes - d * PER_DOMAIN)):
            lines += [
                "[[domains.mailboxes]]",
                f'address = "rep{m + 1}@send{d + 1:04d}.example.com"',
                f'display_name = "Rep {m + 1}"',
                "warmup = false",
                'imap_host = "127.0.0.1"',
                f"imap_port = {imap_port}",
                'imap_security = "plain"',
                'imap_sent_folder = "Sent"',
                f'imap_password = {{ env = "{IMAP_SECRET}" }}',
            ]
    return "\n".join(lines) + "\n"


def campaign_toml(per_day: int) -> str:
    return f'''slug = "{SLUG}"
name = "Soak"
postal_address = "Soak Ltd, 1 Test Street, Bristol BS1 4QA, United Kingdom"
timezone = "UTC"
daily_cap = {per_day}

[window]
days = ["mon", "tue", "wed", "thu", "fri"]
start = "09:00"
end = "17:00"

[[steps]]
delay_days = 0
subject = "{{Quick|Short}} question about {{{{ company | default('your team') }}}}"
html = """
<p>{{Hi|Hello}} {{{{ first_name | default('there') }}}},</p>
<p>Would it be worth a 15-minute call next week about {{{{ company | default('your team') }}}}?</p>
<p>{{{{ sender_first_name | default('The team') }}}}</p>
"""

[[steps]]
delay_days = 3
reply_to_thread = true
subject = ""
html = """
<p>{{Hi|Hello}} {{{{ first_name | default('there') }}}}, just bumping this up.</p>
"""
'''


def leads_csv(path: Path, day: int, count: int) -> None:
    rows = ["Email,First Name,Company"]
    for i in range(count):
        # Two leads a company: the recipient-domain cap (5 a day) never binds.
        rows.append(f"lead{i}@soak{day:03d}c{i // 2}-corp.com,Lead{i},Company {day}-{i // 2}")
    path.write_text("\n".join(rows) + "\n")


@dataclass
class Totals:
    kills: int = 0
    kills_mid_batch: int = 0
    passes: int = 0
    bounces: int = 0
    complaints: int = 0
    replies: int = 0
    unknown_before: int = 0
    reconciled_sent: int = 0
    reconciled_rerouted: int = 0
    import_cpu: float = 0.0
    server_cpu: float | None = None
    cpu_by_role: dict[str, float] = field(default_factory=lambda: collections.defaultdict(float))
    capacity: dict[date, int] = field(default_factory=dict)
    # What the pool could send that day: the morning's capacity less what mailboxes and domains
    # that stopped during the day (a pause by the health rules) left unused, plus those that
    # came back (available_capacity).
    available: dict[date, int] = field(default_factory=dict)


class Soak:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.rng = random.Random(args.seed)
        self.totals = Totals()
        self.start = first_monday_after(datetime.now(UTC).date())
        self.spool = work / "spool"
        self.logs = work / "logs"
        self.logs.mkdir()
        self.event_id = 1000
        self.measuring = False
        self.interrupted = False
        self.days_done = 0
        self.last_injection = self.start

    # -- processes --

    def child(self, *argv: str) -> list[str]:
        return [sys.executable, *argv]

    def at(self, when: datetime, *command: str, cpu_is_engine: bool = True) -> str:
        before = children_cpu()
        out = subprocess.run(
            self.child(__file__, "--at", when.isoformat(), "--", *command),
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if cpu_is_engine and self.measuring:
            self.totals.cpu_by_role[command[0]] += children_cpu() - before
        else:
            self.totals.import_cpu += children_cpu() - before
        if out.returncode != 0:
            raise RuntimeError(f"outreach {' '.join(command)}: {out.stderr[-3000:]}")
        return out.stdout

    def worker(self, n: int) -> Driven:
        argv = ["-m", "outreach.tests.soakdriver", "worker", "--concurrency", str(CONCURRENCY)]
        return Driven("workers", self.child(*argv), self.env, self.logs / f"worker{n}.log")

    # -- the run --

    def run(self) -> dict[str, Any]:
        args = self.args
        from outreach.events.tests import dovecot

        # SIGTERM to this process (or SIGINT to it alone): finish the simulated day (the first
        # one during the setup), then report the days done and clean up.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self.interrupt)
        reason = dovecot.available()
        if reason:
            raise SystemExit(f"soak: {reason}")
        smtp_port, web_port = free_port(), free_port()
        self.web_url = f"http://127.0.0.1:{web_port}"
        addresses = [
            f"rep{m + 1}@send{d + 1:04d}.example.com"
            for d in range(-(-args.mailboxes // PER_DOMAIN))
            for m in range(min(PER_DOMAIN, args.mailboxes - d * PER_DOMAIN))
        ]
        with contextlib.ExitStack() as stack:
            self.imap = dovecot.start(addresses)
            stack.callback(self.imap.stop)
            sink = subprocess.Popen(
                self.child(
                    __file__,
                    "--sink",
                    str(smtp_port),
                    str(self.spool),
                    "--latency-ms",
                    str(args.latency_ms),
                    "--homes",
                    str(self.imap.root / "home"),
                ),
                stdout=subprocess.PIPE,
                text=True,
            )
            stack.callback(stop_process, sink)
            assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
            url, admin = self.database()
            stack.callback(lambda: self.drop(admin))
            self.env = {
                **os.environ,
                "DATABASE_URL": url,
                "DJANGO_SETTINGS_MODULE": "outreach.settings",
                "OUTREACH_LOG_LEVEL": "ERROR",
                "OUTREACH_WEBHOOK_SECRET": f"{WEBHOOK_AUTH[0]}:{WEBHOOK_AUTH[1]}",
                "OUTREACH_DNS_CRITICAL_BLOCKS_SENDING": "false",
                IMAP_SECRET: self.imap.password,
            }
            self.env.pop("OUTREACH_TEST_DATABASE_NAME", None)
            os.environ.update(self.env)
            import django

            django.setup()
            from django.core.management import call_command

            call_command("migrate", verbosity=0)
            (self.work / "pool.toml").write_text(
                pool_toml(args.mailboxes, args.per_day, smtp_port, self.imap.port)
            )
            (self.work / "campaign.toml").write_text(campaign_toml(args.per_day))
            setup_at = self.start - timedelta(hours=2)
            self.at(setup_at, "apply", str(self.work / "pool.toml"))
            self.at(setup_at, "campaign", "apply", str(self.work / "campaign.toml"))
            self.at(setup_at, "campaign", "start", SLUG)

            size_before = self.database_size()
            cpu_before = children_cpu()
            server_before = postgres_cpu()
            self.measuring = True
            self.wall = wall = time.monotonic()
            web = subprocess.Popen(
                self.child(
                    "-m", "outreach.tests.soakdriver", "web", "--bind", f"127.0.0.1:{web_port}"
                ),
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=(self.logs / "web.log").open("ab"),
            )
            stack.callback(stop_process, web)
            self.wait_for_web()
            scheduler = Driven(
                "scheduler",
                self.child("-m", "outreach.tests.soakdriver", "scheduler"),
                self.env,
                self.logs / "scheduler.log",
            )
            inbox = Driven(
                "inbox", self.child(__file__, "--inbox-reader"), self.env, self.logs / "inbox.log"
            )
            workers = [self.worker(n) for n in range(WORKERS)]
            self.spawned = WORKERS
            try:
                self.days(scheduler, inbox, workers)
            finally:
                for proc in (scheduler, inbox, *workers):
                    self.totals.cpu_by_role[proc.role] += process_cpu(proc.proc.pid)
                    proc.close()
                self.totals.cpu_by_role["web"] += process_cpu(web.pid)
                web.terminate()
                web.wait(timeout=60)
            cpu = children_cpu() - cpu_before - self.totals.import_cpu
            server_after = postgres_cpu()
            if server_before is not None and server_after is not None:
                self.totals.server_cpu = server_after - server_before
            elapsed = time.monotonic() - wall
            size_after = self.database_size()
            return self.figures(cpu, elapsed, size_before, size_after)

    def days(self, scheduler: Driven, inbox: Driven, workers: list[Driven]) -> None:
        args = self.args
        sending_days = [
            day for day in range(args.days) if (self.start + timedelta(days=day)).weekday() < 5
        ]
        # A kill lands in one of the first passes of a sending day, while mail goes out.
        kill_at = collections.Counter(
            (self.rng.choice(sending_days), self.rng.randrange(1, 25)) for _ in range(args.kills)
        )
        from outreach.lib import clock
        from outreach.scheduler.status import pool_status

        for day in range(args.days):
            morning = self.start + timedelta(days=day, hours=7)
            clock.set_now(morning)
            if day in sending_days:
                count = args.per_day + args.per_day // 10
                csv = self.work / f"leads{day}.csv"
                leads_csv(csv, day, count)
                self.at(
                    morning, "leads", "import", str(csv), "--campaign", SLUG, cpu_is_engine=False
                )
            status = pool_status()
            self.totals.capacity[morning.date()] = min(args.per_day, status.capacity_today)
            at = self.start + timedelta(days=day, hours=FIRST_PASS_HOUR)
            last = self.start + timedelta(days=day, hours=LAST_PASS_HOUR)
            step = 0
            while at <= last:
                scheduler.send(at)
                report = scheduler.answer()
                claimed = report["claimed"]
                self.totals.unknown_before += report.get("unknown", 0)
                self.totals.reconciled_sent += report.get("found_sent", 0)
                self.totals.reconciled_rerouted += report.get("resent", 0)
                clock.set_now(at)
                self.inject_webhooks(at)
                received = self.received_bytes()
                for worker in workers:
                    worker.send(at + WORKER_DELAY)
                for _ in range(kill_at[(day, step)]):
                    self.kill_one(workers, at + WORKER_DELAY, received)
                for worker in workers:
                    worker.answer()
                step += 1
                self.totals.passes += 1
                if claimed:
                    at += PASS_STEP  # a pass per pacing slot while there is work
                else:  # nothing to claim: the next hour
                    at = at.replace(minute=0, second=0) + timedelta(hours=1)
            clock.set_now(last)
            self.totals.available[morning.date()] = min(
                args.per_day, available_capacity(status, pool_status())
            )
            evening = self.start + timedelta(days=day, hours=19, minutes=30)
            clock.set_now(evening)
            self.inject_replies(evening - timedelta(days=1), evening)
            inbox.send(evening + timedelta(minutes=5))
            inbox.answer()
            self.reconcile(evening + timedelta(minutes=10))
            self.days_done = day + 1
            self.progress(day, morning.date())
            if self.interrupted:
                print("interrupted: the figures of the days done", file=sys.stderr, flush=True)
                return

    def interrupt(self, signum: int, frame: Any) -> None:
        self.interrupted = True

    def progress(self, day: int, today: date) -> None:
        """One line a simulated day on stderr (what a long run has done so far)."""
        from outreach.campaigns.models import Message

        sent = Message.objects.filter(sent_at__isnull=False, quota_day=today).count()
        unknown = Message.objects.filter(state=Message.State.UNKNOWN).count()
        print(
            f"day {day + 1}/{self.args.days} {today} {today:%a}: sent {sent} of "
            f"{self.totals.capacity[today]}, kills {self.totals.kills}, in doubt so far "
            f"{self.totals.unknown_before}, unknown now {unknown}, db "
            f"{self.database_size() / 2**20:,.1f} MiB, {time.monotonic() - self.wall:,.0f} s",
            file=sys.stderr,
            flush=True,
        )

    def received_bytes(self) -> int:
        index = self.spool / "index.tsv"
        return index.stat().st_size if index.exists() else 0

    def kill_one(self, workers: list[Driven], instant: datetime, received: int) -> None:
        """SIGKILL a worker once mail of this pass is going out (the sink has taken a few
        more messages): one still busy with its batch if any is, else any (then the kill
        lands between batches); start a new one."""
        wait_for = received + self.rng.randint(1, 10) * INDEX_LINE_BYTES
        deadline = time.monotonic() + 30
        while (
            self.received_bytes() < wait_for
            and not all(worker.answered() for worker in workers)
            and time.monotonic() < deadline
        ):
            time.sleep(0.005)
        busy = [n for n, worker in enumerate(workers) if not worker.answered()]
        index = self.rng.choice(busy) if busy else self.rng.randrange(len(workers))
        victim = workers[index]
        mid_batch = not victim.answered()
        self.totals.cpu_by_role["workers"] += process_cpu(victim.proc.pid)
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(timeout=30)
        self.totals.kills += 1
        self.totals.kills_mid_batch += mid_batch
        self.spawned += 1
        workers[index] = self.worker(self.spawned)
        # The new worker takes the same instant (the killed one's claims wait for their lease).
        workers[index].send(instant)

    def inject_webhooks(self, now: datetime) -> None:
        """Bounces and complaints for messages sent since the last call, through the app."""
        import requests

        from outreach.campaigns.models import Message
        from outreach.tests.test_soak import _postmark

        recent = Message.objects.filter(
            state=Message.State.SENT, sent_at__gt=self.last_injection, sent_at__lte=now
        ).select_related("mailbox")
        self.last_injection = now
        for message in recent:
            roll = self.rng.random()
            if roll < self.args.complaint_rate:
                record = "SpamComplaint"
                self.totals.complaints += 1
            elif roll < self.args.complaint_rate + self.args.bounce_rate:
                record = "HardBounce"
                self.totals.bounces += 1
            else:
                continue
            self.event_id += 1
            response = requests.post(
                self.web_url + POSTMARK_URL,
                json=_postmark(record, message, self.event_id, now),
                auth=WEBHOOK_AUTH,
                headers={"X-Soak-Clock": now.isoformat()},
                timeout=30,
            )
            if response.status_code != 200:
                raise RuntimeError(f"webhook answered {response.status_code}: {response.text}")

    def inject_replies(self, since: datetime, now: datetime) -> None:
        """Some leads answer: their reply lands in the sending mailbox's INBOX (IMAP)."""
        from imap_tools import MailBoxUnencrypted

        from outreach.campaigns.models import Message

        sent = Message.objects.filter(
            state=Message.State.SENT, sent_at__gt=since, sent_at__lte=now
        ).values_list("mailbox__address", "to_email", "subject", "message_id_header")
        by_mailbox: dict[str, list[bytes]] = collections.defaultdict(list)
        for address, lead, subject, message_id in sent:
            if self.rng.random() >= self.args.reply_rate:
                continue
            reply = EmailMessage()
            reply["From"] = lead
            reply["To"] = address
            reply["Subject"] = f"Re: {subject}"
            reply["Date"] = format_datetime(now)
            reply["Message-ID"] = make_msgid(domain=lead.split("@")[1])
            reply["In-Reply-To"] = message_id
            reply["References"] = message_id
            reply.set_content("Thanks for reaching out. Happy to talk next week, Tuesday works.")
            by_mailbox[address].append(reply.as_bytes())
        for address, raws in by_mailbox.items():
            with MailBoxUnencrypted(self.imap.host, self.imap.port).login(
                address, self.imap.password
            ) as client:
                for raw in raws:
                    client.append(raw, "INBOX")
                    self.totals.replies += 1

    def reconcile(self, now: datetime) -> None:
        """``outreach reconcile`` for what is still in doubt in the evening (each scheduler
        pass also reconciles what is past the grace)."""
        from outreach.campaigns.models import Message

        doubtful = Message.objects.filter(state=Message.State.UNKNOWN).count()
        if not doubtful:
            return
        command = ["reconcile", "--now", now.isoformat(), "--json", "--limit", str(doubtful)]
        out = self.at(now, *command)
        report = json.loads(out.strip().splitlines()[-1])
        self.totals.reconciled_sent += report.get("sent", 0)
        self.totals.reconciled_rerouted += report.get("resent", 0)

    def received(self) -> Iterator[tuple[str, str, str, str]]:
        index = self.spool / "index.tsv"
        if not index.exists():
            return
        for line in index.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) == 4:
                yield parts[0], parts[1], parts[2], parts[3]

    # -- figures --

    def figures(
        self, cpu: float, elapsed: float, size_before: int, size_after: int
    ) -> dict[str, Any]:
        from outreach.campaigns.models import Message
        from outreach.events.models import Event
        from outreach.pool.models import Domain, PoolSettings
        from outreach.scheduler.models import DailyCounter

        args = self.args
        limits = PoolSettings.load().limits
        domain_caps = {d.pk: d.cap(limits) for d in Domain.objects.all()}
        rows = list(
            Message.objects.filter(sent_at__isnull=False).values_list(
                "quota_day", "mailbox_id", "mailbox__domain_id", "campaign_id"
            )
        )
        per: dict[str, collections.Counter[tuple[Any, ...]]] = {
            "mailbox": collections.Counter((r[0], r[1]) for r in rows),
            "domain": collections.Counter((r[0], r[2]) for r in rows),
            "campaign": collections.Counter((r[0], r[3]) for r in rows),
            "global": collections.Counter((r[0],) for r in rows),
        }
        overshoot = {
            "mailbox": sum(max(0, n - limits.mailbox_daily_cap) for n in per["mailbox"].values()),
            "domain": sum(max(0, n - domain_caps[k[1]]) for k, n in per["domain"].items()),
            "campaign": sum(max(0, n - args.per_day) for n in per["campaign"].values()),
            "global": sum(max(0, n - limits.global_daily_cap) for n in per["global"].values()),
        }
        message_ids = collections.Counter(mid for mid, _, _, _ in self.received())
        duplicates = sum(n - 1 for n in message_ids.values() if n > 1)
        # Units the caps handed out without a send on that day: a message in doubt that went
        # back to routing, a call refused or failed, a claim still waiting when the day ended.
        claimed = dict(
            DailyCounter.objects.filter(scope=DailyCounter.Scope.GLOBAL).values_list("day", "used")
        )
        daily: list[dict[str, Any]] = []
        for day, capacity in sorted(self.totals.capacity.items()):
            sent = per["global"].get((day,), 0)
            sending = day.weekday() < 5
            available = self.totals.available.get(day, capacity)
            daily.append(
                {
                    "day": day.isoformat(),
                    "sending_day": sending,
                    "sent": sent,
                    "capacity": capacity if sending else 0,
                    "use": round(sent / capacity, 4) if sending and capacity else None,
                    "available": available if sending else 0,
                    "use_of_available": round(sent / available, 4)
                    if sending and available
                    else None,
                    "claimed_unsent": claimed.get(day, 0) - sent,
                }
            )
        uses: list[float] = [d["use"] for d in daily if d["use"] is not None]
        available_uses: list[float] = [
            d["use_of_available"] for d in daily if d["use_of_available"] is not None
        ]
        states = collections.Counter(Message.objects.values_list("state", flat=True))
        events = collections.Counter(Event.objects.values_list("type", flat=True))
        sent_total = len(rows)
        days = self.days_done
        growth = (size_after - size_before) / days * 30 if days else 0.0
        return {
            "days": days,
            "per_day": args.per_day,
            "mailboxes": args.mailboxes,
            "sent": sent_total,
            "received_by_sink": sum(message_ids.values()),
            "duplicates": duplicates,
            "cap_overshoot": overshoot,
            "unknown_before_reconcile": self.totals.unknown_before,
            "reconciled_sent": self.totals.reconciled_sent,
            "reconciled_rerouted": self.totals.reconciled_rerouted,
            "unknown_after_reconcile": states.get(Message.State.UNKNOWN, 0),
            "capacity_use_min": min(uses) if uses else None,
            "capacity_use_mean": round(sum(uses) / len(uses), 4) if uses else None,
            "available_use_min": min(available_uses) if available_uses else None,
            "available_use_mean": round(sum(available_uses) / len(available_uses), 4)
            if available_uses
            else None,
            "sending_days": len(uses),
            "daily": daily,
            "kills": self.totals.kills,
            "kills_mid_batch": self.totals.kills_mid_batch,
            "passes": self.totals.passes,
            "bounces_injected": self.totals.bounces,
            "complaints_injected": self.totals.complaints,
            "replies_injected": self.totals.replies,
            "message_states": dict(states),
            "events_recorded": dict(events),
            "cpu_seconds": round(cpu, 2),
            "cpu_ms_per_message": round(cpu * 1000 / sent_total, 3) if sent_total else None,
            # The same CPU by process (from /proc just before each ended or was killed).
            "cpu_ms_per_message_by_process": {
                role: round(seconds * 1000 / sent_total, 3)
                for role, seconds in sorted(self.totals.cpu_by_role.items())
            }
            if sent_total
            else {},
            # The PostgreSQL server's own CPU over the run (the whole cluster, from /proc),
            # per message: what one database core spends on a send (see docs/scaling.md).
            "db_server_cpu_ms_per_message": round(self.totals.server_cpu * 1000 / sent_total, 3)
            if sent_total and self.totals.server_cpu is not None
            else None,
            "db_bytes_before": size_before,
            "db_bytes_after": size_after,
            "db_growth_bytes_per_month": round(growth),
            "db_growth_bytes_per_year": round(growth * 12),
            # A run shorter than a week has no weekend: per month above counts 30 sending days.
            "db_growth_bytes_per_sending_day": round((size_after - size_before) / len(uses))
            if uses
            else None,
            "wall_seconds": round(elapsed, 1),
            "sink_latency_ms": args.latency_ms,
        }

    # -- database --

    def database(self) -> tuple[str, str]:
        import psycopg

        url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
        parsed = urlparse(url)
        if not parsed.scheme.startswith("postgres"):
            raise SystemExit("soak: DATABASE_URL must name a PostgreSQL server")
        admin = urlunparse(parsed._replace(path="/postgres"))
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {self.args.db_name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {self.args.db_name}")
        return urlunparse(parsed._replace(path=f"/{self.args.db_name}")), admin

    def drop(self, admin: str) -> None:
        if self.args.keep:
            return
        import psycopg
        from django.db import connections

        connections.close_all()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {self.args.db_name} WITH (FORCE)")

    def database_size(self) -> int:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_database_size(current_database())")
            return int(cursor.fetchone()[0])

    def wait_for_web(self) -> None:
        import requests

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.web_url + "/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.3)
        raise RuntimeError(f"the web app did not answer: {(self.logs / 'web.log').read_text()}")


def print_table(result: dict[str, Any]) -> None:
    over = result["cap_overshoot"]
    rows = [
        ("days", result["days"]),
        ("per day (campaign cap)", result["per_day"]),
        ("mailboxes", result["mailboxes"]),
        ("sent", result["sent"]),
        ("received by the sink", result["received_by_sink"]),
        ("duplicates (goal 0)", result["duplicates"]),
        ("cap overshoot (goal 0)", ", ".join(f"{k} {v}" for k, v in over.items())),
        ("worker SIGKILLs (mid-batch)", f"{result['kills']} ({result['kills_mid_batch']})"),
        ("unknown before reconcile", result["unknown_before_reconcile"]),
        (
            "  reconciled: sent / rerouted",
            f"{result['reconciled_sent']} / {result['reconciled_rerouted']}",
        ),
        ("unknown after reconcile", result["unknown_after_reconcile"]),
        ("capacity use, min (goal >= 0.95)", result["capacity_use_min"]),
        ("capacity use, mean", result["capacity_use_mean"]),
        ("use of what stayed available, min", result["available_use_min"]),
        ("use of what stayed available, mean", result["available_use_mean"]),
        (
            "bounces / complaints / replies",
            "{bounces_injected} / {complaints_injected} / {replies_injected}".format(**result),
        ),
        ("events recorded", ", ".join(f"{k} {v}" for k, v in result["events_recorded"].items())),
        ("CPU ms per message", result["cpu_ms_per_message"]),
        (
            "  by process",
            ", ".join(f"{k} {v}" for k, v in result["cpu_ms_per_message_by_process"].items()),
        ),
        ("database server CPU ms per message", result["db_server_cpu_ms_per_message"]),
        ("DB growth per month", f"{result['db_growth_bytes_per_month'] / 2**20:,.1f} MiB"),
        ("wall time", f"{result['wall_seconds']:,.0f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print()
    print(
        f"{'day':<12}{'sending':>8}{'sent':>8}{'capacity':>10}{'use':>8}{'available':>11}"
        f"{'use':>8}{'claimed unsent':>16}"
    )
    for day in result["daily"]:
        use = "" if day["use"] is None else f"{day['use']:.3f}"
        of_available = "" if day["use_of_available"] is None else f"{day['use_of_available']:.3f}"
        print(
            f"{day['day']:<12}{'yes' if day['sending_day'] else 'no':>8}{day['sent']:>8}"
            f"{day['capacity']:>10}{use:>8}{day['available']:>11}{of_available:>8}"
            f"{day['claimed_unsent']:>16}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--per-day", type=int, default=300, help="the campaign's daily cap")
    parser.add_argument("--mailboxes", type=int, help=f"default: per-day / {MAILBOX_CAP}")
    parser.add_argument("--kills", type=int, help="worker SIGKILLs (default: one a day)")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--bounce-rate", type=float, default=0.01)
    parser.add_argument("--complaint-rate", type=float, default=0.0001)
    parser.add_argument("--reply-rate", type=float, default=0.03)
    parser.add_argument("--seed", type=int, default=20260302)
    parser.add_argument("--db-name", default="outreach_soak", help="database to (re)create")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--sink", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--homes", help=argparse.SUPPRESS)
    parser.add_argument("--at", help=argparse.SUPPRESS)
    parser.add_argument("--inbox-reader", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("command", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        run_sink(int(args.sink[0]), Path(args.sink[1]), args.latency_ms, Path(args.homes))
        return
    if args.at:
        run_at(args.at, args.command)
        return
    if args.inbox_reader:
        run_inbox_reader()
        return
    if args.mailboxes is None:
        args.mailboxes = max(PER_DOMAIN, -(-args.per_day // MAILBOX_CAP))
    if args.kills is None:
        args.kills = args.days
    with tempfile.TemporaryDirectory(prefix="outreach-soak-") as work:
        result = Soak(args, Path(work)).run()
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
