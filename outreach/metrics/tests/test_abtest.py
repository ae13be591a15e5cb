"""A/B verdicts: a winner only when the difference is significant (two-proportion z-test)."""

from __future__ import annotations

import pytest

from outreach.metrics.abtest import Arm, two_proportion_p, verdict


def test_it_matches_the_textbook_p_value() -> None:
    # 45/300 against 25/300: pooled 11.7%, z = 2.54, two-sided p = 0.011.
    p = two_proportion_p(Arm("A", 300, 45), Arm("B", 300, 25))
    assert p == pytest.approx(0.011, abs=5e-4)


def test_it_calls_a_winner_only_when_the_difference_is_significant() -> None:
    clear = verdict([Arm("A", 300, 45), Arm("B", 300, 25)])
    assert clear.winner == "A" and "two-proportion z-test" in clear.test
    close = verdict([Arm("A", 300, 33), Arm("B", 300, 27)])
    assert close.winner is None and close.p_value is not None and close.p_value > 0.05


def test_it_waits_for_enough_sends_and_replies() -> None:
    assert verdict([Arm("A", 20, 10), Arm("B", 20, 0)]).winner is None
    assert "too few replies" in verdict([Arm("A", 40, 2), Arm("B", 40, 0)]).text
    assert verdict([Arm("A", 300, 45)]).winner is None


def test_it_adjusts_for_more_variants() -> None:
    # p = 0.027 against each other arm: significant for two variants, not for three (0.025).
    two = verdict([Arm("A", 400, 56), Arm("B", 400, 36)])
    three = verdict([Arm("A", 400, 56), Arm("B", 400, 36), Arm("C", 400, 36)])
    assert two.winner == "A" and three.winner is None
