"""Order blocks, fair value gaps and liquidity sweeps from the ``smartmoneyconcepts``
package, as facts known at a bar (the look-ahead of each function and its causal
reading: :mod:`backend.strategies.smc_concepts`).

Units: prices in quote currency per base unit, bar indices 0-based into the input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.strategies.smc_concepts import (
    _FVG_LOCK,
    _FVGS,
    _MAX_ENTRIES,
    _OB_MEMO,
    _SWEEP_MEMO,
    NEVER,
    Swings,
    _digest,
    _pkg,
    _swing_frame,
    ohlc_frame,
    window_swings,
)

__all__ = ["Sweeps", "Zones", "fair_value_gaps", "order_blocks", "recent_sweeps"]


# ---------------------------------------------------------------------------- zones
@dataclass(frozen=True)
class Zones:
    """Order blocks or fair value gaps, shape ``(z,)`` each.

    Attributes
    ----------
    concept : str
        ``"order block"`` or ``"fair value gap"``.
    direction : numpy.ndarray of int8
        +1 bullish (a long entry on a return into it), -1 bearish.
    top, bottom : numpy.ndarray of float64
        Zone prices, quote/base.
    formed : numpy.ndarray of int64
        The order block candle / the gap's middle candle.
    known : numpy.ndarray of int64
        Bar at whose close the zone is known.
    touch : numpy.ndarray of int64
        First bar after ``known`` (within ``max_age`` bars) that reaches into the zone
        (low <= top for bullish, high >= bottom for bearish); -1 if none.
    span : numpy.ndarray of int64
        First bar the zone depends on.
    """

    concept: str
    direction: np.ndarray
    top: np.ndarray
    bottom: np.ndarray
    formed: np.ndarray
    known: np.ndarray
    touch: np.ndarray
    span: np.ndarray

    def __len__(self) -> int:
        return len(self.direction)


def _package_ob(bars: tuple[np.ndarray, ...], kind: int) -> int:
    """``smc.ob`` on ``bars`` (a swing at row 0 of ``kind``, its first crossing on the
    last row): the row of the block's candle, or -1."""
    def compute() -> int:
        m = len(bars[0])
        hl = np.full(m, np.nan)
        hl[0] = kind
        lvl = np.full(m, np.nan)
        lvl[0] = bars[1][0] if kind > 0 else bars[2][0]
        out = _pkg.ob(ohlc_frame(*bars), _swing_frame(hl, lvl))
        rows = np.flatnonzero(out["OB"].to_numpy() == kind)
        return int(rows[-1]) if len(rows) else -1

    return _OB_MEMO.get(_digest(bars, ("ob", kind)), compute)


def order_blocks(
    bars: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    sw: Swings,
    horizon: int,
    max_age: int,
    structure: np.ndarray | None = None,
) -> Zones:
    """Order blocks dated at their trigger bar (:mod:`backend.strategies.smc_concepts`).

    For each kind, the swing in force is the latest confirmed run extreme (from its
    confirmation until the next one's).  The first close beyond its level while it is in
    force triggers ``smc.ob`` on the bars from the swing to that close.

    Parameters
    ----------
    bars : tuple of numpy.ndarray
        ``open, high, low, close, volume``, shape ``(n,)``.
    sw : Swings
    horizon : int
        Memory in bars (``lookback``); blocks that cannot be used within it are skipped.
    max_age : int
        Bars after ``known`` within which the first touch counts.
    structure : numpy.ndarray of int8, optional
        Shape ``(n,)``: the structure direction per bar (+1/-1/0).  When given, a block
        that cannot be reached while the structure agrees with it (no bar in its touch
        window with that direction and a price inside the widest zone the block could
        have) is skipped without calling the package: it could not give an entry.

    Returns
    -------
    Zones
    """
    o, h, lo_, c, v = bars
    n = len(c)
    conf = sw.confirmed
    cols: dict[str, list] = {k: [] for k in ("direction", "top", "bottom", "formed", "known",
                                             "touch", "span")}
    for kind in (1, -1):
        pos = np.flatnonzero(sw.extreme & (sw.kind == kind))
        nxt = np.r_[conf[pos[1:]], n] if len(pos) else pos
        for q, stop in zip(pos.tolist(), nxt.tolist(), strict=True):
            span = int(sw.run_span[sw.run[q]])
            if span == NEVER:
                continue
            start, level, j = int(conf[q]), float(sw.level[q]), int(sw.bar[q])
            end = min(int(stop), n, span + horizon)
            seg = c[start:end]
            hit = np.flatnonzero(seg > level if kind > 0 else seg < level)
            if not len(hit):
                continue
            i = start + int(hit[0])
            late = min(n, i + 1 + max_age, span + horizon)
            if structure is not None and not _reachable(bars, j, i, late, kind, structure):
                continue
            row = _package_ob(tuple(a[j:i + 1] for a in bars), kind)
            if row < 0:
                continue
            cb = j + row
            top, bottom = float(h[cb]), float(lo_[cb])
            after = lo_[i + 1:late] <= top if kind > 0 else h[i + 1:late] >= bottom
            t = np.flatnonzero(after)
            touch = i + 1 + int(t[0]) if len(t) else -1
            for key, val in (("direction", kind), ("top", top), ("bottom", bottom),
                             ("formed", cb), ("known", i), ("touch", touch), ("span", span)):
                cols[key].append(val)
    return _zones("order block", cols)


