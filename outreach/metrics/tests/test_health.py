"""The health rules as pure functions: figures and thresholds in, a verdict out."""

from __future__ import annotations

from outreach.metrics.figures import Figures
from outreach.metrics.health import (
    Action,
    domain_verdict,
    mailbox_verdict,
    may_graduate,
    routing_share,
)
from outreach.pool.policy import Thresholds

SEED = Thresholds()
STRICT = Thresholds.from_dict({"preset": "strict"})


def test_it_ignores_bounces_until_enough_sends_are_in_the_window() -> None:
    assert mailbox_verdict(Figures(sent=19, bounced_hard=5), SEED).action == Action.NONE


def test_it_warns_above_three_percent_and_pauses_above_five() -> None:
    assert mailbox_verdict(Figures(sent=100, bounced_hard=3), SEED).action == Action.NONE
    warning = mailbox_verdict(Figures(sent=100, bounced_hard=4), SEED)
    assert (warning.action, warning.rule) == (Action.WARN, "bounce_warning")
    assert mailbox_verdict(Figures(sent=100, bounced_hard=5), SEED).action == Action.WARN
    pause = mailbox_verdict(Figures(sent=100, bounced_hard=6), SEED)
    assert (pause.action, pause.rule) == (Action.PAUSE, "bounce_rate")
    assert pause.figures["bounce_rate"] == 0.06
    assert pause.figures["sent"] == 100


def test_it_pauses_at_two_percent_with_the_strict_preset() -> None:
    figures = Figures(sent=100, bounced_hard=3)
    assert mailbox_verdict(figures, STRICT).action == Action.PAUSE
    assert mailbox_verdict(Figures(sent=100, bounced_hard=2), STRICT).action == Action.WARN


def test_it_pauses_on_any_complaint_whatever_the_volume() -> None:
    verdict = mailbox_verdict(Figures(sent=1, complained=1), SEED)
    assert (verdict.action, verdict.rule) == (Action.PAUSE, "complaint")


def test_it_puts_a_blocked_mailbox_in_cooldown_before_anything_else() -> None:
    verdict = mailbox_verdict(Figures(sent=50, complained=1, blocked=1), SEED)
    assert (verdict.action, verdict.rule) == (Action.COOLDOWN, "block")
    assert verdict.figures["cooldown_days"] == 14


def test_it_pauses_on_authentication_failure_and_on_a_failure_streak() -> None:
    assert mailbox_verdict(Figures(), SEED, auth_failed=True).rule == "auth_failed"
    assert mailbox_verdict(Figures(), SEED, failure_streak=9).action == Action.NONE
    assert mailbox_verdict(Figures(), SEED, failure_streak=10).rule == "failure_streak"


def test_it_cools_a_domain_down_after_repeated_mailbox_pauses_or_a_listing() -> None:
    assert domain_verdict(1, SEED).action == Action.NONE
    assert domain_verdict(2, SEED).action == Action.COOLDOWN
    listed = domain_verdict(0, SEED, blocklisted=["dbl.spamhaus.org"])
    assert (listed.action, listed.rule) == (Action.COOLDOWN, "blocklist")


def test_it_lowers_a_mailbox_routing_share_as_bounces_rise() -> None:
    assert routing_share(Figures(sent=10, bounced_hard=1), SEED) == 1.0
    assert routing_share(Figures(sent=100), SEED) == 1.0
    half = routing_share(Figures(sent=200, bounced_hard=5), SEED)
    assert 0.49 < half < 0.51
    assert routing_share(Figures(sent=100, bounced_hard=9), SEED) == 0.0


def test_it_graduates_only_a_clean_mailbox_at_its_target() -> None:
    clean = Figures(sent=200, bounced_hard=2)
    assert may_graduate(clean, SEED, reached_target=True)
    assert not may_graduate(clean, SEED, reached_target=False)
    assert not may_graduate(Figures(sent=200, complained=1), SEED, reached_target=True)
    assert not may_graduate(Figures(sent=100, bounced_hard=4), SEED, reached_target=True)
