"""What the pool costs this month: sends at each provider's price per 1,000, plus domains.

Domains are paid yearly; a month carries a twelfth of each active domain's price, spread evenly
over its days. The projection extends the month-to-date send cost at the month's average daily
rate so far and adds the whole month's domain share.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db.models import Sum

from outreach.lib import clock
from outreach.metrics.models import DailyRollup
from outreach.pool.models import Domain, PoolSettings, ProviderAccount

CENT = Decimal("0.01")


@dataclass(frozen=True)
class ProviderCost:
    name: str
    sends: int
    price_per_1000: Decimal
    cost: Decimal


@dataclass(frozen=True)
class MonthCost:
    day: date  # the last day counted (today)
    days_elapsed: int
    days_in_month: int
    sends: int
    send_cost: Decimal
    domain_cost: Decimal  # month to date
    total: Decimal  # month to date
    projection: Decimal  # the whole month at the current pace
    budget: Decimal | None
    providers: list[ProviderCost] = field(default_factory=list)

    @property
    def over_budget(self) -> bool:
        return self.budget is not None and self.projection > self.budget


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def month_cost(today: date | None = None) -> MonthCost:
    """Month-to-date cost up to and including ``today`` (the pool's day), and its projection."""
    day = today or clock.today(PoolSettings.load().timezone)
    first = day.replace(day=1)
    days_in_month = calendar.monthrange(day.year, day.month)[1]
    elapsed = day.day

    sends_by_provider = dict(
        DailyRollup.objects.filter(day__gte=first, day__lte=day)
        .values("provider_id")
        .annotate(n=Sum("sent"))
        .values_list("provider_id", "n")
    )
    providers = []
    for account in ProviderAccount.objects.filter(pk__in=sends_by_provider).order_by("name"):
        sends = int(sends_by_provider.get(account.pk) or 0)
        price = Decimal(account.price_per_1000)
        providers.append(ProviderCost(account.name, sends, price, price * sends / 1000))
    send_cost = sum((p.cost for p in providers), Decimal(0))

    yearly = Domain.objects.exclude(state=Domain.State.RETIRED).aggregate(s=Sum("yearly_price"))
    domain_month = Decimal(yearly["s"] or 0) / 12
    domain_to_date = domain_month * elapsed / days_in_month
    projection = send_cost / elapsed * days_in_month + domain_month
    budget = settings.OUTREACH_MONTHLY_BUDGET
    return MonthCost(
        day=day,
        days_elapsed=elapsed,
        days_in_month=days_in_month,
        sends=sum(p.sends for p in providers),
        send_cost=_money(send_cost),
        domain_cost=_money(domain_to_date),
        total=_money(send_cost + domain_to_date),
        projection=_money(projection),
        budget=budget,
        providers=[
            ProviderCost(p.name, p.sends, p.price_per_1000, _money(p.cost)) for p in providers
        ],
    )
