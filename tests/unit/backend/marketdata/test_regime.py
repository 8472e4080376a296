"""Market regime labels (backend.marketdata.regime) and the regime gate (RegimeGated)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.marketdata import regime
from backend.marketdata.candles import Candles, load_dir
from backend.strategies.regime_gate import RegimeGated
from backend.strategies.registry import get_strategy
from backend.strategies.runner import StrategyRunner

SAMPLE = Path(__file__).resolve().parents[4] / "data" / "sample"
N = 400


@pytest.fixture(scope="module")
def eth() -> Candles:
    return load_dir(SAMPLE, ["ETH/BTC"])["ETH/BTC"].slice(0, 1800)


def walk(drift: float, sigma: np.ndarray | float, n: int = N, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    r = drift + rng.normal(0.0, 1.0, n) * sigma
    return 100.0 * np.exp(np.cumsum(r))


def last_label(close: np.ndarray) -> str:
    return str(regime.labels_at(close, [len(close) - 1])[0])


# ------------------------------------------------------------------ labels on synthetic series
def test_steady_up_trend_is_trending_up():
    close = walk(0.002, 0.001)
    labels = regime.label_all(close)[regime.LOOKBACK - 1:]
    assert {lab.split("/")[0] for lab in labels} == {"trending_up"}


def test_steady_down_trend_is_trending_down():
    labels = regime.label_all(walk(-0.002, 0.001))[regime.LOOKBACK - 1:]
    assert {lab.split("/")[0] for lab in labels} == {"trending_down"}


def test_flat_noisy_series_is_ranging():
    rng = np.random.default_rng(3)
    close = 100.0 + rng.normal(0.0, 0.2, N)  # noise around a level: no net move
    labels = regime.label_all(close)[regime.LOOKBACK - 1:]
    trends = pd.Series([lab.split("/")[0] for lab in labels]).value_counts(normalize=True)
    assert trends.get("ranging", 0.0) > 0.95


def test_volatility_burst_is_high_vol_and_calm_is_low_vol():
    sigma = np.full(N, 0.001)
    sigma[-10:] = 0.01  # a burst in the last 10 bars
    close = walk(0.0, sigma)
    assert last_label(close).endswith("/high_vol")
    calm = np.full(N, 0.01)
    calm[-30:] = 0.001  # volatility collapsed for the last 30 bars
    assert last_label(walk(0.0, calm)).endswith("/low_vol")


def test_labels_need_lookback_bars_and_positive_finite_closes():
    close = walk(0.001, 0.001, n=regime.LOOKBACK)
    lab = regime.label_all(close)
    assert (lab[:-1] == "").all() and lab[-1] != ""
    bad = close.copy()
    bad[10] = np.nan
    assert regime.labels_at(bad, [len(bad) - 1])[0] == ""
    bad[10] = -1.0
    assert regime.labels_at(bad, [len(bad) - 1])[0] == ""
    assert regime.label_all(np.array([])).shape == (0,)


def test_every_label_fits_the_message_field():
    assert len(regime.LABELS) == 6
    assert all(len(lab) <= 48 for lab in regime.LABELS)
    assert regime.LOOKBACK <= 256  # the default live runner's smallest evaluation window


# ------------------------------------------------------------------ formula, independently
def test_labels_match_a_pandas_reimplementation(eth):
    close = pd.Series(eth.close)
    net = close - close.shift(regime.TREND_WINDOW)
    path = close.diff().abs().rolling(regime.TREND_WINDOW).sum()
    er = (net.abs() / path).fillna(0.0)
    trend = np.where(er >= regime.ER_MIN, np.where(net > 0, "trending_up", "trending_down"),
                     "ranging")
    sigma = np.log(close).diff().rolling(regime.VOL_WINDOW).std(ddof=0)
    med = sigma.rolling(regime.VOL_REFERENCE).median()
    vol = np.where(sigma > med, "high_vol", "low_vol")
    expect = np.char.add(np.char.add(trend.astype(str), "/"), vol.astype(str))
    got = regime.label_all(eth.close).astype(str)
    start = regime.LOOKBACK - 1
    assert (got[:start] == "").all()
    same = got[start:] == expect[start:]
    assert same.mean() > 0.999, np.flatnonzero(~same)[:10]  # rounding ties at most


def test_labels_are_bit_exact_under_truncation(eth):
    full = regime.label_all(eth.close)
    for k in (1, 57, 500):
        part = regime.label_all(eth.close[k:])
        np.testing.assert_array_equal(part[regime.LOOKBACK - 1:],
                                      full[k + regime.LOOKBACK - 1:])
    # the label of bar i depends only on its last LOOKBACK closes
    i = 1500
    window = eth.close[i - regime.LOOKBACK + 1: i + 1]
    assert last_label(window) == full[i]


def test_every_strategy_signal_carries_its_regime_live_and_in_backtest(eth):
    s = get_strategy("sma_cross")
    pts = s.generate(eth).points()
    labels = regime.label_all(eth.close)
    assert pts and all(p.regime == labels[p.index] for p in pts)
    r = StrategyRunner(s)
    live = [p for i in range(len(eth)) if (p := r.on_bar(
        int(eth.time[i]), eth.open[i], eth.high[i], eth.low[i], eth.close[i],
        eth.volume[i])) is not None]
    assert [p.regime for p in live] == [p.regime for p in pts]


# ------------------------------------------------------------------ allowed lists
def test_matching_full_trend_and_vol_entries():
    assert regime.matches("ranging/high_vol", ["ranging"])
    assert regime.matches("ranging/high_vol", ["high_vol"])
    assert regime.matches("ranging/high_vol", ["trending_up", "ranging/high_vol"])
    assert not regime.matches("ranging/high_vol", ["ranging/low_vol", "trending_up"])
    assert not regime.matches("", ["ranging", "high_vol"])
    mask = regime.allowed_mask(np.array(["ranging/low_vol", "", "trending_up/low_vol"],
                                        dtype=object), ["low_vol"])
    assert mask.tolist() == [True, False, True]


def test_unknown_regime_is_refused_with_the_accepted_ones():
    assert regime.validate_regimes(("ranging", "high_vol")) == ["ranging", "high_vol"]
    with pytest.raises(ValueError, match="unknown regime 'sideways'.*ranging.*high_vol"):
        regime.validate_regimes(["sideways"])
    with pytest.raises(ValueError, match="unknown regime"):
        RegimeGated(get_strategy("rsi_reversion"), ["trending/high_vol"])


# ------------------------------------------------------------------ the gate
@pytest.mark.parametrize("allowed", [["ranging"], ["trending_up", "trending_down"],
                                     ["high_vol"], ["ranging/low_vol"]])
def test_gate_keeps_only_entries_in_allowed_regimes(eth, allowed):
    inner = get_strategy("rsi_reversion")
    gated = RegimeGated(inner, allowed)
    assert gated.name == inner.name and gated.params == inner.params
    assert gated.warmup() == max(inner.warmup(), regime.LOOKBACK)
    free, kept = inner.generate(eth), gated.generate(eth)
    labels = regime.label_all(eth.close)
    entries = [i for i in free.indices() if not free.is_exit(i)]
    expect = [i for i in entries
              if regime.matches(labels[i], allowed) and i >= gated.warmup() - 1]
    got = [i for i in kept.indices() if not kept.is_exit(i)]
    assert got == expect and len(got) < len(entries)
    for i in got:  # a kept entry is unchanged, and shows its regime
        p, q = kept.point(i), free.point(i)
        assert p == q and regime.matches(p.regime, allowed)
    # exit-only signals always pass the gate (it never keeps a position from closing)
    exits = [i for i in free.indices() if free.is_exit(i) and i >= gated.warmup() - 1]
    assert exits and [i for i in kept.indices() if kept.is_exit(i)] == exits


def test_gated_strategy_runner_equals_generate(eth):
    gated = RegimeGated(get_strategy("bollinger_reversion"), ["ranging"])
    expect = gated.generate(eth).points()
    r = StrategyRunner(gated, max_history=gated.warmup() + 5, eval_window=gated.warmup())
    got = [p for i in range(len(eth)) if (p := r.on_bar(
        int(eth.time[i]), eth.open[i], eth.high[i], eth.low[i], eth.close[i],
        eth.volume[i])) is not None]
    assert len(got) == len(expect) > 20
    assert got == expect  # with a history trimmed to the warmup: finite memory
