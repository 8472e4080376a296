"""Portfolio metrics (backend.risk.portfolio_metrics) against numpy and by-hand formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backend.risk.portfolio_metrics import (
    beta,
    correlation,
    max_drawdown,
    portfolio_metrics,
    sharpe,
    sortino,
)

STEP = 300_000_000_000
PPY = 105_120.0
#: A known return series (mean > 0, some losses).
R = np.array([0.01, -0.02, 0.015, 0.003, -0.007, 0.012, -0.001, 0.02, -0.015, 0.005])


def test_sharpe_by_hand() -> None:
    by_hand = R.mean() / R.std(ddof=1) * math.sqrt(PPY)
    assert sharpe(R, PPY) == pytest.approx(by_hand, rel=1e-12)
    assert sharpe(np.array([0.01]), PPY) is None
    assert sharpe(np.zeros(5), PPY) is None  # zero variance: undefined, not NaN


def test_sortino_by_hand() -> None:
    downside = math.sqrt(np.mean(np.minimum(R, 0.0) ** 2))  # target 0, over all returns
    assert sortino(R, PPY) == pytest.approx(R.mean() / downside * math.sqrt(PPY), rel=1e-12)
    assert sortino(np.array([0.01, 0.02, 0.03]), PPY) is None  # no downside


def test_max_drawdown_by_hand() -> None:
    eq = [100.0, 110.0, 99.0, 105.0, 88.0, 120.0, 115.0]
    assert max_drawdown(np.array(eq)) == pytest.approx((110 - 88) / 110)
    assert max_drawdown(np.array([1.0, 2.0, 3.0])) == 0.0
    assert max_drawdown(np.array([1.0])) is None


def test_beta_against_numpy_cov() -> None:
    rng = np.random.default_rng(2)
    b = rng.normal(0, 0.01, 500)
    r = 0.7 * b + rng.normal(0, 0.005, 500)
    assert beta(r, b) == pytest.approx(np.cov(r, b)[0, 1] / np.var(b, ddof=1), rel=1e-12)
    assert beta(r, b) == pytest.approx(0.7, abs=0.05)
    assert beta(r[:2], b[:2]) is None
    assert beta(r, np.zeros(500)) is None


def test_correlation_against_numpy_corrcoef() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 3))
    x[:, 2] = 0.5 * x[:, 0] + x[:, 2]
    assert np.allclose(correlation(x), np.corrcoef(x, rowvar=False))


def _series(returns, t0=0, start=1.0):
    c = start * np.cumprod(np.r_[1.0, 1.0 + np.asarray(returns)])
    return t0 + np.arange(c.size, dtype=np.int64) * STEP, c


def test_portfolio_metrics_joins_on_time() -> None:
    rng = np.random.default_rng(5)
    bench = rng.normal(0, 0.01, 300)
    other = rng.normal(0, 0.01, 300)
    # the equity curve starts 50 bars after the benchmark and misses one bar
    eq_r = 0.5 * bench[50:] + rng.normal(0, 0.002, 250)
    bt, bc = _series(bench)
    et, ev = _series(eq_r, t0=50 * STEP, start=2.0)
    keep = np.ones(et.size, dtype=bool)
    keep[100] = False
    et, ev = et[keep], ev[keep]
    hist = {"ETH/BTC": (bt, bc), "LTC/BTC": _series(other)}
    m = portfolio_metrics(et, ev, hist, {"ETH/BTC": 0.5, "LTC/BTC": -0.25}, 2.0,
                          benchmark="ETH/BTC", window=1000, periods_per_year=PPY)
    # by hand: returns of both on the times both have
    e_ret = ev[1:] / ev[:-1] - 1
    b_ret = dict(zip(bt[1:], bc[1:] / bc[:-1] - 1, strict=True))
    pairs = [(e, b_ret[t]) for t, e in zip(et[1:], e_ret, strict=True) if t in b_ret]
    ee, bb = np.array(pairs).T
    assert m.beta_observations == len(pairs) == et.size - 1
    assert m.beta == pytest.approx(np.cov(ee, bb)[0, 1] / np.var(bb, ddof=1), rel=1e-9)
    assert m.sharpe == pytest.approx(e_ret.mean() / e_ret.std(ddof=1) * math.sqrt(PPY))
    assert m.observations == e_ret.size
    assert m.gross_exposure == pytest.approx(0.75) and m.net_exposure == pytest.approx(0.25)
    assert m.gross_exposure_pct == pytest.approx(0.375)
    c = np.corrcoef(bench, other)[0, 1]
    assert m.correlation["ETH/BTC"]["LTC/BTC"] == pytest.approx(c, rel=1e-9)
    assert m.correlation["LTC/BTC"]["ETH/BTC"] == pytest.approx(c, rel=1e-9)
    assert m.correlation["ETH/BTC"]["ETH/BTC"] == pytest.approx(1.0)
    assert m.correlation_observations == 300


def test_portfolio_metrics_without_data_is_empty_not_nan() -> None:
    m = portfolio_metrics([], [], {}, {}, None, benchmark="ETH/BTC")
    assert m.sharpe is None and m.beta is None and m.max_drawdown is None
    assert m.correlation == {} and m.gross_exposure_pct is None
