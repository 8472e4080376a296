"""Vectorised all-in backtest (numpy): the optimizer's evaluator.

Same rules as the bar loop :func:`backend.backtest.allin.run_allin` (see there), same
trades and equity up to float round-off
(``tests/unit/backend/backtest/test_backtest_fast.py``), in a few
array operations instead of a Python loop over bars:

1. the direction wanted after bar ``i`` is the last non-zero signal at or before ``i``
   (forward fill); the direction held from the open of bar ``i`` is that of bar
   ``i-1``; fills happen where it changes;
2. with fractional sizes a trade entered with equity ``E`` at price ``p`` is worth, at
   a later price ``x`` (``k = 1 + c``),

   * long: ``E * x / (p k)`` marked (``E * x (1 - c) / (p k)`` once closed at ``x``),
   * short: ``E * (2p - x) / (p k)`` marked (``E * (2p - x k) / (p k)`` once closed),

   so the equity at each entry is a cumulative product over the trades and the curve
   follows in one gather;
3. whole-unit sizes depend on rounding at each entry: that case loops over the trades
   (not the bars).

Units: prices quote/base, sizes base units, equity quote, times ns UTC.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import empyrical
import numpy as np

from backend.backtest.allin import allin_size
from backend.backtest.models import BacktestTrade
from backend.backtest.signals import SignalSource, signal_source
from backend.backtest.stats import infer_periods_per_year
from backend.strategies.base import OHLCV, Strategy

__all__ = ["OBJECTIVES", "AllInEvaluator", "FastResult", "allin_vectorised", "score_equity"]

#: Scores :meth:`AllInEvaluator.score` knows (higher is better).
OBJECTIVES = ("sharpe", "sortino", "return", "final_equity", "return_dd", "calmar")


@dataclass(frozen=True, eq=False)
class FastResult:
    """One vectorised all-in run.

    Attributes
    ----------
    equity : numpy.ndarray
        Shape ``(n,)`` float64: equity (quote) at each bar's close.
    position : numpy.ndarray
        Shape ``(n,)`` int8: direction held after each bar.
    fills : numpy.ndarray
        int64 bar indices where a trade is entered (and the previous one, if any, exited),
        at the open.
    sizes : numpy.ndarray
        float64 base units entered at each fill.
    directions : numpy.ndarray
        int8 +1 long / -1 short entered at each fill.
    open_price : numpy.ndarray
        Shape ``(n,)`` the bars' opens (quote/base), the fill prices.
    commission : float
        Fraction of notional per side.

    Notes
    -----
    With whole units, an entry whose equity cannot buy one unit is not dropped here
    (it shows as a size-0 trade) while the bar loop skips it; irrelevant unless the
    cash is below one unit's price.
    """

    equity: np.ndarray
    position: np.ndarray
    fills: np.ndarray
    sizes: np.ndarray
    directions: np.ndarray
    open_price: np.ndarray
    commission: float

    @property
    def n_trades(self) -> int:
        """Closed trades (every fill but the last closes one)."""
        return max(len(self.fills) - 1, 0)

    @property
    def final_equity(self) -> float:
        """Equity at the last close (quote)."""
        return float(self.equity[-1])

    def trades(self, bars: OHLCV, symbol: str = "") -> tuple[list[BacktestTrade],
                                                            list[BacktestTrade]]:
        """The trades as :class:`BacktestTrade` (closed, then the one still open)."""
        closed: list[BacktestTrade] = []
        opened: list[BacktestTrade] = []
        c = self.commission
        for k, a in enumerate(self.fills):
            a = int(a)
            d, q, p = int(self.directions[k]), float(self.sizes[k]), float(self.open_price[a])
            fee_in = q * p * c
            kw: dict[str, Any] = {
                "symbol": symbol, "side": "long" if d > 0 else "short", "size": q,
                "entry_time": int(bars.time[a]), "entry_bar": a, "entry_price": p,
            }
            if k + 1 < len(self.fills):
                b = int(self.fills[k + 1])
                x = float(self.open_price[b])
                gross, fees = d * q * (x - p), fee_in + q * x * c
                closed.append(BacktestTrade(
                    **kw, exit_time=int(bars.time[b]), exit_bar=b, exit_price=x,
                    gross_pnl=gross, fees=fees, net_pnl=gross - fees,
                    return_on_notional=(gross - fees) / (q * p), exit_reason="signal"))
            else:
                opened.append(BacktestTrade(**kw, fees=fee_in, net_pnl=-fee_in))
        return closed, opened


def allin_vectorised(
    open_: np.ndarray,
    close: np.ndarray,
    side: np.ndarray,
    cash: float,
    commission: float,
    *,
    whole_units: bool = False,
) -> FastResult:
    """All-in equity curve from per-bar signals, vectorised (module docstring).

    Parameters
    ----------
    open_, close : numpy.ndarray
        Shape ``(n,)`` float64 bar prices (quote/base).
    side : numpy.ndarray
        Shape ``(n,)`` +1 / -1 / 0 signals at each bar's close.
    cash : float
        Initial cash (quote, > 0).
    commission : float
        Fraction of notional per side.
    whole_units : bool
        Whole base units (loops over trades) instead of fractions.

    Returns
    -------
    FastResult
    """
    n = len(close)
    held = np.zeros(n, dtype=np.int8)
    nz = np.flatnonzero(side)
    vals = side[nz]
    first = np.ones(len(nz), dtype=bool)  # a signal that changes the wanted direction
    first[1:] = vals[1:] != vals[:-1]
    fills = nz[first] + 1  # filled at the next bar's open
    dirs = vals[first]
    if len(fills) and fills[-1] >= n:  # a signal on the last bar is never filled
        fills, dirs = fills[:-1], dirs[:-1]
    if len(fills) == 0:
        return FastResult(np.full(n, float(cash)), held, fills, np.empty(0), dirs, open_,
                          commission)
    a = int(fills[0])
    lengths = np.diff(fills, append=n)
    held[a:] = np.repeat(dirs, lengths)
    p = open_[fills]
    k = 1.0 + commission
    if whole_units:
        sizes, entry_eq = _whole_unit_sizes(p, dirs, cash, commission)
        # equity = cash after the entry fee + dir * size * (close - entry)
        beta = dirs * sizes
        alpha = entry_eq - sizes * p * commission - beta * p
    else:
        # entry equities: cumulative product of each closed trade's multiplier
        x = p[1:]
        long_ = dirs[:-1] > 0
        pk = p[:-1] * k
        mult = np.where(long_, x * (1.0 - commission), 2.0 * p[:-1] - x * k) / pk
        entry_eq = np.empty(len(fills))
        entry_eq[0] = cash
        np.cumprod(mult, out=entry_eq[1:])
        entry_eq[1:] *= cash
        sizes = entry_eq / (p * k)
        # marked: long E * close / (p k); short E * (2p - close) / (p k)
        beta = dirs * sizes
        alpha = np.where(dirs > 0, 0.0, 2.0 * p * sizes)
    equity = np.empty(n)
    equity[:a] = cash
    equity[a:] = np.repeat(alpha, lengths) + np.repeat(beta, lengths) * close[a:]
    return FastResult(equity, held, fills, sizes, dirs, open_, commission)


def _whole_unit_sizes(
    p: np.ndarray, dirs: np.ndarray, cash: float, c: float
) -> tuple[np.ndarray, np.ndarray]:
    """Sizes and entry equities with whole units (sequential: sizes depend on rounding)."""
    m = len(p)
    sizes = np.empty(m)
    entry_eq = np.empty(m)
    eq = float(cash)
    pl, dl = p.tolist(), dirs.tolist()
    for j in range(m):
        entry_eq[j] = eq
        q = allin_size(eq, pl[j], c, True)
        sizes[j] = q
        if j + 1 < m:
            x = pl[j + 1]
            eq = eq - q * pl[j] * c + dl[j] * q * (x - pl[j]) - q * x * c
    return sizes, entry_eq


class AllInEvaluator:
    """Scores parameter sets of one strategy on one series of bars, all-in (GA fitness).

    Work shared by all parameter sets (the signal kernel's memoised indicators, the
    price arrays, the annualisation) is done once; :meth:`evaluate` then costs a few
    array operations (about 0.1 ms for SmaCross on 5,760 bars, see
    ``docs/benchmarks.md``).

    Parameters
    ----------
    strategy : str or Strategy
        Registry name or instance.
    bars : OHLCV
        Shape ``(n,)`` bars, time ascending.
    cash : float
        Initial cash (quote).
    commission : float
        Fraction of notional per side.
    whole_units : bool
        Whole base units (backtesting.py's ``Backtest``) instead of fractions.
    periods_per_year : float, optional
        Annualisation of Sharpe/Sortino; inferred from the bar times by default.
    """

    def __init__(
        self,
        strategy: str | Strategy,
        bars: OHLCV,
        cash: float,
        commission: float,
        *,
        whole_units: bool = False,
        periods_per_year: float | None = None,
    ) -> None:
        self.signals: SignalSource = signal_source(strategy, bars)
        self.strategy = self.signals.strategy
        self.bars = bars
        self.open = np.ascontiguousarray(bars.open, dtype=np.float64)
        self.close = np.ascontiguousarray(bars.close, dtype=np.float64)
        self.cash = float(cash)
        self.commission = float(commission)
        self.whole_units = whole_units
        self.periods_per_year = float(periods_per_year or infer_periods_per_year(bars.time))

    def evaluate(self, params: Mapping[str, Any] | None = None) -> FastResult:
        """Run one parameter set (validated; ValueError naming a bad parameter)."""
        return self.evaluate_resolved(self.strategy.resolve_params(params))

    def evaluate_resolved(self, params: dict[str, int | float]) -> FastResult:
        """:meth:`evaluate` without validation (``params`` from ``resolve_params``)."""
        side = self.signals.side_resolved(params)
        return allin_vectorised(self.open, self.close, side, self.cash, self.commission,
                                whole_units=self.whole_units)

    def score(self, params: Mapping[str, Any] | None = None, objective: str = "sharpe") -> float:
        """One number to maximise; ``-inf`` when undefined (no variance, no trade ...).

        ``sharpe``/``sortino`` (annualised, as in the statistics), ``return`` (total
        return), ``final_equity``, ``return_dd`` (total return / max drawdown),
        ``calmar`` (CAGR / max drawdown, as in the statistics); see :func:`score_equity`.
        """
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r} (known: {', '.join(OBJECTIVES)})")
        return score_equity(self.evaluate(params).equity, self.cash, self.periods_per_year,
                            objective)


def score_equity(equity: np.ndarray, cash: float, periods_per_year: float,
                 objective: str = "sharpe") -> float:
    """:meth:`AllInEvaluator.score` of an equity curve (quote currency).

    Sharpe and Sortino are ``empyrical``'s (as :func:`backend.performance.report.curve_stats`);
    the max drawdown of ``return_dd`` and ``calmar`` is ``max(1 - equity / running
    peak)`` (what ``empyrical.max_drawdown`` computes, without its pandas overhead);
    ``calmar`` is ``empyrical.calmar_ratio``'s CAGR (a year = ``periods_per_year``
    curve points) over that drawdown.
    """
    eq = np.asarray(equity, dtype=float)
    if objective == "final_equity":
        return float(eq[-1])
    total = float(eq[-1] / cash - 1.0)
    if objective == "return":
        return total
    if objective in ("return_dd", "calmar"):
        mdd = float(np.max(1.0 - eq / np.maximum.accumulate(eq)))
        if not mdd > 0:
            return float("-inf")
        if objective == "return_dd":
            return total / mdd
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            cagr = np.power(eq[-1] / eq[0], periods_per_year / (len(eq) - 1)) - 1.0
        val = float(cagr / mdd)
        return val if math.isfinite(val) else float("-inf")
    if len(eq) < 2:
        return float("-inf")
    r = eq[1:] / eq[:-1] - 1.0
    fn = empyrical.sharpe_ratio if objective == "sharpe" else empyrical.sortino_ratio
    val = float(fn(r, annualization=periods_per_year))
    return val if math.isfinite(val) else float("-inf")
