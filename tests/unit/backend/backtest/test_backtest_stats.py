"""Backtest statistics on curves and trades small enough to check by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backend.backtest.models import BacktestTrade
from backend.backtest.stats import compute_stats, drawdown_duration, infer_periods_per_year

MIN = 60_000_000_000
DAY = 86_400_000_000_000


def trade(net: float, fees: float = 0.5) -> BacktestTrade:
    return BacktestTrade(symbol="X/Y", side="long", size=1.0, entry_time=0, exit_time=1,
                         entry_bar=0, exit_bar=1, entry_price=1.0, exit_price=1.0,
                         gross_pnl=net + fees, fees=fees, net_pnl=net)


def test_curve_statistics_by_hand() -> None:
    eq = np.array([100.0, 110.0, 99.0, 121.0])
    t = np.arange(4, dtype=np.int64) * 5 * MIN
    ppy = 4.0
    st = compute_stats(t, eq, np.array([False, True, True, False]), [], 100.0, ppy)
    r = np.array([0.1, -0.1, 22 / 99])
    assert st.total_return == pytest.approx(0.21)
    assert st.final_equity == 121.0 and st.bars == 4
    assert st.max_drawdown == pytest.approx(0.1)  # 110 -> 99
    assert (st.max_drawdown_duration_bars, st.max_drawdown_duration_ns) == (2, 10 * MIN)
    assert st.sharpe == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(ppy))
    downside = math.sqrt(np.mean(np.minimum(r, 0.0) ** 2))
    assert st.sortino == pytest.approx(r.mean() / downside * math.sqrt(ppy))
    years = len(r) / ppy
    assert st.cagr == pytest.approx(1.21 ** (1 / years) - 1)
    assert st.calmar == pytest.approx(st.cagr / 0.1)
    assert st.exposure == 0.5
    assert (st.start_time, st.end_time, st.periods_per_year) == (0, 15 * MIN, ppy)


def test_trade_statistics_by_hand() -> None:
    trades = [trade(3.0), trade(-1.0), trade(2.0), trade(-0.5), trade(0.0)]
    st = compute_stats(np.arange(2), np.array([1.0, 1.0]), np.array([True, True]), trades,
                       1.0, 365, fees_paid=9.0, open_trades=1)
    assert (st.trades, st.wins, st.losses, st.open_trades) == (5, 2, 2, 1)
    assert st.win_rate == pytest.approx(0.4)
    assert st.profit_factor == pytest.approx(5.0 / 1.5)
    assert st.net_pnl == pytest.approx(3.5)
    assert st.fees_paid == 9.0
    assert compute_stats(np.arange(2), np.ones(2), np.zeros(2, bool), trades, 1.0,
                         365).fees_paid == pytest.approx(2.5)


def test_undefined_values_are_none() -> None:
    flat = compute_stats(np.arange(3), np.full(3, 5.0), np.zeros(3, bool), [trade(1.0)], 5.0,
                         365)
    assert flat.sharpe is None and flat.sortino is None and flat.calmar is None
    assert flat.max_drawdown == 0.0 and flat.max_drawdown_duration_bars == 0
    assert flat.profit_factor is None  # no losing trade
    assert flat.total_return == 0.0
    one = compute_stats(np.arange(1), np.array([5.0]), np.zeros(1, bool), [], 5.0, 365)
    assert one.sharpe is None and one.cagr is None and one.max_drawdown is None
    assert one.win_rate is None and one.max_drawdown_duration_bars is None
    empty = compute_stats(np.arange(0), np.array([]), np.zeros(0, bool), [], 5.0, 365)
    assert empty.final_equity is None and empty.exposure is None


@pytest.mark.parametrize(("curve", "expected"), [
    ([1, 2, 3], (0, 0)),  # never falls
    ([3, 2, 1], (2, 2)),  # never recovers: peak to the last point
    ([5, 4, 5, 3, 2, 6], (3, 3)),  # 5 at 2 -> back above at 5
    ([5, 4, 5, 6, 1, 2], (2, 2)),  # the second dip, unrecovered, is longest
    ([5, 1, 6, 5, 5.5, 5.9, 6], (4, 4)),  # equal to the peak counts as recovered
])
def test_drawdown_duration(curve: list[float], expected: tuple[int, int]) -> None:
    t = np.arange(len(curve), dtype=np.int64)
    assert drawdown_duration(t, np.asarray(curve, dtype=float)) == expected
    assert drawdown_duration(t * 7, np.asarray(curve, dtype=float)) == (
        expected[0], 7 * expected[1])


def test_periods_per_year_from_bar_spacing() -> None:
    five = np.arange(100, dtype=np.int64) * 5 * MIN
    assert infer_periods_per_year(five) == 365 * 24 * 12
    every_day = np.arange(30, dtype=np.int64) * DAY  # crypto: weekends included
    assert infer_periods_per_year(every_day) == 365
    days = np.arange(60, dtype=np.int64)
    weekdays = days[((days + 3) % 7) < 5] * DAY  # 1970-01-01 was a Thursday
    assert infer_periods_per_year(weekdays) == 252
    hourly = np.arange(10, dtype=np.int64) * 60 * MIN
    assert infer_periods_per_year(hourly) == 365 * 24
    assert infer_periods_per_year(np.arange(1, dtype=np.int64)) == 365 * 24 * 12
