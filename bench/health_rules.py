"""Health rules on the simulator's traffic: false pauses of healthy mailboxes, and how fast a bad
one is caught.

    .venv/bin/python bench/health_rules.py [--json] [--seeds 100] [--days 30] [--leads 9000]
                                           [--config examples/pool.toml] [--campaign FILE]
                                           [--stream FILE]

1. **Traffic.** ``outreach simulate`` (:mod:`outreach.scheduler.simulate`: the real control
   plane, warm-up, routing, pacing and the sending engine on a simulated clock) runs the pool
   of ``--config`` and the example campaign once, in a throwaway database, with no bounces.
   Every provider call is read back: mailbox, time, recipient, step. One full simulation takes
   minutes, too slow to repeat for hundreds of seeds, so it runs once; ``--stream FILE`` keeps
   the stream and reuses it.
2. **Bounces.** For each seed and each true hard-bounce rate, a lead bounces when the
   simulated provider's own draw (``providers.simulated.sender.draw``) says so, exactly as in
   ``outreach simulate --bounce-rate R --seed S``; the report arrives 2 minutes after the send
   (the simulated provider's delay). A bounced lead gets no follow-up (its enrollment stops);
   warm-up mail goes to the seed inboxes and never bounces.
3. **Rules.** The real decisions run on the window's figures as the engine would gather them:
   :func:`outreach.metrics.health.mailbox_verdict` when each bounce is recorded and at the start
   of each pool day, :func:`outreach.metrics.health.domain_verdict` after each pause. A paused
   mailbox sends nothing more (it waits for a person); a domain in cooldown sends nothing for
   its cooldown. The baseline, measured on the same streams, is the rule before: pause when
   bounces / sent > ``bounce_pause_rate`` once ``min_sends`` were sent.

What this leaves out, honestly: traffic a paused mailbox would have sent does not move to the
others (they keep their own stream), so the healthy mailboxes' volume is what the simulator
gave them.

Figures: false pauses per mailbox-month and domain cooldowns at true rates 0.5%, 1% and 2%
(goal at 1%: at most 0.01 and no cooldown); detection at 6% and 10% on the mailboxes that
sent campaign mail from the first day: attempts until the pause (median, 95th percentile) and
the share paused within 200 / 100 attempts (goal: 95%). Detection is measured twice: per lead
(the simulator's ``--bounce-rate``: follow-ups go only to addresses that accepted, so the rate
per attempt is lower once they start) and per attempt (every attempt bounces at the rate: the
quantity the rules measure). The ratios compare each figure with the old rule's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FALSE_PAUSE_RATES = (0.005, 0.01, 0.02)
DETECTION = {0.06: 200, 0.10: 100}  # true rate -> attempts within which it must be paused
BOUNCE_DELAY = timedelta(minutes=2)  # the simulated provider's bounce_delay


# -- 1. traffic --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    at: float  # POSIX seconds
    day: int  # pool day ordinal
    mailbox: int
    recipient: str
    lead: int  # enrollment id; 0 for warm-up mail
    step: int  # 1-based; 0 for warm-up mail


@dataclass
class Stream:
    attempts: list[Attempt]
    domains: dict[int, int]  # mailbox -> domain
    from_day_one: list[int]  # mailboxes that sent campaign mail on the first day
    days: int
    simulate_seconds: float
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "attempts": [list(a.__dict__.values()) for a in self.attempts],
            "domains": self.domains,
            "from_day_one": self.from_day_one,
            "days": self.days,
            "simulate_seconds": self.simulate_seconds,
            "options": self.options,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Stream:
        return cls(
            attempts=[Attempt(*row) for row in data["attempts"]],
            domains={int(k): v for k, v in data["domains"].items()},
            from_day_one=data["from_day_one"],
            days=data["days"],
            simulate_seconds=data["simulate_seconds"],
            options=data["options"],
        )


def record_stream(config: Path, campaign: Path | None, days: int, leads: int) -> Stream:
    """Run the simulator once without bounces and read every provider call back."""
    from outreach.campaigns.models import Message
    from outreach.pool.models import Mailbox, PoolSettings
    from outreach.scheduler import simulate
    from outreach.sending.models import SendAttempt

    options = simulate.Options(
        days=days,
        leads=leads,
        bounce_rate=0.0,
        complaint_rate=0.0,
        config=config,
        campaign=campaign,
        seed=1,
    )
    started = time.perf_counter()
    with simulate.throwaway_database():
        result = simulate.simulate(options)
        from zoneinfo import ZoneInfo

        tz = ZoneInfo(PoolSettings.load().timezone)
        rows = (
            SendAttempt.objects.filter(outcome=SendAttempt.Outcome.SENT)
            .order_by("at", "id")
            .values_list(
                "at",
                "mailbox_id",
                "message__to_email",
                "message__enrollment_id",
                "message__kind",
                "message__step__position",
            )
        )
        attempts = []
        for at, mailbox, to, enrollment, kind, step in rows.iterator():
            campaign = kind == Message.Kind.CAMPAIGN
            attempts.append(
                Attempt(
                    at=at.timestamp(),
                    day=at.astimezone(tz).date().toordinal(),
                    mailbox=mailbox,
                    recipient=to,
                    lead=(enrollment or 0) if campaign else 0,
                    step=(step or 1) if campaign else 0,
                )
            )
        domains = dict(Mailbox.objects.values_list("pk", "domain_id"))
    first_day = result.start.toordinal()
    from_day_one = sorted({a.mailbox for a in attempts if a.day == first_day and a.step})
    return Stream(
        attempts=attempts,
        domains=domains,
        from_day_one=from_day_one,
        days=days,
        simulate_seconds=round(time.perf_counter() - started, 1),
        options={"config": str(config), "campaign": str(campaign), "days": days, "leads": leads},
    )


# -- 2 and 3. bounces and rules ----------------------------------------------------------------


Rule = Callable[[int, int], bool]  # (attempts, hard bounces) in the window -> pause?


def real_rule(thresholds: Any) -> Rule:
    from outreach.metrics.figures import Figures
    from outreach.metrics.health import Action, mailbox_verdict

    def pauses(attempts: int, bounced: int) -> bool:
        verdict = mailbox_verdict(Figures(sent=attempts, bounced_hard=bounced), thresholds)
        return verdict.action == Action.PAUSE

    return pauses


def ratio_rule(thresholds: Any) -> Rule:
    """The rule before: the plain ratio once ``min_sends`` were sent."""

    def pauses(attempts: int, bounced: int) -> bool:
        return (
            attempts >= thresholds.min_sends and bounced / attempts > thresholds.bounce_pause_rate
        )

    return pauses


Bounced = Callable[[str, int], bool]  # (recipient, step) -> does this attempt bounce?


class Draws:
    """The simulated provider's bounce draw of every recipient for one seed, computed once and
    compared with each rate.

    ``per_lead`` is the simulator's own model (``--bounce-rate``): an address bounces or not,
    so a follow-up, sent only to an address that accepted the first message, never bounces.
    ``per_attempt`` draws every attempt afresh: the rate the rules measure is the true rate.
    """

    def __init__(self, stream: Stream, seed: int) -> None:
        from outreach.providers.simulated.sender import draw

        campaign = [a for a in stream.attempts if a.step]
        self.lead = {a.recipient: draw(seed, a.recipient, "bounce") for a in campaign}
        self.attempt = {
            (a.recipient, a.step): draw(seed, f"{a.recipient}#{a.step}", "bounce") for a in campaign
        }

    def per_lead(self, rate: float) -> Bounced:
        values = self.lead
        return lambda recipient, step: values[recipient] < rate

    def per_attempt(self, rate: float) -> Bounced:
        values = self.attempt
        return lambda recipient, step: values[(recipient, step)] < rate


@dataclass
class Outcome:
    pauses: int = 0
    cooldowns: int = 0
    # mailbox -> its attempts until the pause (None: never paused)
    attempts_to_pause: dict[int, int | None] = field(default_factory=dict)


def replay(
    stream: Stream,
    bounced: Bounced,
    rule: Rule,
    thresholds: Any,
    *,
    mailboxes: set[int] | None = None,
) -> Outcome:
    """The stream with these bounces under ``rule``; only ``mailboxes`` when given (each then
    alone, as its domain's cooldown would not stop it)."""
    from outreach.metrics.health import Action, domain_verdict

    window = thresholds.window_days
    cooldown_days = thresholds.block_cooldown_days
    sent: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    hard: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    total: dict[int, int] = defaultdict(int)
    paused: dict[int, float] = {}
    domain_pauses: dict[int, list[float]] = defaultdict(list)
    domain_until: dict[int, float] = {}
    stopped: set[int] = set()  # leads whose enrollment a bounce ended
    pending: list[tuple[float, int, int]] = []  # (arrives at, day, mailbox), in time order
    outcome = Outcome()
    delay = BOUNCE_DELAY.total_seconds()
    current_day = 0

    def figures(mailbox: int, day: int) -> tuple[int, int]:
        first = day - window + 1
        n = sum(v for d, v in sent[mailbox].items() if d >= first)
        k = sum(v for d, v in hard[mailbox].items() if d >= first)
        return n, k

    def judge(mailbox: int, day: int, at: float) -> None:
        if mailbox in paused:
            return
        n, k = figures(mailbox, day)
        if not rule(n, k):
            return
        paused[mailbox] = at
        outcome.pauses += 1
        outcome.attempts_to_pause[mailbox] = total[mailbox]
        if mailboxes is not None:
            return
        domain = stream.domains[mailbox]
        recent = [t for t in domain_pauses[domain] if t > at - window * 86400]
        recent.append(at)
        domain_pauses[domain] = recent
        if domain_until.get(domain, 0) > at:
            return
        if domain_verdict(len(recent), thresholds).action == Action.COOLDOWN:
            outcome.cooldowns += 1
            domain_until[domain] = at + cooldown_days * 86400
            domain_pauses[domain] = []

    def deliver_until(at: float) -> None:
        while pending and pending[0][0] <= at:
            arrives, day, mailbox = pending.pop(0)
            hard[mailbox][day] += 1
            judge(mailbox, day, arrives)

    for attempt in stream.attempts:
        mailbox = attempt.mailbox
        if mailboxes is not None and mailbox not in mailboxes:
            continue
        deliver_until(attempt.at)
        if attempt.day != current_day:
            # A new pool day: the window slid; the periodic pass judges every mailbox.
            current_day = attempt.day
            for m in list(hard):
                judge(m, current_day, attempt.at)
        if mailbox in paused or domain_until.get(stream.domains[mailbox], 0) > attempt.at:
            continue
        if attempt.lead and attempt.lead in stopped:
            continue
        sent[mailbox][attempt.day] += 1
        total[mailbox] += 1
        if attempt.step and bounced(attempt.recipient, attempt.step):
            stopped.add(attempt.lead)
            pending.append((attempt.at + delay, attempt.day, mailbox))
    deliver_until(float("inf"))
    for mailbox in mailboxes or ():
        outcome.attempts_to_pause.setdefault(mailbox, None)
    return outcome


# -- figures -----------------------------------------------------------------------------------


def false_pauses(
    stream: Stream, thresholds: Any, rules: dict[str, Rule], seeds: int
) -> dict[str, Any]:
    mailbox_months = len(stream.domains) * stream.days / 30
    totals: dict[tuple[float, str], list[int]] = defaultdict(lambda: [0, 0])
    for seed in range(1, seeds + 1):
        draws = Draws(stream, seed)
        for rate in FALSE_PAUSE_RATES:
            for name, rule in rules.items():
                result = replay(stream, draws.per_lead(rate), rule, thresholds)
                totals[(rate, name)][0] += result.pauses
                totals[(rate, name)][1] += result.cooldowns
    out: dict[str, Any] = {}
    for rate in FALSE_PAUSE_RATES:
        row: dict[str, Any] = {}
        for name in rules:
            pauses, cooldowns = totals[(rate, name)]
            row[name] = {
                "pauses_per_mailbox_month": round(pauses / (mailbox_months * seeds), 5),
                "domain_cooldowns": cooldowns,
                "domain_cooldowns_per_run": round(cooldowns / seeds, 4),
            }
        out[f"{rate:.3f}"] = row
    return out


def detection(
    stream: Stream, thresholds: Any, rules: dict[str, Rule], seeds: int, mode: str
) -> dict[str, Any]:
    boxes = set(stream.from_day_one)
    found: dict[tuple[float, str], list[float]] = defaultdict(list)
    for seed in range(1, seeds + 1):
        draws = Draws(stream, seed)
        for rate in DETECTION:
            for name, rule in rules.items():
                bounced = getattr(draws, mode)(rate)
                result = replay(stream, bounced, rule, thresholds, mailboxes=boxes)
                found[(rate, name)].extend(
                    float("inf") if n is None else n for n in result.attempts_to_pause.values()
                )
    out: dict[str, Any] = {}
    for rate, within in DETECTION.items():
        row: dict[str, Any] = {"within": within}
        for name in rules:
            counts = sorted(found[(rate, name)])
            finite = [c for c in counts if c != float("inf")]
            median = statistics.median(counts)
            p95 = counts[min(len(counts) - 1, int(0.95 * len(counts)))]
            row[name] = {
                "runs": len(counts),
                # None: not paused within the simulated month in that share of the runs.
                "median_attempts": median if median != float("inf") else None,
                "p95_attempts": p95 if p95 != float("inf") else None,
                "share_within": round(sum(c <= within for c in counts) / len(counts), 4),
                "never_paused": len(counts) - len(finite),
            }
        out[f"{rate:.2f}"] = row
    return out


def ratios(false: dict[str, Any], caught: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for rate, row in false.items():
        old = row["ratio_rule"]["pauses_per_mailbox_month"]
        new = row["evidence_rule"]["pauses_per_mailbox_month"]
        out[f"false_pauses_{rate}_ratio_to_old_rule"] = round(new / old, 4) if old else None
    for mode, rows in caught.items():
        for rate, row in rows.items():
            old = row["ratio_rule"]["share_within"]
            new = row["evidence_rule"]["share_within"]
            key = f"detection_{mode}_{rate}_share_within_ratio_to_old_rule"
            out[key] = round(new / old, 3) if old else None
    return out


def table(result: dict[str, Any]) -> str:
    lines = [
        f"traffic: {result['stream']['attempts']} attempts from {result['stream']['mailboxes']} "
        f"mailboxes over {result['stream']['days']} simulated days "
        f"(simulated in {result['stream']['simulate_seconds']} s); {result['seeds']} seeds",
        "",
        "false pauses   rule           pauses/mailbox-month   domain cooldowns (per run)",
    ]
    for rate, row in result["false_pauses"].items():
        for name in ("evidence_rule", "ratio_rule"):
            r = row[name]
            lines.append(
                f"  {float(rate):5.1%}        {name:<14} {r['pauses_per_mailbox_month']:>10.4f}"
                f"             {r['domain_cooldowns']:>5} ({r['domain_cooldowns_per_run']})"
            )
    for mode, rows in result["detection"].items():
        lines += ["", f"detection {mode:<10} rule           median   p95    paused within   never"]
        for rate, row in rows.items():
            for name in ("evidence_rule", "ratio_rule"):
                r = row[name]
                lines.append(
                    f"  {float(rate):4.0%}               {name:<14} {r['median_attempts']!s:>6} "
                    f"{r['p95_attempts']!s:>6}   {r['share_within']:>6.1%} of {r['runs']} "
                    f"(≤{row['within']})   {r['never_paused']}"
                )
    lines += ["", "ratios against the old rule, same traffic and bounces:"]
    lines += [f"  {k}: {v}" for k, v in result["ratios"].items()]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--leads", type=int, default=9000)
    parser.add_argument("--config", type=Path, default=ROOT / "examples" / "pool.toml")
    parser.add_argument(
        "--campaign", type=Path, help="campaign file (default: examples/campaign.toml)"
    )
    parser.add_argument("--stream", type=Path, help="keep the simulated traffic here and reuse it")
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "outreach.settings")
    os.environ.setdefault("OUTREACH_LOG_LEVEL", "ERROR")
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    import logging

    import django

    django.setup()
    logging.disable(logging.WARNING)
    from outreach.pool import config as pool_config

    thresholds = pool_config.parse(args.config.read_text(encoding="utf-8")).thresholds
    wanted = {
        "config": str(args.config),
        "campaign": str(args.campaign),
        "days": args.days,
        "leads": args.leads,
    }
    stream = None
    if args.stream and args.stream.exists():
        stream = Stream.from_json(json.loads(args.stream.read_text()))
        if stream.options != wanted:
            stream = None
    if stream is None:
        stream = record_stream(args.config, args.campaign, args.days, args.leads)
        if args.stream:
            args.stream.write_text(json.dumps(stream.to_json()))

    rules = {"evidence_rule": real_rule(thresholds), "ratio_rule": ratio_rule(thresholds)}
    started = time.perf_counter()
    false = false_pauses(stream, thresholds, rules, args.seeds)
    caught = {
        mode: detection(stream, thresholds, rules, args.seeds, mode)
        for mode in ("per_lead", "per_attempt")
    }
    result = {
        "stream": {
            "attempts": len(stream.attempts),
            "mailboxes": len(stream.domains),
            "days": stream.days,
            "simulate_seconds": stream.simulate_seconds,
            "detection_mailboxes": len(stream.from_day_one),
        },
        "seeds": args.seeds,
        "thresholds": thresholds.to_dict(),
        "false_pauses": false,
        "detection": caught,
        "ratios": ratios(false, caught),
        "replay_seconds": round(time.perf_counter() - started, 1),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
