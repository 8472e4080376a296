"""All-in backtest, bar by bar: the reference the fast evaluator is checked against.

Rules (those of backtesting.py's ``Backtest(..., commission=c)`` with its ``SmaCross``
example, checked in ``tests/unit/backend/backtest/test_backtest_allin.py``):

* A signal at the close of bar ``i`` (+1 long, -1 short) that differs from the position
  held is filled at the **open of bar** ``i+1``; a signal equal to the position held is
  ignored.  A signal on the last bar is never filled.
* A reversal first closes the open trade at that open, then opens the new one with the
  **whole equity**: ``size = equity / (open * (1 + c))`` base units, so that notional
  plus entry commission equal the equity.  With ``whole_units`` the size is rounded
  down to an integer exactly as backtesting.py does (``int(equity * (1 - eps) //
  (open + commission / size))``).
* Commission ``c`` (fraction of notional) is charged **per side**: ``size * price * c``
  at entry and at exit.  No slippage, no spread.
* Accounting is that of a margin account (like backtesting.py): ``cash`` holds the
  realised P&L net of commissions; ``equity = cash + dir * size * (close - entry)``
  marked at every bar's close.
* At the end an open trade stays open (listed in ``open_trades``, equity marked at the
  last close) -- backtesting.py's default ``finalize_trades=False``.  With
  ``finalize=True`` it is closed at the **open** of the last bar with commission
  (what backtesting.py's ``finalize_trades=True`` does: its extra broker pass reuses
  the last bar's prices, and market orders fill at the open).
* Equity that would fall to 0 or below (a short losing more than the equity) is not
  modelled: backtesting.py stops trading there, this loop carries on.

Where the signals differ, so do the trades: ``SmaCross`` buys when ``d[i] > 0 >=
d[i-1]`` on exact window sums, backtesting.py's ``crossover`` needs ``d[i-1] < 0`` on
pandas' running sums.  They part only where the two SMAs tie (or nearly, within
round-off): never on the ETH, LTC and DASH sample data at the default windows (nor on
ETH over the whole benchmark grid), a few times on ADA/BTC, whose 8-decimal prices make
exact ties common.  backtesting.py also closes and re-opens on a repeated same-direction
crossover (possible after a tie), where this loop holds.

Units: prices quote/base, sizes base units, cash/P&L/fees quote, times ns UTC.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np

from backend.backtest.models import BacktestTrade
from backend.strategies.base import OHLCV

__all__ = ["AllInRun", "allin_size", "run_allin"]

_FULL = 1 - sys.float_info.epsilon  # backtesting.py's default order size (_FULL_EQUITY)


@dataclass
class AllInRun:
    """Result of :func:`run_allin` for one symbol.

    Attributes
    ----------
    equity : numpy.ndarray
        Shape ``(n,)`` float64: equity (quote) marked at each bar's close.
    position : numpy.ndarray
        Shape ``(n,)`` int8: direction held after each bar (+1, -1, 0).
    trades, open_trades : list of BacktestTrade
    fees_paid : float
        All commissions (quote), the open trade's entry included.
    """

    equity: np.ndarray
    position: np.ndarray
    trades: list[BacktestTrade] = field(default_factory=list)
    open_trades: list[BacktestTrade] = field(default_factory=list)
    fees_paid: float = 0.0


def allin_size(equity: float, price: float, commission: float, whole_units: bool) -> float:
    """Size (base units) bought or sold short with the whole ``equity`` at ``price``.

    Fractional: ``equity / (price * (1 + commission))``.  Whole units: backtesting.py's
    formula for ``buy()``/``sell()`` with the default size ``1 - eps``:
    ``int(equity * (1 - eps) // (price + price * commission * s / s))`` with
    ``s = 1 - eps`` (written out so the rounding is the same).
    """
    if whole_units:
        per_unit = price + (_FULL * price * commission) / _FULL
        return float(int((equity * _FULL) // per_unit))
    return equity / (price * (1 + commission))


def _trade(
    symbol: str, bars: OHLCV, d: int, size: float, a: int, entry: float, entry_fee: float,
    b: int | None, exit_px: float | None, exit_fee: float, reason: str | None,
) -> BacktestTrade:
    gross = 0.0 if exit_px is None else d * size * (exit_px - entry)
    net = gross - entry_fee - exit_fee
    closed = b is not None
    return BacktestTrade(
        symbol=symbol, side="long" if d > 0 else "short", size=size,
        entry_time=int(bars.time[a]), entry_bar=a, entry_price=entry,
        exit_time=int(bars.time[b]) if closed else None, exit_bar=b,
        exit_price=exit_px, gross_pnl=gross, fees=entry_fee + exit_fee, net_pnl=net,
        return_on_notional=net / (size * entry) if closed and size * entry else None,
        exit_reason=reason,
    )


def run_allin(
    bars: OHLCV,
    side: np.ndarray,
    cash: float,
    commission: float,
    *,
    symbol: str = "",
    whole_units: bool = False,
    finalize: bool = False,
) -> AllInRun:
    """Run the all-in rules (module docstring) bar by bar.

    Parameters
    ----------
    bars : OHLCV
        Shape ``(n,)``: ``open`` and ``close`` (quote/base) and ``time`` (ns UTC) are used.
    side : numpy.ndarray
        Shape ``(n,)``: +1 / -1 / 0 signal at each bar's close
        (:meth:`backend.backtest.signals.SignalSource.side`).
    cash : float
        Initial cash (quote, > 0).
    commission : float
        Fraction of notional per side (e.g. 0.002).
    symbol : str
        Written on the trades.
    whole_units : bool
        Round sizes down to whole base units (backtesting.py's ``Backtest``); the default
        trades fractions (compare with ``backtesting.lib.FractionalBacktest``).
    finalize : bool
        Close a trade still open at the last bar's open.

    Returns
    -------
    AllInRun
    """
    op = np.asarray(bars.open, dtype=float)
    cl = np.asarray(bars.close, dtype=float)
    sd = np.asarray(side)
    n = len(op)
    if len(sd) != n:
        raise ValueError(f"side has {len(sd)} bars, the data {n}")
    equity = np.empty(n)
    position = np.zeros(n, dtype=np.int8)
    out = AllInRun(equity, position)
    c = commission
    d, size, entry, entry_fee, a = 0, 0.0, 0.0, 0.0, 0
    pending = 0
    for i in range(n):
        if pending:
            px = op[i]
            if d:  # close the open trade at this open
                fee = size * px * c
                cash += d * size * (px - entry) - fee
                out.fees_paid += fee
                out.trades.append(_trade(symbol, bars, d, size, a, entry, entry_fee, i, px, fee,
                                         "signal"))
                d = 0
            size = allin_size(cash, px, c, whole_units)
            pending_dir, pending = pending, 0
            if size > 0:
                d, entry, a = pending_dir, px, i
                entry_fee = size * px * c
                cash -= entry_fee
                out.fees_paid += entry_fee
        if finalize and d and i == n - 1:
            px = op[i]
            fee = size * px * c
            cash += d * size * (px - entry) - fee
            out.fees_paid += fee
            out.trades.append(_trade(symbol, bars, d, size, a, entry, entry_fee, i, px, fee, "end"))
            d = 0
        equity[i] = cash + (d * size * (cl[i] - entry) if d else 0.0)
        position[i] = d
        s = int(sd[i])
        if s and s != d:
            pending = s
    if d:
        out.open_trades.append(_trade(symbol, bars, d, size, a, entry, entry_fee, None, None, 0.0,
                                      None))
    return out
