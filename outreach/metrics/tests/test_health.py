"""The health rules as pure functions: figures and thresholds in, a verdict out."""

from __future__ import annotations

import pytest

from outreach.metrics.figures import Figures
from outreach.metrics.health import (
    Action,
    domain_verdict,
    mailbox_verdict,
)
from outreach.pool.policy import Thresholds

SEED = Thresholds()
STRICT = Thresholds.from_dict({"preset": "strict"})


def test_it_ignores_bounces_until_enough_attempts_are_in_the_window() -> None:
    assert mailbox_verdict(Figures(sent=19, bounced_hard=5), SEED).action == Action.NONE


def test_it_does_not_read_two_bounces_in_25_attempts_as_eight_percent() -> None:
    # Two in 25 happen to a healthy 1% mailbox about once in forty windows.
    assert mailbox_verdict(Figures(sent=25, bounced_hard=2), SEED).action == Action.NONE
    assert mailbox_verdict(Figures(sent=25, bounced_hard=3), SEED).action == Action.PAUSE


def test_it_pauses_when_the_evidence_puts_the_rate_above_five_percent() -> None:
    assert mailbox_verdict(Figures(sent=100, bounced_hard=4), SEED).action == Action.NONE
    pause = mailbox_verdict(Figures(sent=100, bounced_hard=5), SEED)
    assert (pause.action, pause.rule) == (Action.PAUSE, "bounce_rate")
    assert pause.figures["bounce_rate"] == 0.05
    assert pause.figures["attempts"] == 100
    # The figures say how strong the evidence was, and what was needed.
    assert pause.figures["evidence_ratio"] >= pause.figures["evidence_needed"] == 40
    assert "5 of 100 attempts" in pause.reason


def test_a_pause_below_the_rate_read_says_how_strong_its_evidence_was() -> None:
    # 7 of 176 is 4.0%, yet far likelier at 5% than at the 1% baseline: the reason says so,
    # or "4.0%: the rate is above 5.0%" reads as a contradiction.
    pause = mailbox_verdict(Figures(sent=176, bounced_hard=7), SEED)
    assert pause.action == Action.PAUSE
    assert pause.reason == (
        "hard bounces 7 of 176 attempts (4.0%): the rate is above 5.0% on the evidence "
        "(73 times likelier at 5.0% than at the 1.0% baseline)"
    )
    warning = mailbox_verdict(Figures(sent=200, bounced_hard=7), SEED)
    assert "times likelier at 3.0% than at the 1.0% baseline) (pause above 5.0%)" in (
        warning.reason
    )


def test_it_warns_when_the_evidence_puts_the_rate_above_three_percent() -> None:
    assert mailbox_verdict(Figures(sent=200, bounced_hard=6), SEED).action == Action.NONE
    warning = mailbox_verdict(Figures(sent=200, bounced_hard=7), SEED)
    assert (warning.action, warning.rule) == (Action.WARN, "bounce_warning")
    assert mailbox_verdict(Figures(sent=200, bounced_hard=8), SEED).action == Action.PAUSE


def test_it_counts_refusals_at_send_time_as_attempts_that_bounced() -> None:
    refused = Figures(refused=20, bounced_hard=20)
    assert refused.attempts == 20 and refused.bounce_rate == 1.0
    verdict = mailbox_verdict(refused, SEED)
    assert (verdict.action, verdict.rule) == (Action.PAUSE, "bounce_rate")
    assert "cannot deliver" in verdict.reason
    assert verdict.figures["refused"] == 20
    # Refusals also make up the minimum sample.
    mixed = Figures(sent=10, refused=10, bounced_hard=10)
    assert mailbox_verdict(mixed, SEED).action == Action.PAUSE
    assert mailbox_verdict(Figures(sent=10, bounced_hard=10), SEED).action == Action.NONE


def test_it_pauses_at_two_percent_with_the_strict_preset() -> None:
    assert mailbox_verdict(Figures(sent=100, bounced_hard=4), STRICT).action == Action.PAUSE
    assert mailbox_verdict(Figures(sent=100, bounced_hard=3), STRICT).action == Action.NONE
    assert mailbox_verdict(Figures(sent=100, bounced_hard=4), SEED).action == Action.NONE


def test_it_refuses_thresholds_whose_bounces_cannot_be_weighed() -> None:
    with pytest.raises(ValueError, match="bounce_baseline_rate"):
        Thresholds.from_dict({"bounce_baseline_rate": 0.03})
    with pytest.raises(ValueError, match="bounce_evidence"):
        Thresholds.from_dict({"bounce_evidence": 1})
    # Thresholds stored before the baseline existed still load: it defaults below them.
    assert Thresholds.from_dict({"bounce_warning_rate": 0.01}).bounce_baseline_rate == 0.005


def test_it_pauses_on_any_complaint_whatever_the_volume() -> None:
    verdict = mailbox_verdict(Figures(sent=1, complained=1), SEED)
    assert (verdict.action, verdict.rule) == (Action.PAUSE, "complaint")


def test_it_puts_a_blocked_mailbox_in_cooldown_before_anything_but_a_complaint() -> None:
    verdict = mailbox_verdict(Figures(sent=50, bounced_hard=10, blocked=1), SEED)
    assert (verdict.action, verdict.rule) == (Action.COOLDOWN, "block")
    assert verdict.figures["cooldown_days"] == 14
    # A complaint needs a person: it pauses, even beside a block.
    verdict = mailbox_verdict(Figures(sent=50, complained=1, blocked=1), SEED)
    assert (verdict.action, verdict.rule) == (Action.PAUSE, "complaint")


def test_it_pauses_on_authentication_failure_and_on_a_failure_streak() -> None:
    assert mailbox_verdict(Figures(), SEED, auth_failed=True).rule == "auth_failed"
    assert mailbox_verdict(Figures(), SEED, failure_streak=9).action == Action.NONE
    assert mailbox_verdict(Figures(), SEED, failure_streak=10).rule == "failure_streak"


def test_it_cools_a_domain_down_after_repeated_mailbox_pauses_or_a_listing() -> None:
    assert domain_verdict(1, SEED).action == Action.NONE
    assert domain_verdict(2, SEED).action == Action.COOLDOWN
    listed = domain_verdict(0, SEED, blocklisted=["dbl.spamhaus.org"])
    assert (listed.action, listed.rule) == (Action.COOLDOWN, "blocklist")
