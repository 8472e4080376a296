"""When a resting stop order (spot ``STOP_LOSS`` / ``TAKE_PROFIT``) triggers, and at what price.

Pure functions of the candles, so the result depends only on the market clock:

* ``SELL STOP_LOSS`` and ``BUY TAKE_PROFIT`` trigger on a bar with ``low <= stopPrice``;
* ``BUY STOP_LOSS`` and ``SELL TAKE_PROFIT`` trigger on a bar with ``high >= stopPrice``.

Only candles that were not closed when the order was placed count (``open_time +
timeframe > market clock at placement``), each once it has closed, oldest first.  The
order fills completely at ``stopPrice``, or at the bar's open when the open already is
beyond the stop (a gap through it).
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from backend.exchange_sim.model import Market

#: (side, type) pairs that trigger when the price falls to the stop.
_FALLING = {("SELL", "STOP_LOSS"), ("BUY", "TAKE_PROFIT")}


def falls_to_trigger(side: str, type_: str) -> bool:
    """Whether a ``side``/``type_`` stop triggers on a low at or under its stop price."""
    return (side, type_) in _FALLING


def beyond(side: str, type_: str, price: Decimal, stop: Decimal) -> bool:
    """Whether ``price`` (quote/base) is at or beyond ``stop`` in the trigger's direction:
    a stop placed with the market there would trigger at once."""
    return price <= stop if falls_to_trigger(side, type_) else price >= stop


def first_trigger(m: Market, side: str, type_: str, stop: Decimal, lo: int, hi: int
                  ) -> tuple[int, Decimal] | None:
    """The first of ``m``'s bars ``lo .. hi - 1`` that triggers the stop, and its fill price.

    Parameters
    ----------
    m : Market
        The market's candles.
    side, type_ : str
        ``BUY``/``SELL`` and ``STOP_LOSS``/``TAKE_PROFIT``.
    stop : Decimal
        The stop price (quote/base).
    lo, hi : int
        Bar indices to examine (closed bars only; ``hi`` exclusive).

    Returns
    -------
    tuple of (int, Decimal) or None
        ``(bar index, fill price)``: the stop price, or the bar's open when the open is
        already beyond it; ``None`` when none of the bars trades through the stop.
    """
    if hi <= lo:
        return None
    level = float(stop)
    falling = falls_to_trigger(side, type_)
    hits = m.low[lo:hi] <= level if falling else m.high[lo:hi] >= level
    found = np.flatnonzero(hits)
    if found.size == 0:
        return None
    i = lo + int(found[0])
    bar_open = float(m.open[i])
    gap = bar_open <= level if falling else bar_open >= level
    return i, (Decimal(str(bar_open)) if gap else stop)
