"""Benchmark-only strategy: a signal on every bar, BUY and SELL in turn (``"every_tick"``).

For ``benchmarks/mesh.py`` only, never for trading: it makes every tick of the mesh
travel the whole order path (strategy -> compliance -> risk -> execution -> venue), so
the tick-to-order latency can be measured on every tick.  It is built by name like any
strategy (:func:`backend.strategies.registry.get_strategy`) but is not in the user-facing
registry :data:`backend.strategies.registry.STRATEGIES` (not listed by ``tradingmesh strategies``,
the API or the optimizer).

Signal
------
At the close of every bar, confidence 1: BUY on even bars and SELL on odd ones, counted
in ``bar_seconds`` from the epoch (``side = +1 if (time // bar_seconds) % 2 == 0 else
-1``), so consecutive bars alternate whatever window the strategy sees.  Stop loss and
take profit sit ``bracket_frac`` of the close on either side (``stop = close * (1 - f)``
below a BUY, above a SELL).  With the default ``f = 1e-9`` (far below one price tick of
the sample data) any bar with ``high > low`` hits one side of the bracket, so the
position a fill opens at a bar's open is closed within that same bar
(:func:`backend.venues.paper.engine.on_bar`): in a backtest the account is flat at every
mark.  In the
running mesh an order may still be resting when the next signal is decided; risk counts
it in flight (:mod:`backend.risk.in_flight`), so a second BUY would be refused
(``already_in_position``), while the alternating SELL reverses it (with
``allow_short``): every tick still becomes an order.  Memory: one bar (``warmup`` 1).
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
        ParamSpec("bar_seconds", "int", 1, 86_400, 300,
                  "bar length (s): BUY on even bars, SELL on odd ones"),
    )

    def warmup(self, params: Mapping[str, Any] | None = None) -> int:
        """One bar: the first bar already has a signal."""
        return 1

    def _generate(self, bars: OHLCV, params: dict[str, int | float]) -> SignalFrame:
        """Side +1 / -1 on even / odd bars and confidence 1, shape ``(n,)``; bracket
        ``close * (1 -/+ bracket_frac)`` on the losing / winning side (quote/base)."""
        close = np.asarray(bars.close, dtype=np.float64)
        f = float(params["bracket_frac"])
        step = int(params["bar_seconds"]) * 1_000_000_000
        n = len(close)
        side = np.where((np.asarray(bars.time, dtype=np.int64) // step) % 2 == 0, 1, -1
                        ).astype(np.int8)
        conf = np.ones(n, dtype=np.float64)
        stop = close * (1 - side * f)
        target = close * (1 + side * f)

        def reason(i: int) -> str:
            word = "BUY" if side[i] > 0 else "SELL"
            return f"benchmark: a {word} on every other bar (close {close[i]:.8g}, bracket {f:g})"

        return finish_brackets(bars, side, conf, stop, target, reason)
