"""Direction signals per bar for the all-in backtest and the optimizer.

The all-in mode trades every *direction* signal of a strategy: +1 (go long) or -1 (go
short) at the close of bar ``i``, 0 for none.  It ignores confidence, stop loss and take
profit: those are the risk pipeline's inputs (``--sizing risk``).

A :class:`SignalSource` is bound to one series of bars and gives the side array for any
parameter set.  Two kinds:

* :class:`GenerateSignals` (any strategy): ``strategy.generate(bars, params).side``.
  Its first signal can come late: ``generate`` drops signals whose confidence or ATR is
  not yet defined (``SmaCross`` waits ``slow + 100`` bars for its confidence
  normaliser).
* a **kernel** (:data:`KERNELS`, e.g. :class:`SmaCrossSignals`): the strategy's own
  direction rule, vectorised, with what several parameter sets share computed once per
  series (the rolling means of every window length, memoised).  It uses the same
  indicator functions as the strategy (:func:`backend.indicators.rolling_mean`), so its
  sides equal ``generate``'s bit for bit wherever ``generate`` emits a signal, and it
  signals from the first bar where the rule itself is defined (bar ``slow``), like
  backtesting.py's ``SmaCross``.  ``tests/unit/backend/backtest/test_backtest_signals.py`` pins the
  kernel to the strategy.

:func:`signal_source` picks the kernel when there is one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np

from backend import indicators as ind
from backend.strategies.base import OHLCV, Strategy
from backend.strategies.registry import STRATEGIES, get_strategy
from backend.strategies.sma_cross import SmaCross

__all__ = ["KERNELS", "GenerateSignals", "SignalSource", "SmaCrossSignals", "signal_source"]


class SignalSource(ABC):
    """Direction signals of one strategy over one series of bars.

    Parameters
    ----------
    strategy : Strategy
        The strategy whose parameters are validated (and, for
        :class:`GenerateSignals`, whose ``generate`` is called).
    bars : OHLCV
        Shape ``(n,)`` arrays, time ascending (prices quote/base).
    """

    def __init__(self, strategy: Strategy, bars: OHLCV) -> None:
        self.strategy = strategy
        self.bars = bars
        self.n = len(bars.close)

    def side(self, params: Mapping[str, Any] | None = None) -> np.ndarray:
        """Signals for every bar: int8 shape ``(n,)``, +1 buy / -1 sell / 0 none, acting
        at the bar's close.  ``params`` are validated (ValueError naming the parameter)."""
        return self.side_resolved(self.strategy.resolve_params(params))

    @abstractmethod
    def side_resolved(self, params: dict[str, int | float]) -> np.ndarray:
        """:meth:`side` for already resolved parameters (no validation: the fast path)."""


class GenerateSignals(SignalSource):
    """``strategy.generate(bars, params).side`` (works for every strategy)."""

    def side_resolved(self, params: dict[str, int | float]) -> np.ndarray:
        return self.strategy.generate(self.bars, params).side


class SmaCrossSignals(SignalSource):
    """``SmaCross``'s crossing rule: buy when ``d[i] > 0 >= d[i-1]``, sell when
    ``d[i] < 0 <= d[i-1]``, ``d = SMA(close, fast) - SMA(close, slow)``.

    The rolling mean of each window length is computed once per series
    (:meth:`rolling_mean`, memoised), then each parameter set costs a few array
    operations.
    """

    def __init__(self, strategy: Strategy, bars: OHLCV) -> None:
        super().__init__(strategy, bars)
        self.close = np.ascontiguousarray(bars.close, dtype=np.float64)
        self._means: dict[int, np.ndarray] = {}

    def rolling_mean(self, n: int) -> np.ndarray:
        """``backend.indicators.rolling_mean(close, n)``, computed once per ``n``."""
        m = self._means.get(n)
        if m is None:
            m = ind.rolling_mean(self.close, n)
            m.setflags(write=False)
            self._means[n] = m
        return m

    def side_resolved(self, params: dict[str, int | float]) -> np.ndarray:
        d = self.rolling_mean(int(params["fast"])) - self.rolling_mean(int(params["slow"]))
        out = np.zeros(self.n, dtype=np.int8)
        if self.n < 2:
            return out
        with np.errstate(invalid="ignore"):
            up, down = d > 0, d < 0
            # NaN compares False both ways, as in SmaCross (d_prev = lag(d))
            buy = up[1:] & (d[:-1] <= 0)
            sell = down[1:] & (d[:-1] >= 0)
        out[1:] = buy
        out[1:] -= sell
        return out


#: Vectorised direction rules by strategy name (others fall back to ``generate``).
KERNELS: dict[str, type[SignalSource]] = {SmaCross.name: SmaCrossSignals}


def signal_source(strategy: str | Strategy, bars: OHLCV) -> SignalSource:
    """The best :class:`SignalSource` for ``strategy`` on ``bars``.

    Parameters
    ----------
    strategy : str or Strategy
        Registry name (``"sma_cross"``, ``"momentum"`` ...) or an instance.
    bars : OHLCV

    Raises
    ------
    ValueError
        Unknown strategy name (the message lists the known ones).
    """
    strat = get_strategy(strategy) if isinstance(strategy, str) else strategy
    kernel = KERNELS.get(strat.name)
    if kernel is None or type(strat) is not STRATEGIES.get(strat.name):
        return GenerateSignals(strat, bars)  # no kernel, or a subclass that may change the rule
    return kernel(strat, bars)