def _reachable(
    bars: tuple[np.ndarray, ...], j: int, i: int, late: int, kind: int, structure: np.ndarray
) -> bool:
    """Whether a block from swing ``j`` triggered at ``i`` could be touched in ``(i, late)``
    under an agreeing structure: its candle lies in ``(j, i)``, so a bullish top is at
    most ``max(high[j+1:i])`` and a bearish bottom at least ``min(low[j+1:i])``."""
    h, lo_ = bars[1], bars[2]
    agree = structure[i + 1:late] == kind
    if kind > 0:
        return bool((agree & (lo_[i + 1:late] <= h[j + 1:i].max())).any())
    return bool((agree & (h[i + 1:late] >= lo_[j + 1:i].min())).any())


def _zones(concept: str, cols: dict[str, list]) -> Zones:
    return Zones(
        concept, np.asarray(cols["direction"], dtype=np.int8),
        np.asarray(cols["top"], dtype=np.float64), np.asarray(cols["bottom"], dtype=np.float64),
        np.asarray(cols["formed"], dtype=np.int64), np.asarray(cols["known"], dtype=np.int64),
        np.asarray(cols["touch"], dtype=np.int64), np.asarray(cols["span"], dtype=np.int64))


def fair_value_gaps(
    bars: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], max_age: int
) -> Zones:
    """``smc.fvg`` gaps, known one bar after their middle candle, and their first touch.

    The package marks a gap at middle candle ``m`` from candles ``m - 1 .. m + 1`` alone
    (bullish: ``high[m-1] < low[m+1]`` on an up candle, zone ``[high[m-1], low[m+1]]``;
    bearish mirrored, zone ``[high[m+1], low[m-1]]``), so its verdict is memoised per
    three candles, and the package is only called on candles not seen before that have a
    gap between candles ``m - 1`` and ``m + 1`` at all (the first thing it tests; its
    per-gap ``MitigatedIndex`` loop costs ~0.1 ms a gap, too slow to repeat for every bar
    of the live runner).  The first touch is the package's ``MitigatedIndex`` rule
    -- the first bar from ``m + 2`` whose low reaches a bullish gap's top (high reaches a
    bearish gap's bottom) -- evaluated here over the ``max_age`` bars after ``known``
    (equal to the package's on the shipped data; tested).

    Parameters
    ----------
    bars : tuple of numpy.ndarray
        ``open, high, low, close, volume``, shape ``(n,)``.
    max_age : int
        Bars after ``known`` within which the first touch counts.

    Returns
    -------
    Zones
        ``formed`` = middle candle ``m``, ``known = m + 1``, ``span = m - 1``.
    """
    o, h, lo_, c, v = bars
    n = len(c)
    if n < 3:
        return _zones("fair value gap", {k: [] for k in ("direction", "top", "bottom",
                                                          "formed", "known", "touch", "span")})
    rows = np.column_stack([h[:-2], lo_[:-2], o[1:-1], c[1:-1], h[2:], lo_[2:]])
    keys = [r.tobytes() for r in rows]  # keys[m - 1]: middle candle m
    with _FVG_LOCK:
        found = {k: _FVGS[k] for k in keys if k in _FVGS}
    # the package's first test: a gap between candles m - 1 and m + 1 (without one its
    # verdict is "no gap", nothing to ask it)
    maybe = (h[:-2] < lo_[2:]) | (lo_[:-2] > h[2:])
    for k in np.flatnonzero(~maybe).tolist():
        found[keys[k]] = (0, np.nan, np.nan)
    missing = [m for m, k in enumerate(keys, start=1) if k not in found]
    if missing:
        a, b = missing[0] - 1, missing[-1] + 2
        out = _pkg.fvg(ohlc_frame(*(x[a:b] for x in bars)))
        f = np.nan_to_num(out["FVG"].to_numpy())
        top, bottom = out["Top"].to_numpy(), out["Bottom"].to_numpy()
        new = {keys[m - 1]: (int(f[m - a]), float(top[m - a]), float(bottom[m - a]))
               for m in range(a + 1, b - 1)}
        found.update(new)
        with _FVG_LOCK:
            _FVGS.update(new)
            while len(_FVGS) > _MAX_ENTRIES:
                _FVGS.pop(next(iter(_FVGS)))
    got = [found[k] for k in keys]
    d = np.array([g[0] for g in got], dtype=np.int8)
    mid = np.flatnonzero(d) + 1
    direction = d[mid - 1]
    top = np.array([got[m - 1][1] for m in mid.tolist()], dtype=np.float64)
    bottom = np.array([got[m - 1][2] for m in mid.tolist()], dtype=np.float64)
    touch = np.full(len(mid), -1, dtype=np.int64)
    if len(mid):
        pad_lo = np.r_[lo_, np.full(max_age, np.inf)]
        pad_hi = np.r_[h, np.full(max_age, -np.inf)]
        win = np.lib.stride_tricks.sliding_window_view
        first = mid + 2  # known + 1; the package searches from m + 2
        reach = np.where(
            (direction > 0)[:, None],
            win(pad_lo, max_age)[first] <= top[:, None],
            win(pad_hi, max_age)[first] >= bottom[:, None])
        hit = reach.any(axis=1)
        touch[hit] = first[hit] + reach[hit].argmax(axis=1)
    return Zones("fair value gap", direction, top, bottom, mid.astype(np.int64),
                 mid + 1, touch, mid - 1)


