"""The collector during a batch job: what is alive on entry is left alone, garbage is not."""

from __future__ import annotations

import gc
import weakref

import pytest

from outreach.lib import heap


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> weakref.ref[_Node]:
    """A reference cycle nothing else holds: only the cyclic collector frees it."""
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_it_leaves_out_what_is_alive_on_entry_and_collects_young_less_often() -> None:
    kept = _Node()
    with heap.batch_job(young_threshold=12_345):
        assert gc.get_threshold()[0] == 12_345
        assert gc.get_freeze_count() > 0
        assert not any(o is kept for o in gc.get_objects())


def test_it_still_collects_the_cycles_the_block_makes() -> None:
    with heap.batch_job():
        made = _cycle()
        gc.collect()
        assert made() is None


def test_it_puts_the_collector_back_after_an_error() -> None:
    before = gc.get_threshold()
    kept = _Node()
    with pytest.raises(RuntimeError), heap.batch_job(young_threshold=54_321):
        raise RuntimeError("the job failed")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
    assert any(o is kept for o in gc.get_objects())
