"""Smart money concepts from the ``smartmoneyconcepts`` package, as facts known at a bar:
market structure here, swings in :mod:`backend.strategies.smc_swings`, zones and liquidity
in :mod:`backend.strategies.smc_zones` (swings re-exported here).

The package (``smc``, 0.0.27, imported here once with its banner silenced) is a batch
tool: each function looks at the whole input and several of its answers depend on bars
*after* the bar they are stored at.  A strategy may only use what is known by the close
of bar ``t``, so every concept is taken from the package and then dated by the bar at
which it becomes known (its ``known`` bar), or computed by the package on bars that end
at ``t``:

``smc.swing_highs_lows(ohlc, L)``
    A swing high at bar ``j`` is ``high[j] == max(high[j-L+1 .. j+L])``, a centred
    window (``shift(-L).rolling(2L)``): it is only known at the close of bar ``j + L``
    (its *confirmation*).  The function then merges every run of consecutive
    same-type swings into its most extreme one -- a swing is dropped when a higher high
    comes *later* -- and marks the first and the last bar of the input as swings.
    :func:`find_swings` evaluates the package's rule on the same rows and keeps every
    raw swing with its confirmation bar; a run's extreme is known progressively
    (``Swings.extreme``: the swing was its run's extreme when confirmed).  Merged, the
    raw swings reproduce ``smc.swing_highs_lows`` exactly, without the two invented end
    points (tested on all shipped data and on windows of it: :func:`window_swings`).
``smc.bos_choch(ohlc, swings)``
    Classifies every four consecutive swings (low, high, low, high: BOS when the lows
    and the highs rise, CHOCH when a lower low is followed by a higher high; mirrored
    for bearish) and stores the event at the second swing, whose level is the one to
    break.  Its ``BrokenIndex`` (first close beyond the level, from the swing + 2) lies
    in the future, and it *deletes* an event whose level broke after a later event's
    level, and every event not broken by the end of the input -- decisions made with
    bars after the stored bar.  :func:`structure_events` asks the package only for the
    classification (on the merged swings, break test neutralised so nothing is
    deleted), then dates each event causally: ``known = max(first close beyond the
    level, confirmation of the first fourth-run swing beyond the level)``; the deletion
    becomes "the latest known event wins" (:func:`structure_at`).  The package keeps
    levels as float32; closes are compared with the exact swing price here (with the
    float32 level these events reproduce every event the package keeps; tested).
``smc.ob(ohlc, swings)``
    A bullish order block forms at the first close above the last swing high: the
    candle with the lowest low between the two; bearish mirrored.  The package takes
    "the last swing high" from the finished swing list, so a swing that is not
    confirmed yet (or later merged away) hides or changes a block; it also erases a
    block that price later breaks through and reclaims, and keeps levels as float32.
    :func:`~backend.strategies.smc_zones.order_blocks` finds the trigger causally (a
    close beyond the latest *confirmed* run extreme) and calls ``smc.ob`` on the bars
    from that swing to the trigger only, which places the block as the package does;
    zone prices are read from the float64 bars.
``smc.fvg(ohlc)``
    A gap marked at the middle candle ``m`` uses candle ``m + 1`` (``shift(-1)``): known
    at ``m + 1``.  Its ``MitigatedIndex`` (first bar from ``m + 2`` whose low reaches a
    bullish gap's top, or whose high reaches a bearish gap's bottom) is the first touch,
    a causal fact at that bar (``join_consecutive`` stays off: it merges a gap with the
    next one).  :func:`~backend.strategies.smc_zones.fair_value_gaps`.
``smc.liquidity(ohlc, swings, range_percent)``
    Groups swing highs (lows) within ``range_percent`` of the *whole input's* price
    range (a global look-ahead), lets each group absorb later swings until it is swept,
    and reports the sweep bar in the future.
    :func:`~backend.strategies.smc_zones.recent_sweeps` calls it on a trailing window
    of bars that ends at the bar in question (with the package's swings of that
    window), so everything it reports is known there.

Finite memory
-------------
Every fact carries ``span``: the first bar its computation depends on (for a swing run,
the start of the package's rolling window of the swing before the run; ``NEVER`` when
that lies before the input).  The strategy uses a fact at bar ``t`` only when ``known <=
t`` and ``span >= t - lookback + 1``, and computes liquidity on exactly the last
``lookback`` bars, so its signal at ``t`` is a function of bars ``t - lookback + 1 ..
t``: the live runner, which passes a tail of the history, gets the answer of a backtest
over the whole series.

Speed
-----
The package's loops run in Python (~0.1 ms a gap in ``fvg``, ~1-2 ms an ``ob`` or
``liquidity`` call), and the live runner re-evaluates overlapping windows bar after bar
while the optimizer re-evaluates one series many times.  So its answers are memoised by
the bytes of their inputs (:class:`_Memo` and the verdict tables): ``ob`` per trigger
slice, ``liquidity`` per window, the gap verdict per three candles, the BOS/CHOCH
classification per four swings.  The memo never changes a result; :func:`clear_caches`
empties it.

Units: prices in quote currency per base unit, bar indices 0-based into the input.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd

from backend.strategies.smc_swings import NEVER, Swings, find_swings, window_swings

with contextlib.redirect_stdout(io.StringIO()):  # the package prints a banner on import
    from smartmoneyconcepts import smc as _pkg

__all__ = [
    "NEVER",
    "Structure",
    "Swings",
    "clear_caches",
    "find_swings",
    "ohlc_frame",
    "structure_at",
    "structure_events",
    "window_swings",
]

T = TypeVar("T")


class _Memo:
    """A small thread-safe LRU cache of pure results, keyed by a digest of the input."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._data: OrderedDict[bytes, object] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: bytes, compute: Callable[[], T]) -> T:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]  # type: ignore[return-value]
        value = compute()
        with self._lock:
            self._data[key] = value
            if len(self._data) > self._size:
                self._data.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


