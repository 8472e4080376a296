"""Trading strategies: pure, vectorised signal generators and their registry.

``STRATEGIES`` maps a strategy name (as used in the configuration) to its class;
:func:`get_strategy` returns an instance.  See :mod:`backend.strategies.base` for the
interface, :mod:`backend.strategies.registry` for the registry,
:mod:`backend.strategies.config` for the configuration models and the strategies they
build, and :class:`StrategyRunner` for bar-by-bar (live) use.
"""

from __future__ import annotations

from backend.strategies.base import ParamSpec, SignalFrame, SignalPoint, Strategy
from backend.strategies.bollinger_reversion import BollingerReversion
from backend.strategies.config import build_named, build_strategy, config_of
from backend.strategies.momentum import Momentum
from backend.strategies.registry import (
    BENCHMARK_STRATEGIES,
    STRATEGIES,
    get_strategy,
    strategies_json,
)
from backend.strategies.rsi_reversion import RsiReversion
from backend.strategies.runner import StrategyRunner
from backend.strategies.sma_cross import SmaCross
from backend.strategies.vwap_momentum import VwapMomentum

__all__ = [
    "BENCHMARK_STRATEGIES",
    "STRATEGIES",
    "BollingerReversion",
    "Momentum",
    "ParamSpec",
    "RsiReversion",
    "SignalFrame",
    "SignalPoint",
    "SmaCross",
    "Strategy",
    "StrategyRunner",
    "VwapMomentum",
    "build_named",
    "build_strategy",
    "config_of",
    "get_strategy",
    "strategies_json",
]
