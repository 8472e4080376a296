"""Backtester: the mesh's pipeline (``risk`` sizing) or all-in sizing over candles.

* :func:`run_backtest` -- the entry point (``tradingmesh backtest``);
* :class:`AllInEvaluator` -- the fast, vectorised all-in scorer for the optimizer;
* :func:`compute_stats` -- the statistics of an equity curve and its trades;
* :func:`write_plot` (:mod:`backend.backtest.plot`, needs ``plotly``) -- the chart.

Units everywhere: prices in quote currency per base unit, sizes in base units, cash,
P&L and fees in quote currency, times in ns since the Unix epoch (UTC).
"""

from __future__ import annotations

from backend.backtest.allin import AllInRun, run_allin
from backend.backtest.engine import SIZINGS, backtest_settings, run_backtest
from backend.backtest.fast import OBJECTIVES, AllInEvaluator, FastResult, allin_vectorised
from backend.backtest.models import BacktestResult, BacktestStats, BacktestTrade, Curve
from backend.backtest.signals import KERNELS, SignalSource, signal_source
from backend.backtest.stats import compute_stats, drawdown_duration, infer_periods_per_year

__all__ = [
    "KERNELS",
    "OBJECTIVES",
    "SIZINGS",
    "AllInEvaluator",
    "AllInRun",
    "BacktestResult",
    "BacktestStats",
    "BacktestTrade",
    "Curve",
    "FastResult",
    "SignalSource",
    "allin_vectorised",
    "backtest_settings",
    "compute_stats",
    "drawdown_duration",
    "infer_periods_per_year",
    "run_allin",
    "run_backtest",
    "signal_source",
]
