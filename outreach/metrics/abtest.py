"""A/B verdicts: a variant is called the winner only when its reply rate differs from every
other variant's by more than chance would explain.

The test is the two-sided two-proportion z-test (pooled standard error) of the leader against
each other variant, at a significance level of 5% divided by the number of comparisons
(Bonferroni), and only once each variant has at least ``MIN_SENT`` sends and the pooled
counts give the normal approximation room (at least 5 replies and 5 non-replies expected in
each arm); otherwise there is no verdict yet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

TEST_NAME = "two-proportion z-test (two-sided, Bonferroni-adjusted)"
ALPHA = 0.05
MIN_SENT = 30


@dataclass(frozen=True)
class Arm:
    label: str
    sent: int
    replied: int

    @property
    def rate(self) -> float:
        return self.replied / self.sent if self.sent else 0.0


@dataclass(frozen=True)
class Verdict:
    winner: str | None
    # The largest p-value of the leader against the others (None: not testable yet).
    p_value: float | None
    text: str
    test: str = TEST_NAME


def two_proportion_p(a: Arm, b: Arm) -> float | None:
    """Two-sided p-value that ``a`` and ``b`` share a reply rate; None when the normal
    approximation does not hold."""
    n1, n2 = a.sent, b.sent
    if n1 == 0 or n2 == 0:
        return None
    pooled = (a.replied + b.replied) / (n1 + n2)
    for n in (n1, n2):
        if n * pooled < 5 or n * (1 - pooled) < 5:
            return None
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return None
    z = (a.rate - b.rate) / se
    return math.erfc(abs(z) / math.sqrt(2))


def verdict(arms: Sequence[Arm]) -> Verdict:
    """Pure: the winner among ``arms`` by reply rate, or why there is none."""
    if len(arms) < 2:
        return Verdict(None, None, "one variant: nothing to compare")
    if any(a.sent < MIN_SENT for a in arms):
        return Verdict(None, None, f"no verdict yet: each variant needs {MIN_SENT} sends")
    leader = max(arms, key=lambda a: a.rate)
    others = [a for a in arms if a is not leader]
    alpha = ALPHA / len(others)
    p_values = [two_proportion_p(leader, o) for o in others]
    if any(p is None for p in p_values):
        return Verdict(None, None, "no verdict yet: too few replies for the test")
    worst = max(p for p in p_values if p is not None)
    if worst < alpha:
        return Verdict(
            leader.label,
            worst,
            f"variant {leader.label} wins ({leader.rate:.1%} replies, "
            f"p = {worst:.3f} < {alpha:.3f})",
        )
    return Verdict(None, worst, f"no significant difference (p = {worst:.3f} ≥ {alpha:.3f})")
