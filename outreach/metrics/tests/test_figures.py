"""What a mailbox's rates are read from."""

from __future__ import annotations

from dataclasses import asdict

from hypothesis import given
from hypothesis import strategies as st

from outreach.metrics.figures import COUNTERS, RATE_COUNTERS, Figures

_COUNTS = st.fixed_dictionaries({name: st.integers(0, 10_000) for name in COUNTERS})


@given(_COUNTS)
def test_the_rates_need_no_counter_but_the_rate_counters(counts: dict[str, int]) -> None:
    # Routing reads only RATE_COUNTERS for every mailbox, each pass (metrics/rates.py); a
    # rate that came to use another counter would be judged on a zero there.
    full = Figures.from_mapping(counts)
    read = Figures.from_mapping({name: counts[name] for name in RATE_COUNTERS})

    assert (read.attempts, read.bounce_rate, read.complaint_rate) == (
        full.attempts,
        full.bounce_rate,
        full.complaint_rate,
    )


@given(
    st.fixed_dictionaries(
        {},
        optional={
            **{name: st.one_of(st.none(), st.integers(0, 10_000)) for name in COUNTERS},
            "mailbox_id": st.integers(1, 100),
        },
    )
)
def test_a_row_of_sums_reads_as_its_counters(row: dict[str, int | None]) -> None:
    # A grouped query's row: the group's key beside the sums, None where a sum had no rows.
    figures = Figures.from_mapping(row)

    assert asdict(figures) == {name: row.get(name) or 0 for name in COUNTERS}
