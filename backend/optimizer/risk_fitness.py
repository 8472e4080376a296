"""``risk`` fitness: the mesh's own trading model scores a parameter set (the default).

Each symbol trades its own account of ``cash`` over the window's bars, through the model
the mesh trades (compliance, risk sizing from the stop distance with every cap, the
confidence gate, the circuit breaker, paper fills at the next open with fee and
slippage, stops and targets inside the bar), as in ``tradingmesh backtest --sizing
risk`` on the window's candles: indicators warm up inside the window.  The account's
equity after each bar is scored by :func:`backend.backtest.fast.score_equity`.

Two engines give the same scores to the bit:

* ``kernel`` (default): one vectorised ``generate`` of the strategy on the window, then
  the compiled loop :func:`backend.backtest.kernel.run_kernel`.  The settings'
  arrays do not depend on the parameters, so they are built once per symbol, and the
  window's indicators (a rolling mean of the close for each window length ...) once per
  window (:mod:`backend.indicator_memo`).
* ``python``: :func:`backend.mesh.simulate.simulate` (the reference, and the fall-back
  for what the kernel does not model, the portfolio-VaR limit, and for a strategy
  whose whole-series ``generate`` is not what the runner trades, a self-training
  ``ml_classifier``; see :attr:`backend.strategies.base.Strategy.finite_memory`).

Units: cash quote currency, commission a fraction of notional per side, times ns UTC.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from backend.backtest import kernel as kn
from backend.backtest.engine import backtest_settings
from backend.backtest.fast import score_equity
from backend.backtest.kernel_run import config_arrays, kernel_signals, supported
from backend.channels import compact_symbol
from backend.indicator_memo import IndicatorMemo, memoised
from backend.marketdata.candles import Candles
from backend.settings import Settings
from backend.strategies.base import Strategy
from backend.strategies.build import config_of
from backend.strategies.config import StrategyConfig

__all__ = ["ENGINES", "RiskScorer"]

#: How the risk fitness replays the model.
ENGINES: tuple[str, ...] = ("kernel", "python")
#: Windows whose candles and indicator memo a scorer keeps (walk-forward folds x symbols).
_MAX_WINDOWS = 16
_NO_ARRAY = np.zeros(0)


class RiskScorer:
    """Scores parameter sets with the mesh's model over windows of several series.

    Parameters
    ----------
    strategy : Strategy
        The strategy instance (parameters are validated by the caller).
    candles : sequence of Candles
        One series per symbol, time ascending; each symbol is its own account.
    cash, commission : float
        Initial cash per account (quote) and fee per side (fraction of notional).
    settings : Settings or None
        Compliance, risk and paper settings (``None``: the defaults).
    objective : str
        One of :data:`backend.optimizer.names.GA_OBJECTIVES`.
    ppy : sequence of float
        Periods per year of each series.
    engine : {"kernel", "python"}
        ``python`` forces :func:`~backend.mesh.simulate.simulate`; ``kernel`` uses it only
        where the kernel does not model the settings.
    """

    def __init__(self, strategy: Strategy, candles: Sequence[Candles], cash: float,
                 commission: float, settings: Settings | None, objective: str,
                 ppy: Sequence[float], engine: Literal["kernel", "python"] = "kernel") -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r} (known: {', '.join(ENGINES)})")
        self.strategy = strategy
        self.candles = list(candles)
        self.cash, self.objective, self.ppy = cash, objective, list(ppy)
        try:
            cfg: StrategyConfig | str = config_of(strategy)
        except ValueError:
            cfg = StrategyConfig(name=strategy.name)
        base = settings or Settings()
        defaults = strategy.resolve_params(None)
        self.settings = [backtest_settings(base, [c.symbol], cfg, defaults, cash, commission)
                         for c in self.candles]
        slow = engine == "python" or supported(self.settings[0]) or not strategy.finite_memory
        self.engine = "python" if slow else "kernel"
        self._windows: OrderedDict[tuple[int, int, int], tuple[Candles, IndicatorMemo]] = \
            OrderedDict()
        self._arrays = []
        for c, s in zip(self.candles, self.settings, strict=True):
            fcfg, icfg = config_arrays(s, positions=False)
            restricted = {compact_symbol(x) for x in s.compliance.restricted_symbols}
            self._arrays.append((fcfg, icfg, np.array([compact_symbol(c.symbol) in restricted])))

    def score(self, rows: Sequence[tuple[int, int]], params: dict[str, Any]) -> float:
        """Mean score over the symbols of ``params`` on the bar rows ``[a, b)`` of each
        (``-inf``: a window under 2 bars, or an undefined score)."""
        scores = []
        for k, (a, b) in enumerate(rows):
            if b - a < 2:
                return float("-inf")
            eq = self.equity(k, a, b, params)
            scores.append(score_equity(eq, self.cash, self.ppy[k], self.objective))
        if any(s == float("-inf") for s in scores):
            return float("-inf")
        return float(sum(scores) / len(scores))

    def _window(self, k: int, a: int, b: int) -> tuple[Candles, IndicatorMemo]:
        """Symbol ``k``'s candles ``[a, b)`` and their indicator memo (one per window:
        the same arrays for every parameter set, so their indicators are computed once)."""
        key = (k, a, b)
        got = self._windows.get(key)
        if got is None:
            c = self.candles[k].slice(a, b)
            got = (c, IndicatorMemo([c.open, c.high, c.low, c.close, c.volume]))
            self._windows[key] = got
            while len(self._windows) > _MAX_WINDOWS:
                self._windows.popitem(last=False)
        else:
            self._windows.move_to_end(key)
        return got

    def equity(self, k: int, a: int, b: int, params: dict[str, Any]) -> np.ndarray:
        """Equity (quote) of symbol ``k``'s account after each bar of rows ``[a, b)``."""
        settings = self.settings[k]
        if self.engine == "python":
            return self._equity_python(settings, self.candles[k].slice(a, b), params)
        c, memo = self._window(k, a, b)
        with memoised(memo):
            frame = self.strategy.generate(c, params)
        side, conf, stop, tp = kernel_signals(frame, self.strategy.warmup(params))
        n = len(side)
        fcfg, icfg, restricted = self._arrays[k]
        out = kn.run_kernel(
            np.zeros(n, dtype=np.int64), np.asarray(c.time, dtype=np.int64),
            np.asarray(c.open, dtype=np.float64), np.asarray(c.high, dtype=np.float64),
            np.asarray(c.low, dtype=np.float64), np.asarray(c.close, dtype=np.float64),
            side, conf, stop, tp, 1, restricted, fcfg, icfg)
        return np.asarray(out[0])

    def _equity_python(self, settings: Settings, c: Candles,
                       params: dict[str, Any]) -> np.ndarray:
        from backend.mesh.simulate import simulate  # the reference path, imported on use

        chosen = settings.default_strategy.model_copy(update={"params": dict(params)})
        s = settings.model_copy(update={"default_strategy": chosen})
        res = simulate(s, {c.symbol: c}, strategies={c.symbol: self.strategy})
        return np.array([m.equity for m in res.marks]) if res.marks else _NO_ARRAY