_OB_MEMO = _Memo(4096)
_SWEEP_MEMO = _Memo(4096)
_MAX_ENTRIES = 200_000  # of each verdict table below (oldest dropped first)

#: ``smc.bos_choch`` classification ``(bos, choch)`` of four swings, by their bytes.
_TUPLES: dict[bytes, tuple[int, int]] = {}
_TUPLES_LOCK = threading.Lock()
#: ``smc.fvg`` verdict ``(direction or 0, top, bottom)`` of a middle candle, by the bytes of
#: ``high[m-1], low[m-1], open[m], close[m], high[m+1], low[m+1]``.
_FVGS: dict[bytes, tuple[int, float, float]] = {}
_FVG_LOCK = threading.Lock()


def clear_caches() -> None:
    """Forget every memoised package result (tests and benchmarks measure cold runs)."""
    _OB_MEMO.clear()
    _SWEEP_MEMO.clear()
    with _TUPLES_LOCK:
        _TUPLES.clear()
    with _FVG_LOCK:
        _FVGS.clear()


def _digest(arrays: tuple[np.ndarray, ...], extra: tuple[object, ...]) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    h.update(repr(extra).encode())
    return h.digest()


_OHLCV = pd.Index(["open", "high", "low", "close", "volume"], dtype=object)
_SWING_COLS = pd.Index(["HighLow", "Level"], dtype=object)


def _swing_frame(kind: np.ndarray, level: np.ndarray) -> pd.DataFrame:
    """The package's swing input: ``HighLow`` (+1/-1/NaN) and ``Level`` columns."""
    return pd.DataFrame(np.column_stack([kind, level]).astype(np.float64), columns=_SWING_COLS)


def ohlc_frame(
    open: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray
) -> pd.DataFrame:
    """The package's input: columns ``open, high, low, close, volume``, RangeIndex (one
    float64 block: the package copies and slices it often)."""
    return pd.DataFrame(np.column_stack([open, high, low, close, volume]), columns=_OHLCV)


# ---------------------------------------------------------------------------- structure
@dataclass(frozen=True)
class Structure:
    """Break of structure / change of character events, shape ``(e,)`` each, by pivot.

    Attributes
    ----------
    pivot : numpy.ndarray of int64
        Bar of the swing whose level breaks (where the package stores the event).
    direction : numpy.ndarray of int8
        +1 bullish (a swing high broken upwards), -1 bearish.
    choch : numpy.ndarray of bool
        Change of character (else break of structure).
    level : numpy.ndarray of float64
        The broken swing's price, quote/base.
    broken : numpy.ndarray of int64
        First bar from ``pivot + 2`` whose close is beyond ``level``.
    known : numpy.ndarray of int64
        ``max(broken, confirmation of the first fourth-run swing beyond level)``.
    span : numpy.ndarray of int64
        First bar the event depends on (the span of the pattern's first run).
    """

    pivot: np.ndarray
    direction: np.ndarray
    choch: np.ndarray
    level: np.ndarray
    broken: np.ndarray
    known: np.ndarray
    span: np.ndarray

    def __len__(self) -> int:
        return len(self.pivot)


