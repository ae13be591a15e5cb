"""Health rules: pure decisions over figures and thresholds (docs/rules.md, Health thresholds).

Nothing here touches the database. :mod:`outreach.alerts.rules` gathers the figures, calls
these, and applies the verdict through :mod:`outreach.pool.states`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from outreach.metrics.figures import Figures
from outreach.pool.policy import Thresholds, bounce_evidence, bounce_rate_above


class Action(StrEnum):
    NONE = "none"
    WARN = "warn"
    PAUSE = "pause"
    COOLDOWN = "cooldown"


@dataclass(frozen=True)
class Verdict:
    action: Action
    # Short rule name, recorded as the actor "rule:<rule>" and used in alert keys.
    rule: str = ""
    reason: str = ""
    figures: dict[str, Any] = field(default_factory=dict)


OK = Verdict(Action.NONE)


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def mailbox_verdict(
    figures: Figures,
    thresholds: Thresholds,
    *,
    failure_streak: int = 0,
    auth_failed: bool = False,
) -> Verdict:
    """What should happen to a sending mailbox given its recent figures.

    In order of severity, the first that applies:

    1. complaints ≥ ``complaint_pause_count`` → pause (a person must look, even when a block
       came with it);
    2. any block (policy rejection, spam-folder placement) → cooldown for
       ``block_cooldown_days``, then re-warm;
    3. hard-bounce rate above ``bounce_pause_rate`` on the evidence (:func:`bounce_rate_above`,
       over attempts: sent + refused) → pause;
    4. an authentication failure, or ``failure_streak_pause`` failed calls in a row → pause;
    5. hard-bounce rate above ``bounce_warning_rate`` on the evidence → warning;
    6. complaint rate > ``complaint_warning_rate`` once ``min_sends`` attempts → warning.
    """
    t = thresholds
    facts: dict[str, Any] = {
        **figures.to_dict(),
        "window_days": t.window_days,
        "min_sends": t.min_sends,
        "preset": t.preset,
    }
    return (
        _out_of_service(figures, t, facts)
        or _failing(figures, t, facts, failure_streak, auth_failed)
        or _warning(figures, t, facts)
        or OK
    )


def _out_of_service(figures: Figures, t: Thresholds, facts: dict[str, Any]) -> Verdict | None:
    """Rules 1-3: what the recipients and their servers said (complaints, blocks, bounces)."""
    if figures.complained >= t.complaint_pause_count:
        return Verdict(
            Action.PAUSE,
            "complaint",
            f"{figures.complained} spam complaint(s) in {t.window_days} days",
            facts,
        )
    if figures.blocked > 0:
        return Verdict(
            Action.COOLDOWN,
            "block",
            f"{figures.blocked} block(s) in {t.window_days} days: cooldown "
            f"{t.block_cooldown_days} days",
            {**facts, "cooldown_days": t.block_cooldown_days},
        )
    if bounce_rate_above(figures.bounced_hard, figures.attempts, t.bounce_pause_rate, t):
        return Verdict(
            Action.PAUSE,
            "bounce_rate",
            f"{_bounces(figures)}: the rate is above {_pct(t.bounce_pause_rate)} on the "
            f"evidence{_likelier(figures, t.bounce_pause_rate, t)}{_undeliverable(figures)}",
            _with_evidence(facts, figures, t.bounce_pause_rate, t),
        )
    return None


def _failing(
    figures: Figures,
    t: Thresholds,
    facts: dict[str, Any],
    failure_streak: int,
    auth_failed: bool,
) -> Verdict | None:
    """Rule 4: the provider itself refuses the mailbox (credentials, failed calls in a row)."""
    if auth_failed:
        return Verdict(Action.PAUSE, "auth_failed", "provider rejected the credentials", facts)
    if failure_streak >= t.failure_streak_pause:
        return Verdict(
            Action.PAUSE,
            "failure_streak",
            f"{failure_streak} failed sends in a row",
            {**facts, "failure_streak": failure_streak},
        )
    return None


def _warning(figures: Figures, t: Thresholds, facts: dict[str, Any]) -> Verdict | None:
    """Rules 5-6: rates worth a look, not yet a pause."""
    if bounce_rate_above(figures.bounced_hard, figures.attempts, t.bounce_warning_rate, t):
        return Verdict(
            Action.WARN,
            "bounce_warning",
            f"{_bounces(figures)}: the rate is above {_pct(t.bounce_warning_rate)} on the "
            f"evidence{_likelier(figures, t.bounce_warning_rate, t)} (pause above "
            f"{_pct(t.bounce_pause_rate)})",
            _with_evidence(facts, figures, t.bounce_warning_rate, t),
        )
    if figures.attempts >= t.min_sends and figures.complaint_rate > t.complaint_warning_rate:
        return Verdict(
            Action.WARN,
            "complaint_warning",
            f"complaints {_pct(figures.complaint_rate)} of {figures.attempts} attempts",
            facts,
        )
    return None


def _bounces(figures: Figures) -> str:
    refused = f", {figures.refused} refused at send time" if figures.refused else ""
    return (
        f"hard bounces {figures.bounced_hard} of {figures.attempts} attempts "
        f"({_pct(figures.bounce_rate)}{refused})"
    )


def _undeliverable(figures: Figures) -> str:
    # Every attempt refused: not a list problem to wait out, the mailbox cannot deliver.
    return ": no recipient accepted a message, it cannot deliver" if figures.sent == 0 else ""


def _likelier(figures: Figures, rate: float, t: Thresholds) -> str:
    # What "above the rate on the evidence" means, said where an operator reads it: a count
    # of 4% can be evidence for 5% against the baseline (docs/health.md).
    ratio = bounce_evidence(figures.bounced_hard, figures.attempts, rate, t.bounce_baseline_rate)
    return (
        f" ({min(ratio, 1e9):,.0f} times likelier at {_pct(rate)} than at the "
        f"{_pct(t.bounce_baseline_rate)} baseline)"
    )


def _with_evidence(
    facts: dict[str, Any], figures: Figures, rate: float, t: Thresholds
) -> dict[str, Any]:
    ratio = bounce_evidence(figures.bounced_hard, figures.attempts, rate, t.bounce_baseline_rate)
    return {
        **facts,
        "evidence_ratio": round(min(ratio, 1e9), 1),
        "evidence_needed": t.bounce_evidence,
        "baseline_rate": t.bounce_baseline_rate,
    }


def domain_verdict(
    mailbox_pauses: int, thresholds: Thresholds, *, blocklisted: list[str] | None = None
) -> Verdict:
    """A domain goes into cooldown as a whole when its mailboxes keep getting paused or put in
    cooldown (``domain_pauses_for_cooldown`` within the window), or when it is on a blocklist."""
    t = thresholds
    facts: dict[str, Any] = {"mailbox_pauses": mailbox_pauses, "window_days": t.window_days}
    if blocklisted:
        return Verdict(
            Action.COOLDOWN,
            "blocklist",
            f"listed on {', '.join(blocklisted)}",
            {**facts, "blocklists": blocklisted, "cooldown_days": t.block_cooldown_days},
        )
    if mailbox_pauses >= t.domain_pauses_for_cooldown:
        return Verdict(
            Action.COOLDOWN,
            "domain_pauses",
            f"{mailbox_pauses} mailbox pauses in {t.window_days} days",
            {**facts, "cooldown_days": t.block_cooldown_days},
        )
    return OK
