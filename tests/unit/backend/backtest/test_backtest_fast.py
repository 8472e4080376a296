"""The vectorised all-in evaluator gives the bar loop's trades and equity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.backtest import AllInEvaluator, allin_vectorised, run_allin, run_backtest
from backend.backtest.fast import score_equity
from backend.marketdata.candles import Candles, load_candles

ROOT = Path(__file__).resolve().parents[4]
DATA = ROOT / "data" / "sample"


@pytest.fixture(scope="module")
def eth() -> Candles:
    return load_candles(DATA / "ETH_BTC-5m.csv")


def same(fast, loop, bars: Candles, rtol: float = 1e-10) -> None:
    closed, opened = fast.trades(bars, bars.symbol)
    assert len(closed) == len(loop.trades) == fast.n_trades
    for a, b in zip(closed + opened, loop.trades + loop.open_trades, strict=True):
        assert (a.side, a.entry_bar, a.exit_bar, a.entry_time, a.exit_time, a.exit_reason) == (
            b.side, b.entry_bar, b.exit_bar, b.entry_time, b.exit_time, b.exit_reason)
        for f in ("size", "entry_price", "fees", "net_pnl"):
            assert getattr(a, f) == pytest.approx(getattr(b, f), rel=rtol), f
        assert a.exit_price == b.exit_price
    np.testing.assert_array_equal(fast.position, loop.position)
    np.testing.assert_allclose(fast.equity, loop.equity, rtol=rtol)


@pytest.mark.parametrize("whole", [False, True])
@pytest.mark.parametrize(("fast_n", "slow_n"), [(10, 20), (5, 70), (10, 30), (29, 30)])
def test_fast_equals_loop_sma_cross(eth: Candles, whole: bool, fast_n: int, slow_n: int) -> None:
    ev = AllInEvaluator("sma_cross", eth, 10_000, 0.002, whole_units=whole)
    params = {"fast": fast_n, "slow": slow_n}
    fast = ev.evaluate(params)
    loop = run_allin(eth, ev.signals.side(params), 10_000, 0.002, symbol=eth.symbol,
                     whole_units=whole)
    assert fast.n_trades > 50
    same(fast, loop, eth)


@pytest.mark.parametrize("name", ["ADA_BTC-5m.csv", "DASH_BTC-5m.csv", "LTC_BTC-5m.csv"])
def test_fast_equals_loop_other_symbols_and_momentum(name: str) -> None:
    bars = load_candles(DATA / name)
    for strategy in ("sma_cross", "momentum"):  # momentum goes through generate()
        ev = AllInEvaluator(strategy, bars, 1.0, 0.001)
        fast = ev.evaluate()
        loop = run_allin(bars, ev.signals.side(), 1.0, 0.001, symbol=bars.symbol)
        assert fast.n_trades > 0
        same(fast, loop, bars)


def test_fast_equals_the_cli_path(eth: Candles) -> None:
    res = run_backtest({eth.symbol: eth}, "sma_cross", {"fast": 12, "slow": 40},
                       sizing="all-in", cash=5.0, commission=0.001)
    fast = AllInEvaluator("sma_cross", eth, 5.0, 0.001).evaluate({"fast": 12, "slow": 40})
    np.testing.assert_allclose(fast.equity, res.curve.equity, rtol=1e-10)
    assert fast.n_trades == res.stats.trades


def bars_of(opens: list[float]) -> Candles:
    o = np.asarray(opens, dtype=float)
    t = np.arange(len(o), dtype=np.int64) * 60_000_000_000
    return Candles("X/Y", t, o, o * 1.01, o * 0.99, o * 1.001, np.ones(len(o)))


@pytest.mark.parametrize("side", [
    [0, 0, 0, 0, 0, 0],  # no signal: flat, equity = cash
    [1, 0, 0, 0, 0, 0],  # signal on the first bar
    [0, 0, 0, 0, 0, -1],  # only a signal on the last bar: never filled
    [1, 1, -1, -1, 1, 0],  # repeats are ignored
    [-1, 1, -1, 1, -1, 1],  # reversal every bar
    [0, 1, 0, -1, 0, -1],
])
@pytest.mark.parametrize("whole", [False, True])
def test_fast_equals_loop_edge_cases(side: list[int], whole: bool) -> None:
    bars = bars_of([10, 11, 9, 12, 10, 11])
    s = np.asarray(side, dtype=np.int8)
    fast = allin_vectorised(bars.open, bars.close, s, 1000.0, 0.01, whole_units=whole)
    loop = run_allin(bars, s, 1000.0, 0.01, symbol="X/Y", whole_units=whole)
    same(fast, loop, bars)
    if not any(side[:-1]):
        assert (fast.equity == 1000.0).all() and fast.n_trades == 0


def test_score_matches_the_statistics(eth: Candles) -> None:
    params = {"fast": 8, "slow": 21}
    res = run_backtest({eth.symbol: eth}, "sma_cross", params, sizing="all-in", cash=1.0,
                       commission=0.001)
    ev = AllInEvaluator("sma_cross", eth, 1.0, 0.001)
    st = res.stats
    assert ev.score(params, "sharpe") == pytest.approx(st.sharpe, rel=1e-9)
    assert ev.score(params, "sortino") == pytest.approx(st.sortino, rel=1e-9)
    assert ev.score(params, "return") == pytest.approx(st.total_return, rel=1e-9)
    assert ev.score(params, "final_equity") == pytest.approx(st.final_equity, rel=1e-9)
    assert ev.score(params, "return_dd") == pytest.approx(
        st.total_return / st.max_drawdown, rel=1e-9)
    with pytest.raises(ValueError, match="objective"):
        ev.score(params, "luck")
    with pytest.raises(ValueError, match="'slow'"):
        ev.evaluate({"fast": 30, "slow": 20})


def test_undefined_scores_are_minus_infinity() -> None:
    flat = np.full(10, 3.0)
    assert score_equity(flat, 3.0, 365, "sharpe") == float("-inf")
    assert score_equity(flat, 3.0, 365, "return_dd") == float("-inf")
    assert score_equity(flat, 3.0, 365, "return") == 0.0