def _classify(kind: np.ndarray, level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``smc.bos_choch`` on merged swings ``(m,)``: per row, +1/-1/0 BOS and CHOCH.

    The package classifies each four consecutive swings and stores the result at the
    second.  It is given one row per swing and infinite highs/lows with
    ``close_break=False``, so every event "breaks" two rows later and none is deleted:
    what comes back is its pattern classification alone.  A classification depends only
    on its four swings, so it is memoised per four (the live runner sees the same
    swings bar after bar) and the package is called on the rows not seen before.
    """
    m = len(kind)
    bos = np.zeros(m, dtype=np.int8)
    choch = np.zeros(m, dtype=np.int8)
    rows = range(1, m - 2)
    keys = [kind[r - 1:r + 3].tobytes() + level[r - 1:r + 3].tobytes() for r in rows]
    with _TUPLES_LOCK:
        found = {key: _TUPLES[key] for key in keys if key in _TUPLES}
    missing = [r for r, key in zip(rows, keys, strict=True) if key not in found]
    if missing:
        lo, hi = missing[0] - 1, missing[-1] + 3
        k = hi - lo
        inf = np.full(k, np.inf)
        zero = np.zeros(k)
        out = _pkg.bos_choch(ohlc_frame(zero, inf, -inf, zero, zero),
                             _swing_frame(kind[lo:hi], level[lo:hi]), close_break=False)
        b = np.nan_to_num(out["BOS"].to_numpy()).astype(np.int8)
        c = np.nan_to_num(out["CHOCH"].to_numpy()).astype(np.int8)
        new = {keys[r - 1]: (int(b[r - lo]), int(c[r - lo])) for r in range(lo + 1, hi - 2)}
        found.update(new)
        with _TUPLES_LOCK:
            _TUPLES.update(new)
            while len(_TUPLES) > _MAX_ENTRIES:
                _TUPLES.pop(next(iter(_TUPLES)))
    for r, key in zip(rows, keys, strict=True):
        bos[r], choch[r] = found[key]
    return bos, choch


def structure_events(sw: Swings, close: np.ndarray, horizon: int) -> Structure:
    """Causally dated BOS / CHOCH events (see the module docstring).

    Parameters
    ----------
    sw : Swings
    close : numpy.ndarray
        Shape ``(n,)``, quote/base.
    horizon : int
        Memory in bars (the strategy's ``lookback``): an event whose span is ``NEVER``
        or that cannot be known within ``horizon`` bars of its span is left out.

    Returns
    -------
    Structure
        Sorted by ``pivot``.
    """
    n = len(close)
    m_bar, m_kind, m_level = sw.merged()
    m = len(m_bar)
    cols: dict[str, list] = {k: [] for k in Structure.__dataclass_fields__}
    if m >= 4:
        bos, choch = _classify(m_kind, m_level)
        conf = sw.confirmed
        for k in np.flatnonzero((bos != 0) | (choch != 0)).tolist():
            span = int(sw.run_span[k - 1])
            if span == NEVER:
                continue
            end = min(n, span + horizon)
            d = int(bos[k] or choch[k])
            pivot, level = int(m_bar[k]), float(m_level[k])
            lo, hi = int(sw.run_first[k + 2]), (
                int(sw.run_first[k + 3]) if k + 3 < len(sw.run_first) else len(sw.bar))
            beyond = np.flatnonzero(d * (sw.level[lo:hi] - level) > 0)
            if not len(beyond):  # cannot happen for an event the package reports
                continue
            seen = int(conf[lo + beyond[0]])
            c = close[pivot + 2:end]
            hit = np.flatnonzero(c > level if d > 0 else c < level)
            if not len(hit):
                continue
            broken = pivot + 2 + int(hit[0])
            known = max(broken, seen)
            if known >= end:
                continue
            for key, val in (("pivot", pivot), ("direction", d), ("choch", choch[k] != 0),
                             ("level", level), ("broken", broken), ("known", known),
                             ("span", span)):
                cols[key].append(val)
    return Structure(
        np.asarray(cols["pivot"], dtype=np.int64), np.asarray(cols["direction"], dtype=np.int8),
        np.asarray(cols["choch"], dtype=bool), np.asarray(cols["level"], dtype=np.float64),
        np.asarray(cols["broken"], dtype=np.int64), np.asarray(cols["known"], dtype=np.int64),
        np.asarray(cols["span"], dtype=np.int64))


def structure_at(ev: Structure, n: int, horizon: int) -> np.ndarray:
    """The structure in force at each bar: index into ``ev`` (or -1), int64 ``(n,)``.

    At bar ``t`` it is the event with the latest pivot among those with ``known <= t``
    and ``span >= t - horizon + 1`` -- the causal form of the package deleting an
    event whose level broke after a later event's.
    """
    out = np.full(n, -1, dtype=np.int64)
    for e in np.argsort(ev.pivot, kind="stable").tolist():
        out[int(ev.known[e]):max(0, min(n, int(ev.span[e]) + horizon))] = e
    return out
