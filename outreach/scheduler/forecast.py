"""When a campaign finishes: the one forecast the dashboard and the simulation both use."""

from __future__ import annotations

import math
from collections.abc import Collection
from datetime import date, timedelta

# How far a forecast looks ahead before it gives up (ten years: "not within sight").
HORIZON_DAYS = 3650


def finish_day(
    remaining: float, pace: float, first_day: date, window_days: Collection[int] | None = None
) -> date | None:
    """Pure: the day the last of ``remaining`` messages leaves at ``pace`` messages per sending
    day, counting ``first_day`` as the first sending day when it is one.

    Sending days are the ISO weekdays of ``window_days`` (None or empty: every day). Returns
    ``first_day`` when nothing remains, None when there is no pace or the day lies beyond
    :data:`HORIZON_DAYS`.
    """
    if remaining <= 0:
        return first_day
    if pace <= 0:
        return None
    needed = math.ceil(remaining / pace)
    sending = set(window_days or range(1, 8))
    day = first_day
    for _ in range(HORIZON_DAYS):
        if day.isoweekday() in sending:
            needed -= 1
            if needed <= 0:
                return day
        day += timedelta(days=1)
    return None
