"""All-in sizing agrees with backtesting.py's ``SmaCross`` example on the shipped data.

The reference is backtesting.py's README example (``crossover(sma1, sma2)`` -> buy,
``crossover(sma2, sma1)`` -> sell, n1=10, n2=20, ``exclusive_orders=True``) and its
Quick Start variant (``self.position.close()`` before each order), with the same cash
and commission.  ``Backtest`` buys whole units: compared with ``whole_units=True``;
``FractionalBacktest`` (satoshi units) with our fractional sizes.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from backtesting import Backtest, Strategy
from backtesting.lib import FractionalBacktest, crossover
from backtesting.test import SMA

from backend.backtest import run_backtest
from backend.backtest.allin import allin_size, run_allin
from backend.marketdata.candles import Candles, load_candles

ROOT = Path(__file__).resolve().parents[4]
ETH = ROOT / "data" / "sample" / "ETH_BTC-5m.csv"
CASH, COMMISSION = 10_000, 0.002


class SmaCrossReadme(Strategy):
    """backtesting.py README example (used with ``exclusive_orders=True``)."""

    n1 = 10
    n2 = 20

    def init(self) -> None:
        close = self.data.Close
        self.sma1 = self.I(SMA, close, self.n1)
        self.sma2 = self.I(SMA, close, self.n2)

    def next(self) -> None:
        if crossover(self.sma1, self.sma2):
            self.buy()
        elif crossover(self.sma2, self.sma1):
            self.sell()


class SmaCrossQuickStart(SmaCrossReadme):
    """backtesting.py Quick Start variant: close the position, then reverse."""

    def next(self) -> None:
        if crossover(self.sma1, self.sma2):
            self.position.close()
            self.buy()
        elif crossover(self.sma2, self.sma1):
            self.position.close()
            self.sell()


@pytest.fixture(scope="module")
def eth() -> Candles:
    return load_candles(ETH)


def frame(c: Candles) -> pd.DataFrame:
    df = c.to_frame().rename(columns=str.capitalize)
    df.index = df.index.tz_localize(None)
    return df


def reference(c: Candles, *, fractional: bool, strategy: type[Strategy] = SmaCrossReadme,
              finalize: bool = False, **params: int) -> pd.Series:
    cls = FractionalBacktest if fractional else Backtest
    kw = {"exclusive_orders": True} if strategy is SmaCrossReadme else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = cls(frame(c), strategy, cash=CASH, commission=COMMISSION,
                 finalize_trades=finalize, **kw)
        return bt.run(**params)


def ours(c: Candles, *, whole: bool, finalize: bool = False, n1: int = 10, n2: int = 20):
    return run_backtest({c.symbol: c}, "sma_cross", {"fast": n1, "slow": n2}, sizing="all-in",
                        cash=CASH, commission=COMMISSION, whole_units=whole, finalize=finalize)


@pytest.mark.parametrize("strategy", [SmaCrossReadme, SmaCrossQuickStart])
def test_whole_units_match_backtest_trade_for_trade(eth: Candles, strategy) -> None:
    ref = reference(eth, fractional=False, strategy=strategy)
    res = ours(eth, whole=True)
    tr = ref["_trades"]
    assert res.stats.trades == len(tr) == 368
    assert [t.entry_bar for t in res.trades] == tr["EntryBar"].tolist()
    assert [t.exit_bar for t in res.trades] == tr["ExitBar"].tolist()
    assert [t.size * (1 if t.side == "long" else -1) for t in res.trades] == tr["Size"].tolist()
    np.testing.assert_allclose([t.entry_price for t in res.trades], tr["EntryPrice"], rtol=1e-12)
    np.testing.assert_allclose([t.exit_price for t in res.trades], tr["ExitPrice"], rtol=1e-12)
    np.testing.assert_allclose([t.net_pnl for t in res.trades], tr["PnL"], rtol=1e-9)
    np.testing.assert_allclose([t.fees for t in res.trades], tr["Commission"], rtol=1e-9)
    final = ref["Equity Final [$]"]
    assert res.stats.final_equity == pytest.approx(final, rel=1e-9)
    np.testing.assert_allclose(res.curve.equity, ref["_equity_curve"]["Equity"], rtol=1e-9)
    assert len(res.open_trades) == 1  # the last crossing's trade stays open, as there


def test_fractional_matches_fractional_backtest(eth: Candles) -> None:
    ref = reference(eth, fractional=True)
    res = ours(eth, whole=False)
    tr = ref["_trades"]
    assert res.stats.trades == len(tr)
    assert [t.entry_bar for t in res.trades] == tr["EntryBar"].tolist()
    assert [t.exit_bar for t in res.trades] == tr["ExitBar"].tolist()
    # satoshi-sized units vs exact fractions: sizes agree to ~1e-8 relative
    np.testing.assert_allclose([t.size for t in res.trades], tr["Size"].abs(), rtol=1e-8)
    final = ref["Equity Final [$]"]
    assert abs(res.stats.final_equity / final - 1) < 1e-3  # the brief's 0.1 %
    assert res.stats.final_equity == pytest.approx(final, rel=1e-8)  # what we actually get


def test_finalize_closes_the_last_trade_like_finalize_trades(eth: Candles) -> None:
    ref = reference(eth, fractional=False, finalize=True)
    res = ours(eth, whole=True, finalize=True)
    tr = ref["_trades"]
    assert res.stats.trades == len(tr) == 369 and not res.open_trades
    assert res.trades[-1].exit_bar == tr["ExitBar"].iloc[-1] == len(eth) - 1
    assert res.trades[-1].exit_price == tr["ExitPrice"].iloc[-1] == eth.open[-1]
    assert res.stats.final_equity == pytest.approx(ref["Equity Final [$]"], rel=1e-9)


@pytest.mark.parametrize(("n1", "n2"), [(5, 12), (20, 50), (30, 70)])
def test_other_windows_agree(eth: Candles, n1: int, n2: int) -> None:
    ref = reference(eth, fractional=False, n1=n1, n2=n2)
    res = ours(eth, whole=True, n1=n1, n2=n2)
    tr = ref["_trades"]
    assert [(t.entry_bar, t.exit_bar) for t in res.trades] == list(
        zip(tr["EntryBar"], tr["ExitBar"], strict=True))
    assert res.stats.final_equity == pytest.approx(ref["Equity Final [$]"], rel=1e-9)


@pytest.mark.parametrize("name", ["LTC_BTC-5m.csv", "DASH_BTC-5m.csv"])
def test_other_markets_agree(name: str) -> None:
    # (not ADA/BTC: its 8-decimal prices make the SMAs tie exactly, where SmaCross's rule
    # d[i-1] <= 0 signals and backtesting.py's strict crossover does not)
    c = load_candles(ETH.with_name(name))
    ref = reference(c, fractional=False)
    res = ours(c, whole=True)
    tr = ref["_trades"]
    assert [(t.entry_bar, t.exit_bar) for t in res.trades] == list(
        zip(tr["EntryBar"], tr["ExitBar"], strict=True))
    assert res.stats.final_equity == pytest.approx(ref["Equity Final [$]"], rel=1e-9)


# ---------------------------------------------------------------- the rules on toy data
def toy(opens: list[float], closes: list[float] | None = None) -> Candles:
    o = np.asarray(opens, dtype=float)
    c = o if closes is None else np.asarray(closes, dtype=float)
    t = np.arange(len(o), dtype=np.int64) * 300_000_000_000
    return Candles("X/Y", t, o, np.maximum(o, c), np.minimum(o, c), c, np.ones(len(o)))


def test_rules_by_hand() -> None:
    # signal long at bar 0, ignored repeat at 1, short at 2, signal on the last bar ignored
    bars = toy([10, 11, 12, 9, 10], [11, 12, 9, 10, 10])
    side = np.array([1, 1, -1, 0, 1], dtype=np.int8)
    run = run_allin(bars, side, 100.0, 0.01)
    (t1,), (t2,) = run.trades, run.open_trades
    q1 = 100 / (11 * 1.01)  # bought at bar 1's open with all the equity
    assert (t1.side, t1.entry_bar, t1.exit_bar, t1.entry_price, t1.exit_price) == (
        "long", 1, 3, 11.0, 9.0)
    assert t1.size == pytest.approx(q1)
    assert t1.fees == pytest.approx(q1 * 11 * 0.01 + q1 * 9 * 0.01)
    cash = 100 - q1 * 11 * 0.01 + q1 * (9 - 11) - q1 * 9 * 0.01
    assert t1.net_pnl == pytest.approx(cash - 100)
    q2 = cash / (9 * 1.01)
    assert (t2.side, t2.entry_bar, t2.size) == ("short", 3, pytest.approx(q2))
    np.testing.assert_allclose(run.equity, [
        100, 100 - q1 * 0.11 + q1 * (12 - 11), 100 - q1 * 0.11 + q1 * (9 - 11),
        cash - q2 * 0.09 - q2 * (10 - 9), cash - q2 * 0.09 - q2 * (10 - 9)])
    assert run.position.tolist() == [0, 1, 1, -1, -1]
    assert run.fees_paid == pytest.approx(t1.fees + q2 * 9 * 0.01)


def test_whole_unit_size_is_backtesting_py_formula() -> None:
    assert allin_size(100.0, 9.0, 0.0, True) == 11.0
    assert allin_size(100.0, 10.0, 0.0, True) == 9.0  # 100 * (1 - eps) // 10
    assert allin_size(100.0, 10.0, 0.01, True) == 9.0
    assert allin_size(100.0, 10.0, 0.01, False) == pytest.approx(100 / 10.1)
