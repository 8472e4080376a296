"""Incremental signal generation for the live strategy agent.

:class:`StrategyRunner` keeps a growing (capped) bar history and, for each new bar,
returns the signal :meth:`Strategy.generate` gives at that bar.  It calls the very
same vectorised code as the backtester on a tail of the history, so live and
backtest signals are identical as long as the strategy has *finite memory*: the
value at bar ``i`` depends only on the last ``warmup`` bars.

That holds for the built-in strategies because they use only finite-window,
bit-exact indicators: :func:`~backend.indicators.rolling_mean` (each window summed
on its own), SMA-based ATR (``rolling_mean`` of TA-Lib ``TRANGE``) and the point-wise
TA-Lib ``ROC``.  Wilder-smoothed TA-Lib ``ATR``/``RSI``, ``EMA``, and even TA-Lib's
running-sum ``SMA`` (its last bits depend on where the series starts) would break
the equality, so strategies must not use them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from backend.marketdata.candles import Candles
from backend.strategies.base import SignalPoint, Strategy

__all__ = ["StrategyRunner"]


class StrategyRunner:
    """Feed bars one at a time; get the newest bar's signal.

    Parameters
    ----------
    strategy : Strategy
        The strategy instance (see :func:`backend.strategies.registry.get_strategy`).
    params : mapping, optional
        Parameter overrides, validated once here.
    symbol : str
        ``BASE/QUOTE`` (informational; carried on :meth:`history`).
    max_history : int
        Bars kept (default 5000); must be >= the strategy's warmup.
    eval_window : int, optional
        Bars passed to ``generate`` for each new bar (default
        ``min(max_history, max(2 * warmup, 256))``); must be >= warmup.  Any value
        >= warmup gives the same signals; smaller is faster.

    Notes
    -----
    Bar ``index`` in the returned :class:`SignalPoint` counts every bar fed since
    construction (0-based), so it equals the index in a full-series ``generate``.
    """

    def __init__(
        self,
        strategy: Strategy,
        params: Mapping[str, Any] | None = None,
        *,
        symbol: str = "",
        max_history: int = 5000,
        eval_window: int | None = None,
    ) -> None:
        self.strategy = strategy
        self.params = strategy.resolve_params(params)
        self.symbol = symbol
        self.warmup = strategy.warmup(self.params)
        if max_history < self.warmup:
            raise ValueError(
                f"max_history ({max_history}) must be >= the strategy's warmup ({self.warmup})"
            )
        if eval_window is None:
            eval_window = min(max_history, max(2 * self.warmup, 256))
        if not self.warmup <= eval_window <= max_history:
            raise ValueError(
                f"eval_window ({eval_window}) must be in [warmup {self.warmup}, "
                f"max_history {max_history}]"
            )
        self.max_history = max_history
        self.eval_window = eval_window
        cap = 2 * max_history
        self._time = np.zeros(cap, dtype=np.int64)
        self._ohlcv = np.zeros((5, cap), dtype=np.float64)
        self._start = 0
        self._n = 0
        self._seen = 0

    def __len__(self) -> int:
        """Bars currently held (<= ``max_history``)."""
        return self._n

    @property
    def bars_seen(self) -> int:
        """Bars fed since construction."""
        return self._seen

    def append(
        self, time: int, open: float, high: float, low: float, close: float, volume: float
    ) -> None:
        """Add one closed bar (time ns UTC, prices quote/base, volume base units).

        Raises
        ------
        ValueError
            ``time`` is not after the previous bar's.
        """
        if self._n and time <= self._time[self._start + self._n - 1]:
            raise ValueError(
                f"bar time {time} is not after the previous bar's "
                f"({int(self._time[self._start + self._n - 1])})"
            )
        cap = self._time.size
        end = self._start + self._n
        if end == cap:  # compact: keep the newest max_history - 1 bars at the front
            keep = self.max_history - 1
            self._time[:keep] = self._time[end - keep : end]
            self._ohlcv[:, :keep] = self._ohlcv[:, end - keep : end]
            self._start, self._n, end = 0, keep, keep
        self._time[end] = time
        self._ohlcv[:, end] = (open, high, low, close, volume)
        self._n += 1
        self._seen += 1
        if self._n > self.max_history:
            self._start += 1
            self._n -= 1

    def with_params(
        self, params: Mapping[str, Any] | None = None, strategy: Strategy | None = None
    ) -> StrategyRunner:
        """A new runner of ``strategy`` (default: this one's) with ``params`` that holds this
        runner's bars and count of bars seen (a hot reload of the parameters).

        Because strategies have finite memory, its signals from the next bar on are those
        of a runner that ran with ``params`` from the start.

        Raises
        ------
        ValueError
            Invalid ``params``, or a warmup longer than ``max_history``.
        """
        new = StrategyRunner(strategy or self.strategy, params, symbol=self.symbol,
                             max_history=self.max_history)
        lo, hi = self._start, self._start + self._n
        new._time[: self._n] = self._time[lo:hi]
        new._ohlcv[:, : self._n] = self._ohlcv[:, lo:hi]
        new._n, new._seen = self._n, self._seen
        return new

    def history(self, last: int | None = None) -> Candles:
        """The newest ``last`` bars held (all by default) as :class:`Candles` (copies)."""
        k = self._n if last is None else min(last, self._n)
        lo, hi = self._start + self._n - k, self._start + self._n
        o, h, lw, c, v = (row[lo:hi].copy() for row in self._ohlcv)
        return Candles(self.symbol, self._time[lo:hi].copy(), o, h, lw, c, v)

    def on_bar(
        self, time: int, open: float, high: float, low: float, close: float, volume: float
    ) -> SignalPoint | None:
        """Append a closed bar and return its signal, or ``None``.

        Equals ``strategy.generate(all_bars_so_far, params).point(index)``.
        """
        self.append(time, open, high, low, close, volume)
        return self.latest()

    @property
    def last_time(self) -> int | None:
        """Open time (ns) of the newest bar held, ``None`` before the first."""
        return int(self._time[self._start + self._n - 1]) if self._n else None

    def latest(self) -> SignalPoint | None:
        """The signal of the newest bar held (what :meth:`on_bar` returned for it)."""
        if self._n < self.warmup:
            return None
        frame = self.strategy.generate(self.history(self.eval_window), self.params)
        point = frame.point(len(frame) - 1)
        if point is None:
            return None
        return replace(point, index=self._seen - 1)
