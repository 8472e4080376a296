"""The OHLCV bar-array protocol every strategy, feature and backtest reads.

Candles loaded from CSV (:class:`backend.marketdata.candles.Candles`) and a strategy
runner's window both satisfy it.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

__all__ = ["OHLCV"]


class OHLCV(Protocol):
    """Anything with parallel bar arrays of shape ``(n,)`` (e.g. ``marketdata.Candles``).

    ``time`` int64 ns UTC (bar open time); ``open, high, low, close`` float64
    quote/base; ``volume`` float64 base units.
    """

    time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
