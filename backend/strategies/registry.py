"""The strategy registry: every strategy by its configured name, and their parameters.

``STRATEGIES`` maps a strategy name (as used in the configuration) to its class;
:func:`get_strategy` returns a new instance; :func:`strategies_json` lists them with their
declared parameters (``tradingmesh strategies --json``).
"""

from __future__ import annotations

import json

from backend.strategies.base import Strategy
from backend.strategies.bollinger_reversion import BollingerReversion
from backend.strategies.every_tick import EveryTick
from backend.strategies.ml_classifier import MlClassifier
from backend.strategies.momentum import Momentum
from backend.strategies.rsi_reversion import RsiReversion
from backend.strategies.sma_cross import SmaCross
from backend.strategies.smc import SmartMoney
from backend.strategies.vwap_momentum import VwapMomentum

__all__ = ["BENCHMARK_STRATEGIES", "STRATEGIES", "get_strategy", "strategies_json"]

#: Every known strategy, by name.
STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (SmaCross, Momentum, MlClassifier,
                              VwapMomentum, RsiReversion, BollingerReversion,
                              SmartMoney)}

#: Benchmark-only strategies (``benchmarks/mesh.py``): built by name, never listed.
BENCHMARK_STRATEGIES: dict[str, type[Strategy]] = {EveryTick.name: EveryTick}


def get_strategy(name: str) -> Strategy:
    """A new instance of the strategy called ``name``.

    ``name`` may also be one of :data:`BENCHMARK_STRATEGIES` (not in the listings).

    Raises
    ------
    ValueError
        Unknown name; the message lists the known ones.
    """
    try:
        return STRATEGIES[name]()
    except KeyError:
        if name in BENCHMARK_STRATEGIES:
            return BENCHMARK_STRATEGIES[name]()
        known = ", ".join(sorted(STRATEGIES))
        raise ValueError(f"unknown strategy {name!r} (known: {known})") from None


def strategies_json() -> str:
    """Every registered strategy with its declared parameters, as indented JSON.

    ``[{"name": "sma_cross", "params": [{"name", "kind", "low", "high", "default",
    "doc"}, ...]}, ...]`` in registry order; ``low``/``high``/``default`` are integers for
    ``int`` parameters (``tradingmesh strategies --json``).
    """

    def num(kind: str, v: float) -> int | float:
        return int(v) if kind == "int" else float(v)

    out = [
        {"name": name, "params": [
            {"name": p.name, "kind": p.kind, "low": num(p.kind, p.low),
             "high": num(p.kind, p.high), "default": num(p.kind, p.default), "doc": p.doc}
            for p in cls.params]}
        for name, cls in STRATEGIES.items()
    ]
    return json.dumps(out, indent=2)
