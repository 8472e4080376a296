"""What a backtest returns: trades, statistics and the run's description (pydantic v2).

Units: prices in quote currency per base unit, sizes in base units, cash, P&L and
fees in quote currency, times in ns since the Unix epoch (UTC), fractions not percent.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field

from backend.common import json_safe

__all__ = ["BacktestResult", "BacktestStats", "BacktestTrade", "Curve", "Sizing"]

#: ``"risk"``: the mesh's strategy -> compliance -> risk -> paper pipeline
#: (:mod:`backend.backtest.risk`); ``"all-in"``: whole equity per trade, reversal on the
#: opposite signal (:mod:`backend.backtest.allin`).
Sizing = Literal["risk", "all-in"]




class BacktestTrade(BaseModel):
    """One round trip (``exit_*`` are ``None`` while it is still open).

    Attributes
    ----------
    symbol : str
        ``BASE/QUOTE``.
    side : {"long", "short"}
    size : float
        Base units entered (> 0); for an open trade, the size still open.
    entry_time, exit_time : int
        Fill times, ns UTC (the open time of the fill bar).
    entry_bar, exit_bar : int
        0-based row of the fill bar in the symbol's data file.
    entry_price, exit_price : float
        Fill prices (quote/base), size-weighted averages if there were several fills.
    gross_pnl : float
        ``dir * size * (exit_price - entry_price)`` (quote), ``dir`` = +1 long / -1 short.
    fees : float
        Commissions of the entry and exit fills (quote).
    net_pnl : float
        ``gross_pnl - fees`` (quote).
    return_on_notional : float or None
        ``net_pnl / (size * entry_price)``.
    exit_reason : str or None
        ``"signal"`` (opposite signal), ``"stop_loss"``, ``"take_profit"``, ``"end"``
        (closed at the end of the data) ...
    """

    symbol: str
    side: Literal["long", "short"]
    size: float
    entry_time: int
    exit_time: int | None = None
    entry_bar: int
    exit_bar: int | None = None
    entry_price: float
    exit_price: float | None = None
    gross_pnl: float = 0.0
    fees: float = 0.0
    net_pnl: float = 0.0
    return_on_notional: float | None = None
    exit_reason: str | None = None


class BacktestStats(BaseModel):
    """Statistics of one equity curve and its trades (see :func:`backend.backtest.stats`).

    Undefined values (too few points, no losing trade, zero variance ...) are ``None``.
    """

    start_time: int | None = None  # first curve point, ns UTC
    end_time: int | None = None
    bars: int = 0  # curve points
    periods_per_year: float
    initial_equity: float
    final_equity: float | None = None
    total_return: float | None = None  # final / initial - 1
    cagr: float | None = None
    sharpe: float | None = None
    sortino: float | None = None
    calmar: float | None = None
    max_drawdown: float | None = None  # positive fraction of the peak
    max_drawdown_duration_bars: int | None = None
    max_drawdown_duration_ns: int | None = None
    trades: int = 0  # closed trades
    wins: int = 0
    losses: int = 0
    win_rate: float | None = None
    profit_factor: float | None = None
    exposure: float | None = None  # fraction of curve points with a position open
    net_pnl: float = 0.0  # closed trades
    fees_paid: float = 0.0  # every fill, open trades included
    open_trades: int = 0


class Curve(BaseModel):
    """An equity curve: parallel arrays (kept out of the JSON report)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    time: np.ndarray  # int64 ns UTC, ascending
    equity: np.ndarray  # float64 quote currency, mark-to-market at the bar's close
    in_market: np.ndarray  # bool, a position is open after the bar


class BacktestResult(BaseModel):
    """One backtest: its inputs, the trades, the account and per-symbol statistics."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    sizing: Sizing
    strategy: str
    params: dict[str, Any]
    symbols: list[str]
    cash: float  # initial cash (quote)
    commission: float  # fraction of notional, per side
    slippage_bps: float = 0.0
    whole_units: bool = False
    stats: BacktestStats
    symbol_stats: dict[str, BacktestStats] = Field(default_factory=dict)
    trades: list[BacktestTrade] = Field(default_factory=list)
    open_trades: list[BacktestTrade] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)
    curve: Curve | None = Field(default=None, exclude=True)
    symbol_curves: dict[str, Curve] = Field(default_factory=dict, exclude=True)

    def to_json(self, indent: bool = True) -> bytes:
        """JSON bytes (orjson); NaN and infinities become ``null``; curves left out."""
        opt = orjson.OPT_INDENT_2 if indent else 0
        return orjson.dumps(json_safe(self.model_dump(mode="json")), option=opt)