# ---------------------------------------------------------------------------- liquidity
@dataclass(frozen=True)
class Sweeps:
    """The latest liquidity sweep of each side within a window's last bars.

    ``sell_side`` (equal lows run through: supports a long) and ``buy_side`` (equal
    highs run through: supports a short) are ``(level, bars_ago)`` -- the pool's
    average level (quote/base, float32 in the package) and how many bars before the
    window's last bar it was swept -- or ``None``.
    """

    sell_side: tuple[float, int] | None
    buy_side: tuple[float, int] | None

    def supporting(self, direction: int) -> tuple[float, int] | None:
        """The sweep that supports a trade in ``direction`` (+1 long, -1 short)."""
        return self.sell_side if direction > 0 else self.buy_side


def recent_sweeps(
    bars: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    sw: Swings,
    start: int,
    range_percent: float,
    within: int,
) -> Sweeps:
    """``smc.liquidity`` on a window of bars that ends at the bar in question.

    Liquidity pools are the package's: swing highs (lows) of the window
    (:func:`~backend.strategies.smc_concepts.window_swings`, a function of the window's
    bars, so the memo key is the window) within ``range_percent`` of the window's high-low range; a
    pool counts when it was swept within the last ``within`` bars.

    Parameters
    ----------
    bars : tuple of numpy.ndarray
        ``open, high, low, close, volume`` of the window, shape ``(w,)``.
    sw : Swings
        Raw swings of the series the window was cut from.
    start : int
        The window's first bar in that series.
    range_percent : float
        The package's ``range_percent`` (fraction of the window's range).
    within : int
        Bars (>= 1): a sweep at window row ``s`` counts if ``s >= w - within``.

    Returns
    -------
    Sweeps
    """
    w = len(bars[0])

    def compute() -> Sweeps:
        at, kind, level = window_swings(sw, start, start + w)
        hl = np.full(w, np.nan)
        lvl = np.full(w, np.nan)
        hl[at], lvl[at] = kind, level
        liq = _pkg.liquidity(ohlc_frame(*bars), _swing_frame(hl, lvl),
                             range_percent=range_percent)
        side = liq["Liquidity"].to_numpy()
        swept = np.nan_to_num(liq["Swept"].to_numpy()).astype(np.int64)
        pool = liq["Level"].to_numpy()
        found: dict[int, tuple[float, int] | None] = {1: None, -1: None}
        for s in (1, -1):
            rows = np.flatnonzero((side == s) & (swept > 0) & (swept >= w - within))
            if len(rows):
                r = rows[np.argmax(swept[rows])]
                found[s] = (float(pool[r]), int(w - 1 - swept[r]))
        return Sweeps(sell_side=found[-1], buy_side=found[1])

    key = _digest(bars, ("liquidity", sw.length, float(range_percent), int(within)))
    return _SWEEP_MEMO.get(key, compute)
