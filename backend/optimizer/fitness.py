"""Fitness: the score of one parameter set over one time window of every symbol.

A :class:`FitnessContext` holds what every evaluation shares (the bars of each symbol,
cash, commission, objective, sizing) and is small enough to ship once to each worker
process or Dask worker.  A :class:`Window` names a half-open time range ``[start, end)``
and, per symbol, the bar rows inside it.

``risk`` sizing (the default)
    The mesh's own trading model (:mod:`backend.optimizer.risk_fitness`): compliance,
    risk sizing from the stop distance, the circuit breaker, paper fills with stops and
    targets, on the candles cut to the window (indicators warm up inside the window),
    through the compiled kernel (:mod:`backend.backtest.kernel`) or, with ``engine =
    "python"`` or settings the kernel does not model, :func:`backend.mesh.simulate.
    simulate` -- the same scores to the bit.  The account's equity is scored by
    :func:`~backend.backtest.fast.score_equity`.
All-in sizing (for comparison with backtesting.py)
    The fast vectorised evaluator (:mod:`backend.backtest.fast`): the strategy's
    direction signals are computed **over the whole series** once per parameter set
    (a signal at bar ``i`` only uses bars ``0..i``, so the window's signals see the
    bars before the window as indicator history, never bars after it), then cut to the
    window; the account starts flat with ``cash`` at the window's first bar, trades
    all-in at next-bar opens (:func:`~backend.backtest.fast.allin_vectorised`) and is
    scored by :func:`~backend.backtest.fast.score_equity`.

With several symbols the fitness is the **mean of the per-symbol scores**, each symbol
trading its own account of ``cash`` (so one undefined score, ``-inf``, makes the mean
``-inf``).  Undefined scores (no trade, no variance ...) and infeasible parameters are
``-inf``.

Units: cash in quote currency, commission a fraction of notional per side, times in
ns UTC.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from backend.backtest.fast import OBJECTIVES, allin_vectorised, score_equity
from backend.backtest.signals import SignalSource, signal_source
from backend.backtest.stats import infer_periods_per_year
from backend.marketdata.candles import Candles
from backend.optimizer.names import GA_OBJECTIVES, SIZINGS
from backend.optimizer.risk_fitness import RiskScorer
from backend.strategies.base import Strategy
from backend.strategies.registry import get_strategy

__all__ = [
    "GA_OBJECTIVES",
    "SIZINGS",
    "FitnessContext",
    "Scorer",
    "Window",
    "score_batch",
]

assert set(GA_OBJECTIVES) <= set(OBJECTIVES)


@dataclass(frozen=True)
class Window:
    """A half-open time window and the bar rows of each symbol inside it.

    Attributes
    ----------
    start, end : int
        ``[start, end)`` in ns UTC (bar open times).
    rows : tuple of (int, int)
        Per symbol, in the context's symbol order: ``[first, stop)`` row indices.
    """

    start: int
    end: int
    rows: tuple[tuple[int, int], ...]

    def bars(self) -> int:
        """Bars inside the window, all symbols together."""
        return sum(b - a for a, b in self.rows)


@dataclass(frozen=True, eq=False)
class FitnessContext:
    """Everything an evaluation needs except the window and the parameters (picklable).

    Attributes
    ----------
    strategy : str or Strategy
        Registry name, or a strategy instance (e.g. one built from configuration by
        :func:`backend.strategies.build.build_strategy`: a ``combined`` portfolio or a regime
        gate); instances pickle with the context to worker processes.
    candles : tuple of Candles
        One series per symbol, time ascending.
    cash : float
        Initial cash of each symbol's account (quote currency).
    commission : float
        Fee, fraction of notional per side.
    objective : str
        One of :data:`GA_OBJECTIVES`.
    sizing : {"risk", "all-in"}
        ``risk``: the mesh's trading model (default); ``all-in``: buy with the whole
        equity on a crossing, reverse on the next.
    whole_units : bool
        All-in only: whole base units.
    periods_per_year : float or None
        Annualisation; inferred from each symbol's bar spacing when ``None``.
    settings : Any
        ``risk`` only: the :class:`backend.settings.Settings` (compliance, risk, paper).
    engine : {"kernel", "python"}
        ``risk`` only: the compiled kernel or :func:`backend.mesh.simulate.simulate`
        (same scores; see :mod:`backend.optimizer.risk_fitness`).
    token : str
        Unique id of this context (the workers' cache key).
    """

    strategy: str | Strategy
    candles: tuple[Candles, ...]
    cash: float
    commission: float
    objective: str = "sharpe"
    sizing: Literal["all-in", "risk"] = "risk"
    whole_units: bool = False
    periods_per_year: float | None = None
    settings: Any = None
    engine: Literal["kernel", "python"] = "kernel"
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        if isinstance(self.strategy, str):
            get_strategy(self.strategy)  # ValueError naming the known ones
        if self.objective not in GA_OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r} "
                             f"(known: {', '.join(GA_OBJECTIVES)})")
        if self.sizing not in SIZINGS:
            raise ValueError(f"unknown sizing {self.sizing!r} (known: {', '.join(SIZINGS)})")
        if not self.candles:
            raise ValueError("no candles to optimize on")
        if not (math.isfinite(self.cash) and self.cash > 0):
            raise ValueError(f"cash must be > 0, got {self.cash!r}")
        if not (math.isfinite(self.commission) and 0 <= self.commission < 0.1):
            raise ValueError(f"commission must be in [0, 0.1), got {self.commission!r}")

    @property
    def symbols(self) -> list[str]:
        """``BASE/QUOTE`` of each series, in order."""
        return [c.symbol for c in self.candles]

    def window(self, start: int, end: int) -> Window:
        """The :class:`Window` ``[start, end)`` (ns UTC) over every symbol."""
        rows = tuple(
            (int(np.searchsorted(c.time, start, "left")), int(np.searchsorted(c.time, end, "left")))
            for c in self.candles)
        return Window(int(start), int(end), rows)

    def full_window(self) -> Window:
        """Every bar of every symbol."""
        start = min(int(c.time[0]) for c in self.candles)
        end = max(int(c.time[-1]) for c in self.candles) + 1
        return self.window(start, end)


class Scorer:
    """Scores parameter sets for one :class:`FitnessContext` (one per process).

    Builds each symbol's signal source once, so the memoised indicators of a kernel
    (e.g. SmaCross' rolling means) serve every window and parameter set.
    """

    def __init__(self, ctx: FitnessContext) -> None:
        self.ctx = ctx
        self.strategy = get_strategy(ctx.strategy) if isinstance(ctx.strategy, str) \
            else ctx.strategy
        self.sources: list[SignalSource] = [signal_source(self.strategy, c) for c in ctx.candles]
        self.open = [np.ascontiguousarray(c.open, dtype=np.float64) for c in ctx.candles]
        self.close = [np.ascontiguousarray(c.close, dtype=np.float64) for c in ctx.candles]
        self.ppy = [float(ctx.periods_per_year or infer_periods_per_year(c.time))
                    for c in ctx.candles]
        self._lock = threading.Lock()
        self._risk: RiskScorer | None = None

    @property
    def risk(self) -> RiskScorer:
        """The ``risk`` fitness of this context (built on first use)."""
        if self._risk is None:
            self._risk = RiskScorer(self.strategy, self.ctx.candles, self.ctx.cash,
                                    self.ctx.commission, self.ctx.settings,
                                    self.ctx.objective, self.ppy, self.ctx.engine)
        return self._risk

    def score(self, window: Window, params: Mapping[str, Any]) -> float:
        """Fitness of ``params`` on ``window`` (``-inf``: infeasible or undefined)."""
        try:
            resolved = self.strategy.resolve_params(params)
        except ValueError:
            return float("-inf")
        if self.ctx.sizing == "risk":
            return self._score_risk(window, resolved)
        scores = []
        for k, (a, b) in enumerate(window.rows):
            if b - a < 2:
                return float("-inf")
            with self._lock:  # the kernels' memo is not thread-safe (Dask threads)
                side = self.sources[k].side_resolved(resolved)
            res = allin_vectorised(self.open[k][a:b], self.close[k][a:b], side[a:b],
                                   self.ctx.cash, self.ctx.commission,
                                   whole_units=self.ctx.whole_units)
            scores.append(score_equity(res.equity, self.ctx.cash, self.ppy[k],
                                       self.ctx.objective))
        return _mean(scores)

    def _score_risk(self, window: Window, params: dict[str, int | float]) -> float:
        return self.risk.score(window.rows, params)


def _mean(scores: Sequence[float]) -> float:
    if not scores or any(s == float("-inf") for s in scores):
        return float("-inf")
    return float(sum(scores) / len(scores))


# ------------------------------------------------------------------ worker side
#: Scorers of the contexts this process has seen, by token (a few at most).
_SCORERS: OrderedDict[str, Scorer] = OrderedDict()
_SCORERS_LOCK = threading.Lock()
_MAX_SCORERS = 4


def scorer_for(ctx: FitnessContext) -> Scorer:
    """This process's :class:`Scorer` of ``ctx`` (built on first use, then cached)."""
    with _SCORERS_LOCK:
        s = _SCORERS.get(ctx.token)
        if s is None:
            s = Scorer(ctx)
            _SCORERS[ctx.token] = s
            while len(_SCORERS) > _MAX_SCORERS:
                _SCORERS.popitem(last=False)
        else:
            _SCORERS.move_to_end(ctx.token)
        return s


def score_batch(ctx: FitnessContext, window: Window,
                params: Sequence[Mapping[str, Any]]) -> list[float]:
    """Scores of ``params`` on ``window``, in order (what workers run)."""
    s = scorer_for(ctx)
    return [s.score(window, p) for p in params]
