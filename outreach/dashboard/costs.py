"""The overview's month cost against the budget, from the metrics app's rollups."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from outreach.dashboard.queries import pool_day
from outreach.metrics.cost import month_cost as metrics_month_cost
from outreach.pool.models import Domain, PoolSettings


@dataclass(frozen=True)
class Cost:
    """Month-to-date cost and the month's projection, as the overview shows them."""

    sends: int
    sending_cost: Decimal
    domains_cost: Decimal
    month_to_date: Decimal
    projection: Decimal
    budget: Decimal | None

    @property
    def over_budget(self) -> bool:
        return self.budget is not None and self.projection > self.budget


def month_cost(pool: PoolSettings, domains: Iterable[Domain]) -> Cost:
    """The metrics app's month cost (from its rollups, with the configured budget)."""
    m = metrics_month_cost(pool_day(pool))
    return Cost(
        sends=m.sends,
        sending_cost=m.send_cost,
        domains_cost=m.domain_cost,
        month_to_date=m.total,
        projection=m.projection,
        budget=m.budget,
    )
