"""Swing highs and lows by the ``smartmoneyconcepts`` rule, each dated by its confirmation.

:func:`find_swings` keeps every raw swing of ``smc.swing_highs_lows`` with its
confirmation bar and its run (the package merges a run of same-type swings into its
extreme); :func:`window_swings` gives what the package finds on a window of bars.  Pure
numpy: the package itself is not called here.  Why and how this dating removes the
package's look-ahead: :mod:`backend.strategies.smc_concepts`.

Units: prices in quote currency per base unit, bar indices 0-based into the input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["NEVER", "Swings", "find_swings", "window_swings"]

#: ``span`` of a fact that depends on bars before the input (never usable).
NEVER = -(2**62)


# ---------------------------------------------------------------------------- swings
@dataclass(frozen=True)
class Swings:
    """Raw swing points (the package's rule) in bar order, shape ``(k,)`` each.

    Attributes
    ----------
    bar : numpy.ndarray of int64
        Bar of the swing; it is confirmed (known) at ``bar + length``.
    kind : numpy.ndarray of int8
        +1 swing high, -1 swing low (a bar that is both counts as a high, as in the
        package).
    level : numpy.ndarray of float64
        The high (low) of the swing bar, quote/base.
    run : numpy.ndarray of int64
        Run id: consecutive swings of one kind form a run (the package merges a run
        into its extreme).
    extreme : numpy.ndarray of bool
        The swing was its run's extreme when confirmed (first of the run, or strictly
        beyond every earlier swing of the run).
    run_first, run_extreme : numpy.ndarray of int64
        Shape ``(r,)``: position (into these arrays) of each run's first swing and of its
        final extreme (the first most extreme swing: the package's merged swing).
    run_span : numpy.ndarray of int64
        Shape ``(r,)``: first bar the run's membership depends on (the rolling window
        start of the swing before the run, ``bar - 2 * length + 1``); ``NEVER`` for the
        first run of the input.
    length : int
        The package's ``swing_length``.
    """

    bar: np.ndarray
    kind: np.ndarray
    level: np.ndarray
    run: np.ndarray
    extreme: np.ndarray
    run_first: np.ndarray
    run_extreme: np.ndarray
    run_span: np.ndarray
    length: int

    @property
    def confirmed(self) -> np.ndarray:
        """Bar at whose close each swing is known, ``bar + length``; int64 ``(k,)``."""
        return self.bar + self.length

    def merged(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The package's merged swings ``(bar, kind, level)``: each run's extreme."""
        e = self.run_extreme
        return self.bar[e], self.kind[e], self.level[e]


def find_swings(high: np.ndarray, low: np.ndarray, swing_length: int) -> Swings:
    """Raw swing highs and lows by ``smc.swing_highs_lows``' rule, with their runs.

    ``high[j] == max(high[j-L+1 .. j+L])`` (a swing high) else ``low[j] ==
    min(low[j-L+1 .. j+L])`` (a swing low) -- the package's ``high ==
    high.shift(-L).rolling(2L).max()`` -- for ``2L - 1 <= j <= n - 1 - L``, the rows where
    that expression is defined (the package needs ``2L - 1`` bars before a swing).

    Parameters
    ----------
    high, low : numpy.ndarray
        Shape ``(n,)``, quote/base.
    swing_length : int
        ``L`` >= 1 (bars each side).

    Returns
    -------
    Swings
    """
    L = int(swing_length)
    high, low = np.asarray(high, dtype=np.float64), np.asarray(low, dtype=np.float64)
    n = len(high)
    is_hi = np.zeros(n, dtype=bool)
    is_lo = np.zeros(n, dtype=bool)
    if n >= 3 * L:  # rows 2L-1 .. n-1-L: shift(-L).rolling(2L) is defined there
        win = np.lib.stride_tricks.sliding_window_view
        rows = slice(2 * L - 1, n - L)
        is_hi[rows] = high[rows] == win(high, 2 * L)[L:n - 2 * L + 1].max(axis=1)
        is_lo[rows] = low[rows] == win(low, 2 * L)[L:n - 2 * L + 1].min(axis=1)
    is_lo &= ~is_hi
    bar = np.flatnonzero(is_hi | is_lo).astype(np.int64)
    kind = np.where(is_hi[bar], 1, -1).astype(np.int8)
    level = np.where(kind > 0, high[bar], low[bar])
    k = len(bar)
    starts = np.r_[True, kind[1:] != kind[:-1]] if k else np.zeros(0, dtype=bool)
    run = np.cumsum(starts, dtype=np.int64) - 1
    run_first = np.flatnonzero(starts).astype(np.int64)
    extreme = np.zeros(k, dtype=bool)
    run_extreme = run_first.copy()
    lv, kd = level.tolist(), kind.tolist()
    cur = -1
    for q in range(k):
        if starts[q] or kd[q] * (lv[q] - lv[cur]) > 0:  # strictly beyond: ties keep the first
            cur = q
            extreme[q] = True
        run_extreme[run[q]] = cur
    run_span = np.full(len(run_first), NEVER, dtype=np.int64)
    if len(run_first) > 1:
        run_span[1:] = bar[run_first[1:] - 1] - 2 * L + 1
    return Swings(bar, kind, level, run, extreme, run_first, run_extreme, run_span, L)



def window_swings(sw: Swings, start: int, stop: int) -> tuple[np.ndarray, np.ndarray,
                                                              np.ndarray]:
    """What ``smc.swing_highs_lows`` finds on bars ``[start, stop)`` (without the first and
    last bar it marks): the raw swings it can evaluate there (``start + 2L - 1 <= bar <=
    stop - 1 - L``, the same values as on the whole series), merged run by run.

    Returns
    -------
    tuple of numpy.ndarray
        ``(bar - start, kind, level)``, shape ``(s,)`` each.
    """
    L = sw.length
    a, b = np.searchsorted(sw.bar, [start + 2 * L - 1, stop - L])
    bar, kind, level = sw.bar[a:b], sw.kind[a:b], sw.level[a:b]
    keep: list[int] = []
    for q, (kd, lv) in enumerate(zip(kind.tolist(), level.tolist(), strict=True)):
        if not keep or kind[keep[-1]] != kd:
            keep.append(q)
        elif kd * (lv - level[keep[-1]]) > 0:
            keep[-1] = q
    return bar[keep] - start, kind[keep], level[keep]
