"""The simulator's speed by pool size: simulated sends per second at 30, 300, 3,000 mailboxes.

    .venv/bin/python bench/simulate_scale.py [--sizes 30,300,3000] [--days 1] [--fill 1]
                                              [--full-send] [--json]

For each size it writes a pool of that many warmed mailboxes (three per domain, 40 a day each,
no global ceiling below the pool's capacity), runs ``outreach simulate`` on it for ``--days``
days with enough leads to fill every send slot (the example campaign, without its daily
cap), and reads the simulated sends and the simulator's own elapsed time. The cost of a
simulated send should not grow with the pool: ``cost_ratio_<N>_vs_<smallest>`` is seconds
per send at N over seconds per send at the smallest size (goal <= 1.5). Each size runs in
its own process and throwaway SQLite database. ``--full-send`` runs the engine's complete send
for every message (``outreach simulate --full-send``) instead of the simulator's take and
finish alone.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PER_DOMAIN = 3
MAILBOX_CAP = 40


def pool_toml(mailboxes: int) -> str:
    """A pool of ``mailboxes`` warmed mailboxes on the simulated provider."""
    domains = -(-mailboxes // PER_DOMAIN)
    lines = [
        'timezone = "UTC"',
        "[limits]",
        f"mailbox_daily_cap = {MAILBOX_CAP}",
        f"domain_daily_cap = {PER_DOMAIN * MAILBOX_CAP}",
        f"global_daily_cap = {mailboxes * MAILBOX_CAP}",
        "recipient_domain_daily_cap = 5",
        "pacing_gap_seconds = 120",
        "pacing_jitter_seconds = 60",
        "[providers.sim]",
        'kind = "sandbox"',
        "price_per_1000 = 0.10",
    ]
    made = 0
    for d in range(domains):
        lines += ["[[domains]]", f'name = "send{d + 1}.example.com"', 'provider = "sim"']
        for m in range(PER_DOMAIN):
            if made == mailboxes:
                break
            lines += [
                "[[domains.mailboxes]]",
                f'address = "rep{m + 1}@send{d + 1}.example.com"',
                f'display_name = "Rep {m + 1}"',
                "warmup = false",
            ]
            made += 1
    return "\n".join(lines) + "\n"


def run(
    mailboxes: int, days: int, workdir: Path, fill: float = 1.0, *, full_send: bool = False
) -> dict[str, object]:
    config = workdir / f"pool-{mailboxes}.toml"
    config.write_text(pool_toml(mailboxes))
    # The example campaign without its daily cap: the pool's capacity is what is measured.
    campaign = workdir / "campaign.toml"
    example = (ROOT / "examples" / "campaign.toml").read_text().splitlines()
    campaign.write_text("\n".join(x for x in example if not x.startswith("daily_cap")) + "\n")
    leads = max(1, round(mailboxes * MAILBOX_CAP * days * fill))
    command = [sys.executable, "-m", "outreach", "simulate", "--json", "--seed", "1"]
    command += ["--config", str(config), "--campaign", str(campaign)]
    command += ["--days", str(days), "--leads", str(leads)]
    command += ["--full-send"] if full_send else []
    env = {**os.environ, "OUTREACH_LOG_LEVEL": "ERROR"}
    # The machine's 1-minute load average before and after: elapsed figures on a shared
    # machine mean little without it.
    load_before = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU of the whole process (migrations and setup included): on a shared machine the
    # elapsed time also counts the waits for a core.
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    sent = int(data["totals"]["sent"])
    elapsed = float(data["elapsed_seconds"])
    return {
        "mailboxes": mailboxes,
        "days": days,
        "leads": leads,
        "sent": sent,
        "cap_exceeded": data["totals"]["cap_exceeded"],
        "utilization": data["totals"]["utilization"],
        "elapsed_seconds": elapsed,
        "sends_per_second": round(sent / elapsed, 1) if elapsed else 0.0,
        "ms_per_send": round(1000 * elapsed / max(sent, 1), 3),
        "process_cpu_seconds": round(cpu, 1),
        "cpu_ms_per_send": round(1000 * cpu / max(sent, 1), 3),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="30,300,3000", help="pool sizes, comma-separated")
    parser.add_argument("--days", type=int, default=1, help="simulated days per size")
    parser.add_argument(
        "--fill",
        default="1",
        help="leads as a share of the pool's send slots, one per size or one for all "
        "(e.g. 1,0.25,0.05 to time 3,000 mailboxes without simulating 120,000 sends)",
    )
    parser.add_argument(
        "--full-send", action="store_true", help="the engine's complete send for every message"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    with tempfile.TemporaryDirectory(prefix="outreach-simscale-") as tmp:
        fills = [float(f) for f in args.fill.split(",")]
        fills = fills if len(fills) == len(sizes) else [fills[0]] * len(sizes)
        runs = [
            run(size, args.days, Path(tmp), fill, full_send=args.full_send)
            for size, fill in zip(sizes, fills, strict=True)
        ]
    base = runs[0]
    result: dict[str, object] = {"days": args.days, "full_send": args.full_send, "runs": runs}
    for r in runs[1:]:
        result[f"cost_ratio_{r['mailboxes']}_vs_{base['mailboxes']}"] = round(
            float(str(r["ms_per_send"])) / max(float(str(base["ms_per_send"])), 1e-9),
            2,
        )
    if args.json:
        print(json.dumps(result))
        return
    print(f"outreach simulate, {args.days} day(s) per pool size")
    print(
        f"{'mailboxes':>10}{'sent':>10}{'seconds':>10}{'sends/s':>10}{'ms/send':>10}"
        f"{'ratio':>8}{'cpu ms/send':>13}{'load':>14}"
    )
    for r in runs:
        ratio = float(r["ms_per_send"]) / max(float(base["ms_per_send"]), 1e-9)  # type: ignore[arg-type]
        print(
            f"{r['mailboxes']:>10}{r['sent']:>10}{r['elapsed_seconds']:>10.1f}"
            f"{r['sends_per_second']:>10.1f}{r['ms_per_send']:>10.3f}{ratio:>8.2f}"
            f"{r['cpu_ms_per_send']:>13.3f}"
            f"{r['load_average']!s:>14}"
        )


if __name__ == "__main__":
    main()
