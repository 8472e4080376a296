"""Memoised indicators: same bits, computed once per known array, only inside the block."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from backend import indicators as ind
from backend.indicator_memo import IndicatorMemo, memoised


@pytest.fixture()
def close() -> np.ndarray:
    return 1.0 + np.random.default_rng(0).normal(0, 0.01, 500).cumsum()


def test_a_known_array_is_computed_once_and_gives_the_same_bits(close: np.ndarray) -> None:
    plain = ind.rolling_mean(close, 20)
    memo = IndicatorMemo([close])
    with memoised(memo):
        first = ind.rolling_mean(close, 20)
        second = ind.rolling_mean(close, 20)
        other = ind.rolling_mean(close, 21)
    assert np.array_equal(first, plain, equal_nan=True)
    assert np.array_equal(second, first, equal_nan=True)
    assert np.array_equal(other, ind.rolling_mean(close, 21), equal_nan=True)
    assert memo.hits == 1 and memo.misses == 2  # the rolling sums of 20 (twice) and 21


def test_results_are_read_only_and_known_as_inputs(close: np.ndarray) -> None:
    high, low = close * 1.01, close * 0.99
    memo = IndicatorMemo([high, low, close])
    with memoised(memo):
        atr = ind.atr_sma(high, low, close, 14)
        again = ind.atr_sma(high, low, close, 14)
        tr = ind.true_range(high, low, close)
    assert np.array_equal(atr, again, equal_nan=True)
    assert memo.hits == 3  # the true range and its rolling sum, then the true range
    with pytest.raises(ValueError, match="read-only"):
        tr[0] = 1.0


def test_unknown_arrays_and_calls_outside_the_block_are_not_memoised(
        close: np.ndarray) -> None:
    memo = IndicatorMemo([close])
    with memoised(memo):
        ind.rolling_mean(close * 2.0, 5)  # a new array: not memoised
    assert memo.hits == memo.misses == 0
    ind.rolling_mean(close, 5)
    assert memo.misses == 0
    out = ind.rolling_sum(close, 5)
    out[10] = 0.0  # outside the block results are the caller's to change


def test_each_thread_sees_its_own_block(close: np.ndarray) -> None:
    memo = IndicatorMemo([close])
    seen = []

    def other() -> None:
        ind.rolling_mean(close, 7)
        seen.append(memo.misses)

    with memoised(memo):
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert seen == [0]
