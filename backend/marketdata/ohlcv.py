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

    @property
    def time(self) -> np.ndarray: ...
    @property
    def open(self) -> np.ndarray: ...
    @property
    def high(self) -> np.ndarray: ...
    @property
    def low(self) -> np.ndarray: ...
    @property
    def close(self) -> np.ndarray: ...
    @property
    def volume(self) -> np.ndarray: ...
