"""Statistics of an equity curve and its trades.

Definitions (equity in quote currency, times in ns UTC, fractions not percent):

* returns are simple returns between consecutive curve points,
  ``r[k] = equity[k+1] / equity[k] - 1``;
* ``total_return = final / initial - 1`` where ``initial`` is the starting cash;
* ``sharpe``, ``sortino`` and ``max_drawdown`` are those of
  :func:`backend.performance.report.curve_stats` (``empyrical`` with ``annualization =
  periods_per_year``, risk-free rate 0; max drawdown as a positive fraction of the
  running peak), so a backtest and a mesh report agree on them;
* ``cagr = empyrical.cagr(r)``: compounded growth per year where a year is
  ``periods_per_year`` curve points; ``calmar = empyrical.calmar_ratio(r)``
  (``cagr / max_drawdown``);
* **max drawdown duration**: the longest stretch from a peak (a point at its running
  maximum) to the first later point back at or above that peak, or to the last point
  if the curve never got back; in curve points (``_bars``) and ns (``_ns``); 0 for a
  curve that never falls;
* ``exposure``: fraction of curve points after which a position is open;
* trades: closed trades only; ``wins``/``losses`` have ``net_pnl`` > 0 / < 0,
  ``win_rate = wins / trades``, ``profit_factor = sum(winning net) / |sum(losing
  net)|`` (``None`` without a losing trade).
"""

from __future__ import annotations

from collections.abc import Sequence

import empyrical
import numpy as np

from backend.backtest.models import BacktestStats, BacktestTrade
from backend.common import finite_or_none
from backend.performance.report import PERIODS_5M_24_7, curve_stats

__all__ = ["compute_stats", "drawdown_duration", "infer_periods_per_year"]

NS_PER_DAY = 86_400 * 1_000_000_000
NS_PER_YEAR = 365 * NS_PER_DAY


def infer_periods_per_year(time_ns: np.ndarray) -> float:
    """Curve points per year, from the median spacing of bar times.

    Parameters
    ----------
    time_ns : numpy.ndarray
        Bar times, int64 ns UTC, ascending.

    Returns
    -------
    float
        ``365 days / median spacing`` (5-minute bars: 105 120, the 24/7 crypto
        convention of :data:`backend.performance.report.PERIODS_5M_24_7`); daily bars without
        weekend dates (an exchange calendar) give 252.  Fewer than two bars: 105 120.
    """
    t = np.asarray(time_ns, dtype=np.int64)
    if len(t) < 2:
        return float(PERIODS_5M_24_7)
    dt = float(np.median(np.diff(t)))
    if dt <= 0:
        return float(PERIODS_5M_24_7)
    if 0.9 * NS_PER_DAY <= dt <= 1.5 * NS_PER_DAY:
        weekday = (t // NS_PER_DAY + 3) % 7  # 1970-01-01 was a Thursday (Mon = 0)
        if float(np.mean(weekday >= 5)) < 0.02:
            return 252.0
    return NS_PER_YEAR / dt


def drawdown_duration(time_ns: np.ndarray, equity: np.ndarray) -> tuple[int, int]:
    """Longest peak-to-recovery stretch of a curve (see the module docstring).

    Returns
    -------
    (bars, ns) : tuple of int
        Curve points and time between the peak and the recovery (or the last point).
    """
    v = np.asarray(equity, dtype=float)
    t = np.asarray(time_ns, dtype=np.int64)
    n = len(v)
    if n < 2:
        return 0, 0
    at_peak = v >= np.maximum.accumulate(v)
    peak = np.maximum.accumulate(np.where(at_peak, np.arange(n), 0))
    # recovery points: back at the peak right after being under water
    rec = np.flatnonzero(at_peak[1:] & ~at_peak[:-1]) + 1
    starts = peak[rec - 1]
    ends = rec
    if not at_peak[-1]:
        starts = np.append(starts, peak[-1])
        ends = np.append(ends, n - 1)
    if len(ends) == 0:
        return 0, 0
    k = int(np.argmax(ends - starts))
    return int(ends[k] - starts[k]), int(t[ends[k]] - t[starts[k]])


def compute_stats(
    time_ns: np.ndarray,
    equity: np.ndarray,
    in_market: np.ndarray,
    trades: Sequence[BacktestTrade],
    initial_equity: float,
    periods_per_year: float | None = None,
    *,
    fees_paid: float | None = None,
    open_trades: int = 0,
) -> BacktestStats:
    """Statistics of an equity curve and its closed trades.

    Parameters
    ----------
    time_ns : numpy.ndarray
        Shape ``(n,)`` int64, curve point times (ns UTC), ascending.
    equity : numpy.ndarray
        Shape ``(n,)`` float64, mark-to-market equity (quote currency) at each point.
    in_market : numpy.ndarray
        Shape ``(n,)`` bool, a position is open after the point.
    trades : sequence of BacktestTrade
        Closed trades (open ones are not counted).
    initial_equity : float
        Starting cash (quote currency, > 0): the base of ``total_return``.
    periods_per_year : float, optional
        Annualisation; inferred from ``time_ns`` by default
        (:func:`infer_periods_per_year`).
    fees_paid : float, optional
        All fees paid (quote), open trades included; default: the closed trades' fees.
    open_trades : int
        Trades still open at the end (reported, not counted).

    Returns
    -------
    BacktestStats
    """
    t = np.asarray(time_ns, dtype=np.int64)
    v = np.asarray(equity, dtype=float)
    ppy = float(periods_per_year or infer_periods_per_year(t))
    base = curve_stats(v, ppy)
    cagr = calmar = None
    dd_bars = dd_ns = None
    if len(v) >= 2:
        r = v[1:] / v[:-1] - 1.0
        cagr = finite_or_none(empyrical.cagr(r, annualization=ppy))
        calmar = finite_or_none(empyrical.calmar_ratio(r, annualization=ppy))
        dd_bars, dd_ns = drawdown_duration(t, v)
    nets = [tr.net_pnl for tr in trades]
    wins, losses = [x for x in nets if x > 0], [x for x in nets if x < 0]
    final = finite_or_none(v[-1]) if len(v) else None
    return BacktestStats(
        start_time=int(t[0]) if len(t) else None,
        end_time=int(t[-1]) if len(t) else None,
        bars=len(v),
        periods_per_year=ppy,
        initial_equity=initial_equity,
        final_equity=final,
        total_return=None if final is None else final / initial_equity - 1.0,
        cagr=cagr,
        sharpe=base["sharpe"],
        sortino=base["sortino"],
        calmar=calmar,
        max_drawdown=base["max_drawdown"],
        max_drawdown_duration_bars=dd_bars,
        max_drawdown_duration_ns=dd_ns,
        trades=len(nets),
        wins=len(wins),
        losses=len(losses),
        win_rate=len(wins) / len(nets) if nets else None,
        profit_factor=sum(wins) / -sum(losses) if losses else None,
        exposure=float(np.mean(in_market)) if len(in_market) else None,
        net_pnl=float(sum(nets)),
        fees_paid=float(sum(tr.fees for tr in trades) if fees_paid is None else fees_paid),
        open_trades=open_trades,
    )
