"""Footprint of `outreach run` on SQLite with the example pool: resident memory and start-up.

Sets up a scratch deployment exactly as `make run` does (example pool, campaign and leads),
with the campaign's window opened to every hour so that it sends now, then starts
`outreach run` and measures:

- start-up: seconds from spawning the process to the first 200 from /healthz;
- resident memory (VmRSS of the process) once idle (no due message) and its peak while the
  engine loops are planning, claiming and sending to the sandbox provider.

The baseline, measured the same way in the same run, is a bare waitress server of a trivial
WSGI app: what any Python web process costs on this machine. The goal is ≤ 250 MB in all,
so the engine fits a 1 GB VPS beside PostgreSQL.

    .venv/bin/python bench/footprint.py [--sending-seconds 30] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUDGET_MB = 250.0
BASELINE_APP = """
import sys
from waitress import serve
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=8)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else 0.0


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"process exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
                if response.status == 200:
                    return time.monotonic() - start
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} not ready after {timeout}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def sent_count(env: dict[str, str], cwd: Path) -> int:
    out = subprocess.run(
        [sys.executable, "-m", "outreach", "status", "--json"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sum(int(row["sent_today"]) for row in json.loads(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sending-seconds", type=float, default=30.0)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="outreach-footprint-"))
    try:
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{scratch / 'outreach.sqlite3'}",
            "OUTREACH_VAR_DIR": str(scratch / "var"),
            "OUTREACH_LOG_LEVEL": "WARNING",
            "OUTREACH_DNS_CHECK_INTERVAL_MINUTES": "0",
        }

        def outreach(*argv: str) -> None:
            subprocess.run(
                [sys.executable, "-m", "outreach", *argv],
                env=env,
                cwd=scratch,
                check=True,
                stdout=subprocess.DEVNULL,
            )

        campaign = (REPO / "examples" / "campaign.toml").read_text()
        campaign = re.sub(
            r"days = \[[^\]]*\]",
            'days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]',
            campaign,
            count=1,
        )
        campaign = campaign.replace('start = "09:00"', 'start = "00:00"').replace(
            'end = "17:00"', 'end = "23:59"'
        )
        (scratch / "campaign.toml").write_text(campaign)
        outreach("migrate", "-v0")
        outreach("apply", str(REPO / "examples" / "pool.toml"))
        outreach("campaign", "apply", str(scratch / "campaign.toml"))
        outreach(
            "leads", "import", str(REPO / "examples" / "leads.csv"), "--campaign", "example-intro"
        )

        # Baseline: a bare waitress process.
        port = free_port()
        base = subprocess.Popen([sys.executable, "-c", BASELINE_APP, str(port)], cwd=scratch)
        base_start = wait_ready(f"http://127.0.0.1:{port}/", base)
        time.sleep(args.idle_seconds)
        base_rss = rss_mb(base.pid)
        stop(base)

        # outreach run, idle: the campaign is not started yet, nothing is due.
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "outreach", "run", "--bind", f"127.0.0.1:{port}"],
            env=env,
            cwd=scratch,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            startup = wait_ready(f"http://127.0.0.1:{port}/healthz", proc)
            time.sleep(args.idle_seconds)
            idle = rss_mb(proc.pid)
            outreach("campaign", "start", "example-intro")
            peak = idle
            deadline = time.monotonic() + args.sending_seconds
            while time.monotonic() < deadline:
                peak = max(peak, rss_mb(proc.pid))
                time.sleep(0.2)
        finally:
            stop(proc)
        sent = sent_count(env, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    figures = {
        "startup_seconds": round(startup, 2),
        "baseline_startup_seconds": round(base_start, 2),
        "startup_ratio_vs_baseline": round(startup / base_start, 2),
        "rss_idle_mb": round(idle, 1),
        "rss_sending_peak_mb": round(peak, 1),
        "baseline_rss_mb": round(base_rss, 1),
        "rss_ratio_vs_baseline": round(peak / base_rss, 2),
        "rss_ratio_vs_budget": round(peak / BUDGET_MB, 3),
        "sent_while_measuring": sent,
    }
    if args.json:
        print(json.dumps(figures))
        return
    print("outreach run on SQLite, example pool (30 mailboxes), sandbox provider")
    print(f"{'':28}{'outreach run':>14}{'bare waitress':>15}{'ratio':>8}")
    ratio = startup / base_start
    print(f"{'start-up to /healthz (s)':28}{startup:>14.2f}{base_start:>15.2f}{ratio:>8.2f}")
    print(f"{'resident memory idle (MB)':28}{idle:>14.1f}{base_rss:>15.1f}{idle / base_rss:>8.2f}")
    print(f"{'resident memory peak (MB)':28}{peak:>14.1f}{base_rss:>15.1f}{peak / base_rss:>8.2f}")
    print(
        f"peak vs the 250 MB budget: {peak / BUDGET_MB:.2f}; messages sent while measuring: {sent}"
    )


if __name__ == "__main__":
    main()
