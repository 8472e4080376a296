"""The global replay order of several symbols' candles: every bar once, by (time, symbol).

The replay's global ``seq`` of a bar is its position in :func:`merge_bars` plus 1; the
live mesh (``market_data``), the in-process pipeline and the backtester use the same order.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from backend.marketdata.candles import Candles

__all__ = ["limit_per_symbol", "merge_bars"]


def merge_bars(candles: dict[str, Candles] | Iterable[Candles]) -> list[tuple[int, str, int]]:
    """The global replay order of all bars of several symbols.

    Parameters
    ----------
    candles : dict of str to Candles, or iterable of Candles
        One entry per symbol (symbols must be distinct).

    Returns
    -------
    list of (int, str, int)
        ``(time_ns, symbol, row_index)`` sorted by ``(time, symbol)``.  The replay's
        global ``seq`` of an entry is its position in this list plus 1.
    """
    items = list(candles.values()) if isinstance(candles, dict) else list(candles)
    items.sort(key=lambda c: c.symbol)
    if len({c.symbol for c in items}) != len(items):
        raise ValueError("merge_bars: duplicate symbol")
    if not items:
        return []
    times = np.concatenate([c.time for c in items])
    sym_ix = np.concatenate([np.full(len(c), k, dtype=np.int64) for k, c in enumerate(items)])
    rows = np.concatenate([np.arange(len(c), dtype=np.int64) for c in items])
    order = np.lexsort((sym_ix, times))  # last key is primary
    names = [c.symbol for c in items]
    return [
        (int(t), names[k], int(r))
        for t, k, r in zip(times[order], sym_ix[order], rows[order], strict=True)
    ]


def limit_per_symbol(
    order: list[tuple[int, str, int]], limit: int
) -> list[tuple[int, str, int]]:
    """Keep the first ``limit`` bars of each symbol of a :func:`merge_bars` order (0 = all)."""
    if not limit:
        return order
    taken: dict[str, int] = {}
    kept = []
    for item in order:
        n = taken.get(item[1], 0)
        if n < limit:
            kept.append(item)
            taken[item[1]] = n + 1
    return kept
