"""The pure parts of the dashboard: judging rates, forecasting a campaign, drawing a chart."""

from __future__ import annotations

from datetime import date

from outreach.dashboard.campaign_rows import forecast_finish
from outreach.dashboard.charts import Series, bar_chart
from outreach.dashboard.pool_rows import rate_checks
from outreach.dashboard.queries import Rates
from outreach.pool.policy import Thresholds


def statuses(rates: Rates, t: Thresholds | None = None) -> dict[str, str]:
    return {c.name: c.status for c in rate_checks(rates, t or Thresholds())}


def test_it_does_not_judge_rates_below_the_minimum_sends() -> None:
    assert statuses(Rates(sent=19, bounced=5))["bounce"] == "n/a"
    assert statuses(Rates(sent=0))["delivery"] == "n/a"


def test_it_judges_the_bounce_rate_on_the_evidence_like_the_health_rules() -> None:
    assert statuses(Rates(sent=100, bounced=4))["bounce"] == "ok"  # no evidence of 3%
    assert statuses(Rates(sent=200, bounced=7))["bounce"] == "warning"
    assert statuses(Rates(sent=100, bounced=5))["bounce"] == "over"
    assert statuses(Rates(sent=25, bounced=2))["bounce"] == "ok"  # not "8%"
    strict = Thresholds.from_dict({"preset": "strict"})
    assert statuses(Rates(sent=100, bounced=4), strict)["bounce"] == "over"


def test_it_flags_any_complaint_even_below_the_minimum_sends() -> None:
    assert statuses(Rates(sent=5, complained=1))["complaint"] == "over"
    assert statuses(Rates(sent=5000, complained=0))["complaint"] == "ok"


def test_it_forecasts_completion_at_the_recent_pace() -> None:
    today = date(2026, 3, 18)
    # 700 sent last week = 100/day; 250 left: today, tomorrow, and half of the day after.
    assert forecast_finish(remaining=250, sent_last_7_days=700, daily_cap=None, today=today) == (
        date(2026, 3, 20)
    )
    assert forecast_finish(remaining=0, sent_last_7_days=0, daily_cap=None, today=today) == today
    # Not started yet: the campaign's cap gives the pace; without one there is no forecast.
    assert forecast_finish(remaining=100, sent_last_7_days=0, daily_cap=50, today=today) == (
        date(2026, 3, 19)
    )
    assert forecast_finish(remaining=100, sent_last_7_days=0, daily_cap=None, today=today) is None


def test_it_draws_a_chart_with_escaped_labels() -> None:
    svg = bar_chart(
        ["<b>1 Mar</b>", "2 Mar"],
        Series("sent", [10, 30], "bar-sent"),
        overlays=[Series("bounced", [1, 0], "bar-bounced")],
        line=40,
        line_label="cap <today>",
    )
    assert svg.count("<rect") == 3  # two bars, one non-zero overlay
    assert "<b>" not in svg and "&lt;b&gt;1 Mar&lt;/b&gt;" in svg
    assert "cap &lt;today&gt;" in svg
