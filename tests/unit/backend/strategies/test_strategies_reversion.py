"""rsi_reversion and bollinger_reversion: indicators, rules, exits, finite memory, live parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend import indicators as ind
from backend.marketdata.candles import Candles, load_dir
from backend.strategies.base import armed_exits
from backend.strategies.bollinger_reversion import BollingerReversion
from backend.strategies.registry import STRATEGIES, get_strategy
from backend.strategies.rsi_reversion import RsiReversion
from backend.strategies.runner import StrategyRunner

SAMPLE = Path(__file__).resolve().parents[4] / "data" / "sample"
NAMES = ["rsi_reversion", "bollinger_reversion"]


@pytest.fixture(scope="module")
def data() -> dict[str, Candles]:
    return load_dir(SAMPLE)


@pytest.fixture(scope="module")
def eth(data) -> Candles:
    return data["ETH/BTC"].slice(0, 1800)


def candles(close, spread: float = 0.001) -> Candles:
    close = np.asarray(close, dtype=np.float64)
    n = len(close)
    return Candles("TST/BTC", np.arange(n, dtype=np.int64) * 300 * 10**9, close.copy(),
                   close * (1 + spread), close * (1 - spread), close, np.ones(n))


def feed(runner: StrategyRunner, c: Candles) -> list:
    out = []
    for i in range(len(c)):
        p = runner.on_bar(int(c.time[i]), c.open[i], c.high[i], c.low[i], c.close[i],
                          c.volume[i])
        if p is not None:
            out.append(p)
    return out


# ------------------------------------------------------------------ indicators, by hand
def test_cutler_rsi_by_hand():
    x = [10.0, 11.0, 10.5, 11.5, 11.0, 12.0]
    got = ind.rsi_cutler(x, 3)
    # gains/losses of the 3 changes ending at each bar, simple means
    assert np.isnan(got[:3]).all()
    assert got[3] == pytest.approx(100 * (1 + 1) / (1 + 1 + 0.5))  # +1, -0.5, +1
    assert got[4] == pytest.approx(100 * 1 / (1 + 0.5 + 0.5))      # -0.5, +1, -0.5
    assert got[5] == pytest.approx(100 * 2 / (2 + 0.5))            # +1, -0.5, +1
    assert ind.rsi_cutler([5.0] * 6, 3)[-1] == 50.0  # no change at all
    assert ind.rsi_cutler([1, 2, 3, 4, 5], 2)[-1] == 100.0
    assert ind.rsi_cutler([5, 4, 3, 2, 1], 2)[-1] == 0.0


def test_cutler_rsi_matches_pandas_and_is_bit_exact_under_truncation(eth):
    d = pd.Series(eth.close).diff()
    g = d.clip(lower=0).rolling(14).mean()
    lo = (-d).clip(lower=0).rolling(14).mean()
    expect = (100 * g / (g + lo)).to_numpy()
    got = ind.rsi_cutler(eth.close, 14)
    np.testing.assert_allclose(got[14:], expect[14:], rtol=1e-9)
    np.testing.assert_array_equal(ind.rsi_cutler(eth.close[300:], 14)[14:], got[314:])


def test_bollinger_deviation_matches_pandas_and_is_exact_under_truncation(eth):
    s = pd.Series(eth.close)
    np.testing.assert_allclose(ind.rolling_std(eth.close, 20)[19:],
                               s.rolling(20).std(ddof=0).to_numpy()[19:], rtol=1e-9)
    np.testing.assert_allclose(ind.rolling_std(eth.close, 20, ddof=1)[19:],
                               s.rolling(20).std().to_numpy()[19:], rtol=1e-9)
    full = ind.rolling_std(eth.close, 20)
    np.testing.assert_array_equal(ind.rolling_std(eth.close[77:], 20)[19:], full[96:])
    np.testing.assert_array_equal(ind.rolling_min(eth.close, 9)[8:],
                                  s.rolling(9).min().to_numpy()[8:])
    np.testing.assert_array_equal(ind.rolling_max(eth.close, 9)[8:],
                                  s.rolling(9).max().to_numpy()[8:])
    np.testing.assert_allclose(ind.rolling_sum(eth.close, 5)[4:],
                               s.rolling(5).sum().to_numpy()[4:], rtol=1e-12)
    with pytest.raises(ValueError, match="ddof"):
        ind.rolling_std(eth.close, 3, ddof=3)


def test_armed_exits():
    buy = np.array([0, 1, 0, 0, 0, 0, 0, 1, 0, 0], dtype=bool)
    cand = np.array([1, 0, 0, 1, 1, 0, 0, 0, 0, 0], dtype=bool)
    assert np.flatnonzero(armed_exits(buy, cand, 5)).tolist() == [3]  # first after the buy
    assert not armed_exits(buy, cand, 1).any()  # bar 3 is 2 bars after the buy
    late = cand.copy()
    late[9] = True
    assert np.flatnonzero(armed_exits(buy, late, 2)).tolist() == [3, 9]
    same = cand.copy()
    same[7] = True  # a candidate on the buy's own bar does not disarm that buy
    assert np.flatnonzero(armed_exits(buy, same | late, 5)).tolist() == [3, 9]


# ------------------------------------------------------------------ registry and params
@pytest.mark.parametrize("name", NAMES)
def test_declared_params(name):
    cls = STRATEGIES[name]
    assert isinstance(get_strategy(name), cls) and cls.name == name
    names = [p.name for p in cls.params]
    assert len(names) == len(set(names))
    for p in cls.params:
        assert p.low <= p.default <= p.high and p.doc
    assert list(cls.resolve_params({})) == names


def test_param_constraints_name_the_parameters():
    with pytest.raises(ValueError, match="'oversold'.*'overbought'"):
        RsiReversion.resolve_params({"oversold": 50, "overbought": 50})
    with pytest.raises(ValueError, match="'exit_band'"):
        BollingerReversion.resolve_params({"exit_band": 2})


# ------------------------------------------------------------------ the rules
def test_rsi_buys_the_turn_out_of_oversold_and_exits_on_overbought(eth):
    s = RsiReversion()
    p = s.resolve_params({})
    f = s.generate(eth)
    rsi = ind.rsi_cutler(eth.close, p["period"])
    prev = np.r_[np.nan, rsi[:-1]]
    w = s.warmup()
    ix = f.indices()
    assert ix.size and ix.min() >= w - 1
    for i in ix:
        if f.side[i] > 0:
            assert rsi[i] > p["oversold"] >= prev[i] and not f.is_exit(i)
            assert f.stop_loss[i] < eth.close[i] < f.take_profit[i]
        else:
            assert f.is_exit(i) and f.confidence[i] == 0.0
            assert rsi[i] > p["overbought"] >= prev[i]
            assert "exit" in f.reason_at(i)
    # every crossing up through oversold after the warmup is a buy
    crosses_mask = (rsi > p["oversold"]) & (prev <= p["oversold"])
    crosses = np.flatnonzero(crosses_mask)
    assert set(crosses[crosses >= w - 1]) == set(ix[f.side[ix] > 0])
    # exits: the first overbought entry within hold_bars after a buy (plain loop)
    cand = (rsi > p["overbought"]) & (prev <= p["overbought"])
    first_buy = s.warmup({"hold_bars": 1}) - 2  # entries' own warmup - 1
    expect, armed_at = [], None
    for i in range(len(rsi)):
        if armed_at is not None and cand[i] and i - armed_at <= p["hold_bars"]:
            if i >= w - 1:
                expect.append(i)
            armed_at = None
        elif cand[i]:
            armed_at = None
        if i >= first_buy and crosses_mask[i]:
            armed_at = i
    assert ix[f.side[ix] < 0].tolist() == expect and expect


def test_bollinger_buys_back_inside_the_lower_band_and_targets_the_exit_band(eth):
    s = BollingerReversion()
    for exit_band in (0, 1):
        p = s.resolve_params({"exit_band": exit_band})
        f = s.generate(eth, p)
        mid = ind.rolling_mean(eth.close, p["period"])
        sd = ind.rolling_std(eth.close, p["period"])
        lower = mid - p["num_sd"] * sd
        band = mid + p["num_sd"] * sd if exit_band else mid
        c = eth.close
        ix = f.indices()
        buys, exits = ix[f.side[ix] > 0], ix[f.side[ix] < 0]
        assert buys.size > 10 and exits.size > 5
        for i in buys:
            assert c[i - 1] < lower[i - 1] and c[i] >= lower[i]
            assert f.take_profit[i] == band[i]  # target: the exit band at entry
            assert f.stop_loss[i] < c[i] < f.take_profit[i]
        for i in exits:
            assert f.is_exit(i) and c[i] >= band[i] and c[i - 1] < band[i - 1]


def test_confidences_are_a_real_mix(data):
    for name in NAMES:
        s = get_strategy(name)
        for sym, c in data.items():
            f = s.generate(c)
            ix = f.indices()
            conf = f.confidence[ix[f.side[ix] > 0]]
            assert len(conf) > 50, (name, sym)
            assert 0.10 <= (conf >= 0.85).mean() <= 0.45, (name, sym)
            assert conf.min() < 0.6, (name, sym)


# ------------------------------------------------------------------ finite memory, live
@pytest.mark.parametrize("name", NAMES)
def test_no_look_ahead(eth, name):
    s = get_strategy(name)
    full = s.generate(eth)
    rng = np.random.default_rng(11)
    for t in (400, 977, len(eth) - 2):
        part = s.generate(eth.slice(0, t + 1))
        noise = rng.uniform(0.9, 1.1, len(eth) - t - 1)
        fut = Candles(eth.symbol, eth.time, *(
            np.r_[a[: t + 1], a[t + 1:] * noise]
            for a in (eth.open, eth.high, eth.low, eth.close, eth.volume)))
        other = s.generate(fut)
        for g in (part, other):
            for a, b in ((g.side, full.side), (g.confidence, full.confidence),
                         (g.stop_loss, full.stop_loss), (g.take_profit, full.take_profit)):
                np.testing.assert_array_equal(a[: t + 1], b[: t + 1])
            assert [g.point(i) for i in g.indices() if i <= t] == \
                [full.point(i) for i in full.indices() if i <= t]


@pytest.mark.parametrize("name", NAMES)
def test_memory_is_warmup_bars(eth, name):
    s = get_strategy(name)
    w = s.warmup()
    full = s.generate(eth)
    for i in full.indices()[::5]:
        p = s.generate(eth.slice(i - w + 1, i + 1)).point(w - 1)
        q = full.point(int(i))
        assert p is not None and q is not None
        assert (p.side, p.confidence, p.stop_loss, p.take_profit, p.reason, p.exit) == (
            q.side, q.confidence, q.stop_loss, q.take_profit, q.reason, q.exit)
    assert not s.generate(eth.slice(0, w - 1)).side.any()


@pytest.mark.parametrize("name", NAMES)
def test_runner_equals_generate_on_real_data(eth, name):
    s = get_strategy(name)
    expect = s.generate(eth).points()
    got = feed(StrategyRunner(s, symbol="ETH/BTC"), eth)
    assert len(got) == len(expect) > 30
    assert got == expect  # indices, sides, confidences, brackets, reasons, regimes, exits
    assert all(p.regime for p in got)
    assert any(p.exit for p in got) and any(not p.exit for p in got)


@pytest.mark.parametrize("name", NAMES)
def test_runner_with_trimmed_history_equals_generate(eth, name):
    s = get_strategy(name)
    expect = s.generate(eth).points()
    r = StrategyRunner(s, max_history=s.warmup() + 3, eval_window=s.warmup())
    assert feed(r, eth) == expect


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n", [0, 1, 2, 30])
def test_short_series_give_no_signals(name, n):
    f = get_strategy(name).generate(candles(np.linspace(1.0, 2.0, n)))
    assert len(f) == n and not f.side.any() and f.points() == []
