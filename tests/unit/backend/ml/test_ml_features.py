"""ML features and labels: finite windows, bit-exact, no look-ahead (shipped ETH/BTC data)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from backend.marketdata.candles import Candles, load_dir
from backend.ml.features import FEATURE_NAMES, FEATURE_WARMUP, feature_matrix, rolling_std
from backend.ml.labels import forward_sign, trainable
from backend.settings import Settings


@pytest.fixture(scope="module")
def eth() -> Candles:
    return load_dir(Settings().data_dir, ["ETH/BTC"])["ETH/BTC"]


def _scrambled_after(c: Candles, t: int, seed: int) -> Candles:
    """``c`` with every bar after ``t`` replaced by different (valid) prices and volumes."""
    rng = np.random.default_rng(seed)
    n = len(c)
    k = n - t - 1
    f = rng.uniform(0.5, 2.0, size=k)
    out = {name: np.array(getattr(c, name), dtype=np.float64) for name in
           ("open", "high", "low", "close", "volume")}
    for name in ("open", "high", "low", "close"):
        out[name][t + 1:] *= f
    out["volume"][t + 1:] = rng.uniform(0, 1e5, size=k)
    return replace(c, **out)


def test_shape_names_and_warmup(eth: Candles) -> None:
    x = feature_matrix(eth)
    assert x.shape == (len(eth), len(FEATURE_NAMES))
    incomplete = ~np.isfinite(x).all(axis=1)
    assert incomplete[: FEATURE_WARMUP - 1].all()
    assert not incomplete[FEATURE_WARMUP - 1:].any()  # real data: complete after warm-up


@pytest.mark.parametrize("t", [60, 333, 1000, 2500, 4100, 5700])
def test_features_at_t_ignore_every_later_bar(eth: Candles, t: int) -> None:
    """No look-ahead: rewriting all bars after t leaves rows 0..t bit-identical."""
    x = feature_matrix(eth)
    y = feature_matrix(_scrambled_after(eth, t, seed=t))
    np.testing.assert_array_equal(y[: t + 1], x[: t + 1])
    assert not np.array_equal(y[t + 1:], x[t + 1:])  # the scramble did change later rows


@pytest.mark.parametrize("k", [1, 49, 50, 777, 3001])
def test_features_have_finite_memory_bit_for_bit(eth: Candles, k: int) -> None:
    """A truncated history gives the same rows once the warm-up is past (live == backtest)."""
    x = feature_matrix(eth)
    y = feature_matrix(eth.slice(k, None))
    np.testing.assert_array_equal(y[FEATURE_WARMUP - 1:], x[k + FEATURE_WARMUP - 1:])


def test_rolling_std_is_the_window_std_and_exact_under_truncation() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(1.0, 0.01, size=500)
    s = rolling_std(a, 20)
    assert np.isnan(s[:19]).all()
    ref = np.array([np.std(a[i - 19:i + 1]) for i in range(19, 500)])
    np.testing.assert_allclose(s[19:], ref, rtol=1e-10)
    np.testing.assert_array_equal(rolling_std(a[123:], 20)[19:], s[123 + 19:])


def test_rsi_is_cutlers_simple_mean_version() -> None:
    """Hand check: after 14 rises of 1 and falls of 0 the RSI feature is +1; a mix gives
    (G - L) / (G + L) of the simple means."""
    close = np.concatenate([np.full(36, 100.0), 100.0 + np.arange(1, 15)])  # 50 bars
    c = Candles("T/Q", np.arange(50, dtype=np.int64), close, close, close, close,
                np.ones(50))
    col = FEATURE_NAMES.index("rsi_14")
    assert feature_matrix(c)[49, col] == 1.0
    steps = np.array([1, -2, 3, 1, -1, 2, -1, 1, 1, -3, 2, 1, -1, 1], dtype=float)
    close2 = np.concatenate([np.full(36, 100.0), 100.0 + np.cumsum(steps)])
    c2 = replace(c, open=close2, high=close2, low=close2, close=close2)
    g = steps[steps > 0].sum() / 14
    lo = -steps[steps < 0].sum() / 14
    assert feature_matrix(c2)[49, col] == pytest.approx((g - lo) / (g + lo), rel=1e-12)


def test_labels_are_the_forward_sign_and_stop_at_end() -> None:
    close = np.array([1.0, 2.0, 2.0, 1.0, 3.0, 3.0])
    np.testing.assert_array_equal(forward_sign(close, 1)[:5], [1, 0, -1, 1, 0])
    assert np.isnan(forward_sign(close, 1)[5])
    lab = forward_sign(close, 2, end=4)  # only close[:4] may be used
    np.testing.assert_array_equal(lab[:2], [1, -1])
    assert np.isnan(lab[2:]).all()
    with pytest.raises(ValueError, match="horizon"):
        forward_sign(close, 0)


def test_labels_never_use_prices_at_or_after_end(eth: Candles) -> None:
    end = 3000
    a = forward_sign(eth.close, 6, end=end)
    b = forward_sign(_scrambled_after(eth, end - 1, seed=1).close, 6, end=end)
    np.testing.assert_array_equal(a, b)
    assert np.isnan(a[end - 6:]).all() and np.isfinite(a[: end - 6]).all()


def test_trainable_rows_need_complete_features_and_a_nonzero_label() -> None:
    x = np.array([[1.0, 2.0], [np.nan, 1.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    y = np.array([1.0, -1.0, 0.0, np.nan, -1.0])
    np.testing.assert_array_equal(trainable(x, y), [0, 4])
