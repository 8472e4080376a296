"""Benchmark-only strategy: a BUY signal on every bar (``"every_tick"``).

For ``benchmarks/mesh.py`` only, never for trading: it makes every tick of the mesh
travel the whole order path (strategy -> compliance -> risk -> execution -> venue), so
the tick-to-order latency can be measured on every tick.  It is built by name like any
strategy (:func:`backend.strategies.get_strategy`) but is not in the user-facing
registry :data:`backend.strategies.STRATEGIES` (not listed by ``tradingmesh strategies``,
the API or the optimizer).

Signal
------
BUY at the close of every bar, confidence 1.  Stop loss and take profit sit
``bracket_frac`` of the close below and above it: ``stop = close * (1 - f)``,
``target = close * (1 + f)``.  With the default ``f = 1e-9`` (far below one price tick
of the sample data) any bar with ``high > low`` hits one side of the bracket, so the
position a fill opens at a bar's open is closed within that same bar
(:func:`backend.paper.on_bar` checks the bracket of a position opened at the open):
the account is flat at every mark and risk approves the next BUY as a fresh entry.
Memory: one bar (``warmup`` 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from backend.strategies.base import OHLCV, ParamSpec, SignalFrame, Strategy, finish_brackets

__all__ = ["EveryTick"]


class EveryTick(Strategy):
    """A BUY on every bar with a tight bracket: benchmarks only (see the module docstring)."""

    name = "every_tick"
    params = (
        ParamSpec("bracket_frac", "float", 1e-12, 0.1, 1e-9,
                  "stop-loss and take-profit distance from the close, fraction of the close"),
    )

    def warmup(self, params: Mapping[str, Any] | None = None) -> int:
        """One bar: the first bar already has a signal."""
        return 1

    def _generate(self, bars: OHLCV, params: dict[str, int | float]) -> SignalFrame:
        """Side +1 and confidence 1 on every bar of shape ``(n,)``; bracket ``close * (1 -/+
        bracket_frac)`` (quote/base)."""
        close = np.asarray(bars.close, dtype=np.float64)
        f = float(params["bracket_frac"])
        n = len(close)
        side = np.ones(n, dtype=np.int8)
        conf = np.ones(n, dtype=np.float64)

        def reason(i: int) -> str:
            return f"benchmark: a BUY on every bar (close {close[i]:.8g}, bracket {f:g})"

        return finish_brackets(bars, side, conf, close * (1 - f), close * (1 + f), reason)
