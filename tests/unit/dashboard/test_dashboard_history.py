"""Counter histories turned into messages per second (agents, channels)."""

from __future__ import annotations

import pytest

from dashboard.history import CounterHistory


def test_rate_over_the_window() -> None:
    h = CounterHistory(window_s=5.0)
    assert h.rate("a") is None
    h.add(100.0, {"a": 0})
    assert h.rate("a") is None  # one sample: no rate yet
    for t in range(1, 11):
        h.add(100.0 + t, {"a": 10 * t})
    assert h.rate("a") == pytest.approx(10.0)
    h.add(111.0, {"a": 100})  # nothing new for a second
    assert h.rate("a") == pytest.approx(40 / 5)


def test_a_counter_reset_restarts_that_key_only() -> None:
    h = CounterHistory(window_s=10.0)
    h.add(1.0, {"a": 500, "b": 0})
    h.add(2.0, {"a": 600, "b": 5})
    h.add(3.0, {"a": 3, "b": 10})  # a restarted: counts from zero again
    assert h.rate("a") is None  # only one sample since the reset
    assert h.rate("b") == pytest.approx(5.0)
    h.add(4.0, {"a": 13, "b": 15})
    assert h.rate("a") == pytest.approx(10.0)
    rows = [(t, k, r) for t, k, r in h.series() if k == "a"]
    assert rows == [(2.0, "a", 100.0), (4.0, "a", 10.0)]  # never a negative rate


def test_old_or_repeated_samples_are_ignored_and_the_history_is_capped() -> None:
    h = CounterHistory(max_samples=3)
    h.add(5.0, {"a": 1})
    h.add(5.0, {"a": 99})
    h.add(4.0, {"a": 99})
    assert len(h.samples) == 1
    for t in range(6, 12):
        h.add(float(t), {"a": t})
    assert [t for t, _ in h.samples] == [9.0, 10.0, 11.0]
