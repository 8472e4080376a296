"""Trading strategies: pure, vectorised signal generators and their registry.

``STRATEGIES`` maps a strategy name (as used in the configuration) to its class;
:func:`get_strategy` returns an instance.  See :mod:`backend.strategies.base` for the
interface and :class:`StrategyRunner` for bar-by-bar (live) use.
"""

from __future__ import annotations

from backend.strategies.base import ParamSpec, SignalFrame, SignalPoint, Strategy
from backend.strategies.momentum import Momentum
from backend.strategies.runner import StrategyRunner
from backend.strategies.sma_cross import SmaCross

__all__ = [
    "STRATEGIES",
    "Momentum",
    "ParamSpec",
    "SignalFrame",
    "SignalPoint",
    "SmaCross",
    "Strategy",
    "StrategyRunner",
    "get_strategy",
]

#: Every known strategy, by name.
STRATEGIES: dict[str, type[Strategy]] = {cls.name: cls for cls in (SmaCross, Momentum)}


def get_strategy(name: str) -> Strategy:
    """A new instance of the strategy called ``name``.

    Raises
    ------
    ValueError
        Unknown name; the message lists the known ones.
    """
    try:
        return STRATEGIES[name]()
    except KeyError:
        known = ", ".join(sorted(STRATEGIES))
        raise ValueError(f"unknown strategy {name!r} (known: {known})") from None
