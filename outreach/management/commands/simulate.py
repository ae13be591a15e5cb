"""`outreach simulate`: forecast a campaign on the real control plane and a simulated clock."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from outreach.campaigns.config import ConfigError as CampaignConfigError
from outreach.campaigns.lifecycle import CampaignError
from outreach.dashboard import simulation_report
from outreach.management import simulated_sending
from outreach.pool.config_spec import ConfigError as PoolConfigError
from outreach.scheduler import simulate


def _rate(value: str) -> float:
    rate = float(value)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(value)
    return rate


class Command(BaseCommand):
    help = (
        "Simulate --days days of the real control plane (warm-up, caps, windows, pacing, "
        "routing, health rules) against a simulated provider, in a throwaway database; "
        "report capacity, sends, pauses and the campaign's finish date."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=30, help="simulated days (default 30)")
        parser.add_argument("--leads", type=int, default=1000, help="generated leads (1000)")
        parser.add_argument(
            "--bounce-rate", type=_rate, default=0.01, help="share of leads that hard-bounce"
        )
        parser.add_argument(
            "--complaint-rate", type=_rate, default=0.0005, help="share of leads that complain"
        )
        parser.add_argument(
            "--config", type=Path, default=simulate.DEFAULT_POOL, help="pool file (TOML)"
        )
        parser.add_argument(
            "--campaign",
            type=Path,
            default=None,
            help="campaign file (default: examples/campaign.toml if present, else built-in)",
        )
        parser.add_argument("--start", type=date.fromisoformat, help="first day (YYYY-MM-DD)")
        parser.add_argument("--seed", type=int, default=1, help="random seed (reproducible)")
        parser.add_argument(
            "--resolution",
            type=int,
            default=300,
            help="seconds per step of the simulated clock (default 300; sends may leave up to "
            "this much later than in real time, never earlier)",
        )
        parser.add_argument(
            "--full-send",
            action="store_true",
            help="send every message through the engine's complete send (render, MIME, "
            "provider call) instead of its take and finish alone: slower, same outcomes",
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument("--report", type=Path, help="write an HTML report into this folder")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["days"] < 1 or options["days"] > 366:
            raise CommandError("--days: between 1 and 366")
        if not 1 <= options["resolution"] <= 3600:
            raise CommandError("--resolution: between 1 and 3600 seconds")
        if options["leads"] < 0:
            raise CommandError("--leads: not negative")
        if not options["config"].exists():
            raise CommandError(f"--config: {options['config']} not found")
        if options["campaign"] is not None and not options["campaign"].exists():
            raise CommandError(f"--campaign: {options['campaign']} not found")
        opts = simulate.Options(
            days=options["days"],
            leads=options["leads"],
            bounce_rate=options["bounce_rate"],
            complaint_rate=options["complaint_rate"],
            config=options["config"],
            campaign=options["campaign"],
            seed=options["seed"],
            start=options["start"],
            resolution_seconds=options["resolution"],
        )
        quiet = options["json"]

        def progress(day: dict[str, Any]) -> None:
            if not quiet:
                # Progress, not an error: no error colouring on a terminal.
                line = f"\rsimulated {day['date']} ({day['sent']} sent)   "
                self.stderr.write(line, style_func=str, ending="")
                self.stderr.flush()

        try:
            with simulate.throwaway_database():
                result = simulate.simulate(
                    opts,
                    on_day=progress,
                    send_due=None if options["full_send"] else simulated_sending.send_due,
                )
        except (PoolConfigError, CampaignConfigError, CampaignError) as exc:
            raise CommandError(str(exc)) from None
        data = result.to_dict()
        if options["report"] is not None:
            path = simulation_report.write_report(data, options["report"])
            if not quiet:
                self.stderr.write(f"\rreport written to {path}", style_func=str)
        if quiet:
            self.stdout.write(json.dumps(data, sort_keys=True))
            return
        self.stderr.write("", style_func=str)
        self.stdout.write(render_table(data))


def render_table(data: dict[str, Any]) -> str:
    """The per-day table and the summary, as plain text."""
    lines = [
        f"{'date':<10} {'day':<3} {'capacity':>8} {'sent':>5} {'campaign':>8} {'warm-up':>7} "
        f"{'util':>5} {'max/mb':>6} {'exceeded':>8}  mailboxes / events"
    ]
    for d in data["days"]:
        states = " ".join(f"{k}:{v}" for k, v in d["mailboxes_by_state"].items())
        note = f"{states}  bounces:{d['hard_bounces']} complaints:{d['complaints']}"
        if d["graduated"]:
            note += f"  graduated:{len(d['graduated'])}"
        lines.append(
            f"{d['date']:<10} {d['weekday']:<3} {d['capacity']:>8} {d['sent']:>5} "
            f"{d['campaign_sent']:>8} {d['warmup_sent']:>7} {d['utilization']:>5.0%} "
            f"{d['sent_by_mailbox_max']:>6} {d['cap_exceeded']:>8}  {note}"
        )
        for p in d["pauses"]:
            who = p["mailbox"] or p["domain"]
            lines.append(f"{'':<11}  {who} -> {p['to_state']}: {p['reason']}")
    t = data["totals"]
    finish = data["finish_date"] or "not within sight"
    if data["finish_date"] and data["finish_date_projected"]:
        finish += " (projected)"
    lines += [
        "",
        f"sent {t['sent']} ({t['campaign_sent']} campaign, {t['warmup_sent']} warm-up) of "
        f"capacity {t['capacity']} ({t['utilization']:.0%}); caps exceeded: {t['cap_exceeded']}",
        f"hard bounces {t['hard_bounces']}, complaints {t['complaints']}, pauses {t['pauses']}",
        f"campaign {data['campaign']['slug']} ({data['campaign']['enrolled']} enrolled) "
        f"finishes: {finish}",
        "recipients by provider: " + _mix(data["recipient_providers"], t["sent"]),
        f"{data['passes']} passes in {data['elapsed_seconds']} s "
        f"({data['sends_per_second']} simulated sends a second)",
    ]
    return "\n".join(lines)


def _mix(counts: dict[str, int], sent: int) -> str:
    """ "google 40 (40%), unknown 60 (60%)": each class's sends and share of all sends."""
    if not counts:
        return "none sent"
    return ", ".join(f"{name} {n} ({n / sent:.0%})" for name, n in counts.items())
