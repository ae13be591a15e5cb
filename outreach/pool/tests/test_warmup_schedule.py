from hypothesis import given
from hypothesis import strategies as st

from outreach.pool.policy import WarmupSchedule, warmup_cap

SEED = WarmupSchedule()


def test_it_ramps_five_to_ten_in_week_one() -> None:
    assert [warmup_cap(d, SEED, target=40) for d in range(1, 8)] == [5, 6, 7, 8, 9, 10, 10]


def test_it_grows_twenty_percent_a_day_rounded_up_from_week_two() -> None:
    # 10 → 12 → 14.4↑15 → 18 → 21.6↑22 → 26.4↑27 → 32.4↑33 → 39.6↑40 (target)
    assert [warmup_cap(d, SEED, target=40) for d in range(8, 16)] == [
        12,
        15,
        18,
        22,
        27,
        33,
        40,
        40,
    ]


def test_it_never_allows_anything_before_day_one_or_without_target() -> None:
    assert warmup_cap(0, SEED, target=40) == 0
    assert warmup_cap(5, SEED, target=0) == 0


@given(st.integers(min_value=1, max_value=400), st.integers(min_value=1, max_value=200))
def test_it_is_monotonic_and_bounded_by_target(day: int, target: int) -> None:
    today = warmup_cap(day, SEED, target=target)
    assert 0 < today <= target
    assert warmup_cap(day + 1, SEED, target=target) >= today
