"""Tests for backend.indicators (TA-Lib wrappers and exact rolling windows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import talib

from backend import indicators as ind
from backend.marketdata.candles import load_candles

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "sample"


@pytest.fixture(scope="module")
def eth():
    return load_candles(SAMPLE / "ETH_BTC-5m.csv")


def test_sma_and_rolling_mean_match_pandas(eth):
    ref = pd.Series(eth.close).rolling(30).mean().to_numpy()
    for f in (ind.sma, ind.rolling_mean):
        out = f(eth.close, 30)
        assert out.dtype == np.float64 and out.shape == eth.close.shape
        assert np.isnan(out[:29]).all() and np.isfinite(out[29:]).all()
        np.testing.assert_allclose(out, ref, rtol=1e-12, equal_nan=True)


def test_rolling_mean_is_bit_exact_under_truncation(eth):
    full = ind.rolling_mean(eth.close, 30)
    for k in (1, 7, 1000, 4321):
        part = ind.rolling_mean(eth.close[k:], 30)
        assert np.array_equal(part[29:], full[k + 29 :])


def test_rolling_mean_short_and_nan_input():
    assert np.isnan(ind.rolling_mean([1.0, 2.0], 3)).all()
    out = ind.rolling_mean([1.0, np.nan, 3.0, 4.0, 5.0], 2)
    np.testing.assert_array_equal(out, [np.nan, np.nan, np.nan, 3.5, 4.5])
    np.testing.assert_array_equal(ind.rolling_mean([1, 2, 3], 1), [1.0, 2.0, 3.0])


def test_ema_recursion():
    x = np.arange(1.0, 21.0) ** 1.5
    out = ind.ema(x, 5)
    assert np.isnan(out[:4]).all()
    expect = x[:5].mean()
    assert out[4] == pytest.approx(expect)
    alpha = 2 / 6
    for i in range(5, len(x)):
        expect = alpha * x[i] + (1 - alpha) * expect
        assert out[i] == pytest.approx(expect)


def test_rsi_bounds_and_extremes(eth):
    r = ind.rsi(eth.close, 14)
    assert np.isnan(r[:14]).all()
    v = r[14:]
    assert ((v >= 0) & (v <= 100)).all()
    assert ind.rsi(np.arange(1.0, 40.0), 14)[-1] == pytest.approx(100.0)
    assert ind.rsi(np.arange(40.0, 1.0, -1), 14)[-1] == pytest.approx(0.0)


def test_true_range_and_atr(eth):
    h, lo, c = eth.high, eth.low, eth.close
    tr = ind.true_range(h, lo, c)
    assert np.isnan(tr[0])
    prev = c[:-1]
    expect = np.maximum(h[1:], prev) - np.minimum(lo[1:], prev)
    np.testing.assert_allclose(tr[1:], expect, rtol=1e-15)
    a = ind.atr(h, lo, c, 14)
    assert np.isnan(a[:14]).all() and (a[14:] > 0).all()
    np.testing.assert_array_equal(a, talib.ATR(h, lo, c, timeperiod=14))
    s = ind.atr_sma(h, lo, c, 14)
    assert np.isnan(s[:14]).all() and (s[14:] > 0).all()
    np.testing.assert_allclose(s[14:], pd.Series(tr).rolling(14).mean().to_numpy()[14:], rtol=1e-12)


def test_roc_is_percent_change(eth):
    r = ind.roc(eth.close, 12)
    assert np.isnan(r[:12]).all()
    expect = (eth.close[12:] / eth.close[:-12] - 1) * 100
    np.testing.assert_allclose(r[12:], expect, rtol=1e-12)
    assert ind.momentum is ind.roc
    np.testing.assert_allclose(ind.roc([100.0, 101.0, 99.0], 1)[1:], [1.0, -1.980198019801980])


def test_volume_sma(eth):
    out = ind.volume_sma(eth.volume, 20)
    np.testing.assert_allclose(
        out, pd.Series(eth.volume).rolling(20).mean().to_numpy(), rtol=1e-12, equal_nan=True
    )


def test_input_conversion_and_validation():
    out = ind.sma([1, 2, 3, 4], 2)  # ints and lists are converted
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out[1:], [1.5, 2.5, 3.5])
    with pytest.raises(ValueError, match="1-D"):
        ind.sma(np.ones((3, 3)), 2)
    with pytest.raises(ValueError, match="period"):
        ind.rolling_mean(np.ones(5), 0)
    with pytest.raises(ValueError, match="period"):
        ind.sma(np.ones(5), 2.5)


def test_lag():
    np.testing.assert_array_equal(ind.lag([1.0, 2.0, 3.0]), [np.nan, 1.0, 2.0])
    np.testing.assert_array_equal(ind.lag([1.0, 2.0, 3.0], 2), [np.nan, np.nan, 1.0])
    np.testing.assert_array_equal(ind.lag([1.0, 2.0], 0), [1.0, 2.0])
    assert np.isnan(ind.lag([1.0], 3)).all()
    assert ind.lag([]).shape == (0,)
