"""Month-to-date cost and the month's projection, from rollups and configured prices."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from outreach.alerts.tests.conftest import Pool
from outreach.metrics.cost import month_cost
from outreach.metrics.models import DailyRollup
from outreach.pool.models import Domain
from outreach.testing import make_provider


def test_it_prices_sends_per_provider_and_spreads_domains_over_the_month(
    pool: Pool, settings: Any
) -> None:
    settings.OUTREACH_MONTHLY_BUDGET = Decimal("20")
    Domain.objects.update(yearly_price=Decimal("12.00"))  # two domains: $2 a month
    postmark = make_provider("postmark", kind="postmark", price_per_1000="1.25")
    box = pool.mailboxes[0]
    for day, provider, sent in [
        (date(2026, 11, 1), pool.provider.pk, 600),
        (date(2026, 11, 28), pool.provider.pk, 400),
        (date(2026, 11, 28), postmark.pk, 200),
        (date(2026, 10, 31), pool.provider.pk, 9999),  # last month
    ]:
        DailyRollup.objects.create(
            day=day, mailbox_id=box.pk, domain_id=box.domain_id, provider_id=provider, sent=sent
        )

    cost = month_cost(date(2026, 11, 28))

    assert cost.sends == 1200
    by_name = {p.name: p.cost for p in cost.providers}
    assert by_name == {"ses-main": Decimal("0.10"), "postmark": Decimal("0.25")}
    assert cost.send_cost == Decimal("0.35")
    assert cost.domain_cost == Decimal("1.87")  # $2 x 28/30
    assert cost.total == Decimal("2.22")
    assert cost.projection == Decimal("2.38")  # 0.35/28 x 30 + 2
    assert not cost.over_budget


def test_it_flags_a_projection_over_budget(pool: Pool, settings: Any) -> None:
    settings.OUTREACH_MONTHLY_BUDGET = Decimal("1")
    Domain.objects.update(yearly_price=Decimal("24.00"))
    assert month_cost(date(2026, 11, 1)).over_budget
    settings.OUTREACH_MONTHLY_BUDGET = None
    assert not month_cost(date(2026, 11, 1)).over_budget
