"""The loop runner: units until none is left, a stop between units, then the loop's on_stop."""

from __future__ import annotations

import threading

import pytest

from outreach.lib import loop as loops


def test_it_calls_on_stop_once_after_the_last_unit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loops, "_close_db_connections", lambda: None)
    monkeypatch.setattr(loops, "heartbeat_hook", None)
    stop = threading.Event()
    calls: list[str] = []

    def handle_one() -> bool:
        calls.append("unit")
        if len(calls) == 3:
            stop.set()  # as SIGTERM would, in the middle of the third unit
        return True

    loops.run_loop(
        loops.Loop(
            "probe", handle_one, idle_seconds=0, on_stop=lambda: calls.append("stop"), stop=stop
        )
    )
    assert calls == ["unit", "unit", "unit", "stop"]


def test_a_failing_on_stop_is_logged_and_the_loop_still_ends(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(loops, "_close_db_connections", lambda: None)
    monkeypatch.setattr(loops, "heartbeat_hook", None)
    stop = threading.Event()
    stop.set()

    def broken() -> None:
        raise RuntimeError("provider connection already gone")

    loops.run_loop(loops.Loop("probe", lambda: False, on_stop=broken, stop=stop))
    assert "loop probe: stopping failed" in caplog.text


def test_a_loop_that_always_has_work_still_beats_and_ticks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(loops, "_close_db_connections", lambda: None)
    beats: list[str] = []
    monkeypatch.setattr(loops, "heartbeat_hook", lambda name, running: beats.append(name))
    stop = threading.Event()
    calls: list[str] = []

    def handle_one() -> bool:
        calls.append("unit")
        if calls.count("unit") == 3:
            stop.set()
        return True  # a backlog: there is always more

    loops.run_loop(
        loops.Loop(
            "busy",
            handle_one,
            idle_seconds=0,
            on_tick=lambda: calls.append("tick"),
            tick_seconds=0,
            stop=stop,
        )
    )
    # The pass's own tick, then one after each unit (tick_seconds=0), never in the middle
    # of one nor once the stop is asked for; the heartbeat with each (and the clean stop's).
    assert calls == ["tick", "unit", "tick", "unit", "tick", "unit"]
    assert beats == ["busy"] * 4
