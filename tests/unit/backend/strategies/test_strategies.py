"""Tests for backend.strategies: params, crossing logic, no look-ahead, live == backtest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.marketdata.candles import Candles, load_dir
from backend.strategies.base import ParamSpec, Strategy
from backend.strategies.momentum import Momentum
from backend.strategies.registry import STRATEGIES, get_strategy
from backend.strategies.runner import StrategyRunner
from backend.strategies.sma_cross import SmaCross

SAMPLE = Path(__file__).resolve().parents[4] / "data" / "sample"
NAMES = ["sma_cross", "momentum"]


@pytest.fixture(scope="module")
def data() -> dict[str, Candles]:
    return load_dir(SAMPLE)


@pytest.fixture(scope="module")
def eth(data) -> Candles:
    return data["ETH/BTC"]


def candles(close, high=None, low=None, volume=None) -> Candles:
    close = np.asarray(close, dtype=np.float64)
    n = len(close)
    return Candles(
        "TST/BTC",
        np.arange(n, dtype=np.int64) * 300 * 10**9,
        close.copy(),
        close * 1.001 if high is None else np.asarray(high, dtype=np.float64),
        close * 0.999 if low is None else np.asarray(low, dtype=np.float64),
        close,
        np.ones(n) if volume is None else np.asarray(volume, dtype=np.float64),
    )


# ------------------------------------------------------------------ registry and params
def test_registry():
    assert set(STRATEGIES) == {"sma_cross", "momentum", "rsi_reversion", "bollinger_reversion",
                               "vwap_momentum", "smc", "ml_classifier"}
    assert isinstance(get_strategy("sma_cross"), SmaCross)
    assert isinstance(get_strategy("momentum"), Momentum)
    with pytest.raises(ValueError, match=r"unknown strategy 'nope' \(known: bollinger_reversion, "
                       r"ml_classifier, momentum, rsi_reversion, sma_cross, smc, vwap_momentum\)"):
        get_strategy("nope")


@pytest.mark.parametrize("name", NAMES)
def test_param_specs_are_consistent(name):
    cls = STRATEGIES[name]
    assert cls.name == name
    names = [p.name for p in cls.params]
    assert len(names) == len(set(names))
    for p in cls.params:
        assert isinstance(p, ParamSpec) and p.kind in ("int", "float")
        assert p.low <= p.default <= p.high and p.doc
    d = cls.resolve_params({})
    assert list(d) == names
    assert cls.resolve_params(d) == d


def test_resolve_params():
    p = SmaCross.resolve_params({"fast": 5.0, "stop_atr": 3})
    assert p == {"fast": 5, "slow": 30, "atr_period": 14, "stop_atr": 3.0, "reward_risk": 2.0}
    assert type(p["fast"]) is int and type(p["stop_atr"]) is float
    assert SmaCross.resolve_params({"fast": "7"})["fast"] == 7
    with pytest.raises(ValueError, match="'fsat'.*known: fast, slow"):
        SmaCross.resolve_params({"fsat": 5})
    with pytest.raises(ValueError, match=r"'fast' = 1 is out of range \[2, 100\]"):
        SmaCross.resolve_params({"fast": 1})
    with pytest.raises(ValueError, match="'stop_atr'.*out of range"):
        SmaCross.resolve_params({"stop_atr": 11.0})
    with pytest.raises(ValueError, match="'fast'.*not an integer"):
        SmaCross.resolve_params({"fast": 5.5})
    with pytest.raises(ValueError, match="'slow'.*not a number"):
        SmaCross.resolve_params({"slow": "abc"})
    with pytest.raises(ValueError, match="'slow'"):
        SmaCross.resolve_params({"slow": True})
    with pytest.raises(ValueError, match="'fast' .*must be smaller than 'slow'"):
        SmaCross.resolve_params({"fast": 30, "slow": 30})
    with pytest.raises(ValueError, match="'fast_ma' .*must be smaller than 'slow_ma'"):
        Momentum.resolve_params({"fast_ma": 50})
    with pytest.raises(ValueError, match="'volume_factor'"):
        Momentum.resolve_params({"volume_factor": -0.1})


def test_generate_validates_params(eth):
    with pytest.raises(ValueError, match="'fast'"):
        SmaCross().generate(eth, {"fast": 40, "slow": 30})


def test_strategy_is_abstract():
    with pytest.raises(TypeError):
        Strategy()  # type: ignore[abstract]


# ------------------------------------------------------------------ crossing logic
def test_sma_cross_step_hand_check():
    # 1.0 and 1.25 are exact in binary, so the SMAs of flat stretches are exact.
    close = np.r_[np.full(200, 1.0), np.full(100, 1.25), np.full(100, 1.0)]
    f = SmaCross().generate(candles(close), {"fast": 10, "slow": 30})
    assert f.indices().tolist() == [200, 300]
    assert f.side[200] == 1 and f.side[300] == -1
    assert f.side.dtype == np.int8
    # ATR at bar 200: mean of 14 true ranges; the step bar's TR = 1.25*1.001 - 1.0
    tr = np.r_[np.full(13, 0.002), 1.25 * 1.001 - 1.0]
    atr = tr.mean()
    assert f.stop_loss[200] == pytest.approx(1.25 - 2 * atr)
    assert f.take_profit[200] == pytest.approx(1.25 + 2 * 2 * atr)
    assert f.stop_loss[300] > 1.0 > f.take_profit[300]
    # sudden crossing after a flat stretch: far stronger than typical, slope agrees
    assert f.confidence[200] > 0.99 and f.confidence[300] > 0.99
    assert "crossed above SMA(30)" in f.reason_at(200)
    assert "crossed below SMA(30)" in f.reason_at(300)
    assert f.reason_at(250) == "" and f.point(250) is None
    assert np.isnan(f.stop_loss[250]) and f.confidence[250] == 0.0


def test_sma_cross_matches_plain_python_on_a_wave():
    i = np.arange(600)
    close = 1.0 + 0.05 * np.sin(i / 15.0) + 0.03 * np.sin(i / 7.3) + 0.0001 * i
    fast, slow = 5, 20
    f = SmaCross().generate(candles(close), {"fast": fast, "slow": slow})

    def sma(n, k):
        return sum(close[k - n + 1 : k + 1]) / n

    expect = {}
    for k in range(slow, len(close)):
        d, dp = sma(fast, k) - sma(slow, k), sma(fast, k - 1) - sma(slow, k - 1)
        if d > 0 >= dp:
            expect[k] = 1
        elif d < 0 <= dp:
            expect[k] = -1
    first = SmaCross().warmup({"fast": fast, "slow": slow}) - 1
    expect = {k: s for k, s in expect.items() if k >= first}
    got = {int(k): int(f.side[k]) for k in f.indices()}
    assert len(expect) > 10
    assert got == expect


def test_signals_match_pandas_reimplementation(eth):
    c = pd.Series(eth.close)
    f = SmaCross().generate(eth)
    d = c.rolling(10).mean() - c.rolling(30).mean()
    buy = (d > 0) & (d.shift() <= 0)
    sell = (d < 0) & (d.shift() >= 0)
    expect = np.array(buy.astype(int) - sell.astype(int))
    expect[: SmaCross().warmup() - 1] = 0
    np.testing.assert_array_equal(f.side, expect)

    m = Momentum().generate(eth)
    roc = (c / c.shift(12) - 1) * 100
    v = pd.Series(eth.volume)
    vol_ok = v > 1.2 * v.rolling(20).mean()
    up = c.rolling(10).mean() > c.rolling(40).mean()
    down = c.rolling(10).mean() < c.rolling(40).mean()
    buy = (roc > 0.5) & (roc.shift() <= 0.5) & vol_ok & up
    sell = (roc < -0.5) & (roc.shift() >= -0.5) & vol_ok & down
    expect = np.array(buy.astype(int) - sell.astype(int))
    expect[: Momentum().warmup() - 1] = 0
    np.testing.assert_array_equal(m.side, expect)


def test_momentum_fires_on_entering_the_zone_only(eth):
    s = Momentum()
    f = s.generate(eth)
    c = eth.close
    roc = np.r_[np.full(12, np.nan), (c[12:] / c[:-12] - 1) * 100]
    for i in f.indices():
        sd = f.side[i]
        assert sd * roc[i] > 0.5 and sd * roc[i - 1] <= 0.5
    # a volume filter that can never pass removes every signal
    assert len(s.generate(eth, {"volume_factor": 5.0}).indices()) < len(f.indices())
    assert "momentum" in f.reason_at(f.indices()[0])


# ------------------------------------------------------------------ frame invariants
@pytest.mark.parametrize("name", NAMES)
def test_frame_invariants(eth, name):
    s = get_strategy(name)
    f = s.generate(eth)
    n = len(eth)
    assert len(f) == n
    for a in (f.side, f.confidence, f.stop_loss, f.take_profit):
        assert a.shape == (n,)
    sig = f.side != 0
    assert not sig[: s.warmup() - 1].any()
    assert ((f.confidence >= 0) & (f.confidence <= 1)).all()
    assert (f.confidence[~sig] == 0).all()
    assert np.isnan(f.stop_loss[~sig]).all() and np.isnan(f.take_profit[~sig]).all()
    ix = f.indices()
    close, side = eth.close[ix], f.side[ix]
    risk = side * (close - f.stop_loss[ix])
    reward = side * (f.take_profit[ix] - close)
    assert (risk > 0).all()
    np.testing.assert_allclose(reward, 2.0 * risk, rtol=1e-9)
    pts = f.points()
    assert [p.index for p in pts] == ix.tolist()
    assert all(
        p.reason and p.price == eth.close[p.index] and p.time == eth.time[p.index] for p in pts
    )


@pytest.mark.parametrize("name", NAMES)
def test_confidence_distribution(data, name):
    s = get_strategy(name)
    for sym, c in data.items():
        f = s.generate(c)
        conf = f.confidence[f.indices()]
        assert len(conf) > 50, sym
        share = (conf >= 0.85).mean()
        assert 0.10 <= share <= 0.40, (sym, share)
        assert conf.min() < 0.6, sym  # a real mix, not all high
        assert len(np.unique(np.round(conf, 2))) > 20, sym


# ------------------------------------------------------------------ no look-ahead
@pytest.mark.parametrize("name", NAMES)
def test_no_look_ahead(eth, name):
    s = get_strategy(name)
    full = s.generate(eth)
    rng = np.random.default_rng(7)
    for t in (150, 1234, 3001, len(eth) - 2):
        part = s.generate(eth.slice(0, t + 1))
        for a, b in (
            (part.side, full.side),
            (part.confidence, full.confidence),
            (part.stop_loss, full.stop_loss),
            (part.take_profit, full.take_profit),
        ):
            np.testing.assert_array_equal(a, b[: t + 1])
        # scrambling the future does not change the past either
        k = len(eth) - t - 1
        noise = rng.uniform(0.9, 1.1, k)
        fut = Candles(
            eth.symbol,
            eth.time,
            *(
                np.r_[a[: t + 1], a[t + 1 :] * noise]
                for a in (eth.open, eth.high, eth.low, eth.close, eth.volume)
            ),
        )
        other = s.generate(fut)
        np.testing.assert_array_equal(other.side[: t + 1], full.side[: t + 1])
        np.testing.assert_array_equal(other.confidence[: t + 1], full.confidence[: t + 1])
    for i in full.indices()[:5]:
        assert s.generate(eth.slice(0, i + 1)).reason_at(i) == full.reason_at(i)


@pytest.mark.parametrize("name", NAMES)
def test_memory_is_warmup_bars(eth, name):
    s = get_strategy(name)
    w = s.warmup()
    full = s.generate(eth)
    for i in full.indices()[::7]:
        part = s.generate(eth.slice(i - w + 1, i + 1))
        p = part.point(w - 1)
        assert p is not None
        q = full.point(i)
        assert (p.side, p.confidence, p.stop_loss, p.take_profit, p.reason) == (
            q.side,
            q.confidence,
            q.stop_loss,
            q.take_profit,
            q.reason,
        )
    assert not s.generate(eth.slice(0, w - 1)).side.any()


# ------------------------------------------------------------------ live runner
def feed(runner: StrategyRunner, c: Candles):
    out = []
    for i in range(len(c)):
        p = runner.on_bar(int(c.time[i]), c.open[i], c.high[i], c.low[i], c.close[i], c.volume[i])
        if p is not None:
            out.append(p)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_runner_equals_generate(eth, name):
    s = get_strategy(name)
    expect = s.generate(eth).points()
    got = feed(StrategyRunner(s, symbol="ETH/BTC"), eth)
    assert len(got) == len(expect) > 50
    assert got == expect  # indices, times, sides, confidences, brackets, reasons


@pytest.mark.parametrize("name", NAMES)
def test_runner_with_trimmed_history_equals_generate(eth, name):
    s = get_strategy(name)
    params = {"atr_period": 20}
    expect = s.generate(eth, params).points()
    r = StrategyRunner(s, params, max_history=s.warmup(params) + 5, eval_window=s.warmup(params))
    got = feed(r, eth)
    assert got == expect
    assert len(r) == r.max_history and r.bars_seen == len(eth)
    h = r.history()
    assert np.array_equal(h.close, eth.close[-len(r) :])
    assert np.array_equal(h.time, eth.time[-len(r) :])


def test_runner_validation(eth):
    s = SmaCross()
    with pytest.raises(ValueError, match="max_history"):
        StrategyRunner(s, max_history=50)
    with pytest.raises(ValueError, match="eval_window"):
        StrategyRunner(s, eval_window=10)
    with pytest.raises(ValueError, match="'fast'"):
        StrategyRunner(s, {"fast": 99})
    r = StrategyRunner(s)
    assert r.on_bar(100, 1.0, 1.1, 0.9, 1.0, 5.0) is None
    with pytest.raises(ValueError, match="not after"):
        r.on_bar(100, 1.0, 1.1, 0.9, 1.0, 5.0)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n", [0, 1, 2, 50])
def test_short_series_give_no_signals(name, n):
    f = get_strategy(name).generate(candles(np.linspace(1.0, 2.0, n)))
    assert len(f) == n and not f.side.any() and f.points() == []
