"""Technical indicators: thin wrappers over TA-Lib, plus exact rolling windows.

Every function takes 1-D array-likes of shape ``(n,)`` (converted to contiguous
float64) and returns a float64 array of shape ``(n,)``, NaN during the warm-up.
Units follow the input: a moving average of prices (quote/base) is a price, ATR is
a price distance, ROC and RSI are dimensionless (percent / 0..100).

Finite memory and bit-exactness
-------------------------------
TA-Lib's ``SMA`` keeps a *running sum* (add the new value, subtract the oldest),
so the last bits of its output depend on where the series starts: the SMA of a
truncated history differs from the full-history SMA by ~1e-17 at the same bar.
``EMA``, ``RSI`` and ``ATR`` are recursive (Wilder/exponential smoothing) and depend
on the whole history.  A strategy that must give *identical* results on a capped
live history and on a full backtest (see :class:`backend.strategies.runner.StrategyRunner`)
therefore uses :func:`rolling_mean` (each window summed on its own, in a fixed
order) and :func:`atr_sma` (rolling mean of TA-Lib's ``TRANGE``) instead; ``TRANGE``
and ``ROC`` are point-wise, so they are exact too.
"""

from __future__ import annotations

import numpy as np
import talib
from numpy.typing import ArrayLike

from backend.indicator_memo import memoisable

__all__ = [
    "atr",
    "atr_sma",
    "ema",
    "lag",
    "momentum",
    "roc",
    "rolling_mean",
    "rsi",
    "sma",
    "true_range",
    "volume_sma",
]


def _f64(x: ArrayLike) -> np.ndarray:
    a = np.ascontiguousarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"expected a 1-D array, got shape {a.shape}")
    return a


def _period(n: int, low: int = 1) -> int:
    if int(n) != n or n < low:
        raise ValueError(f"period must be an integer >= {low}, got {n!r}")
    return int(n)


def lag(x: ArrayLike, k: int = 1) -> np.ndarray:
    """The value ``k`` bars earlier, ``out[i] = x[i-k]``; NaN for the first ``k`` bars.

    Shape ``(m,)`` float64, same units as ``x``.
    """
    a = _f64(x)
    k = _period(k, 0)
    out = np.full(a.shape, np.nan)
    if k < a.size:
        out[k:] = a[: a.size - k]
    return out


def sma(x: ArrayLike, n: int) -> np.ndarray:
    """Simple moving average, ``mean(x[i-n+1 .. i])`` (TA-Lib ``SMA``).

    Parameters
    ----------
    x : array_like, shape (m,)
    n : int
        Window length in bars (>= 1).

    Returns
    -------
    numpy.ndarray, shape (m,)
        NaN for the first ``n-1`` bars.  Running-sum implementation: not bit-exact
        under truncation of the input (use :func:`rolling_mean` for that).
    """
    return talib.SMA(_f64(x), timeperiod=_period(n))


def rolling_mean(x: ArrayLike, n: int) -> np.ndarray:
    """Exact finite-memory moving average ``mean(x[i-n+1 .. i])`` (numpy, not TA-Lib).

    Each window is summed on its own in the fixed order ``x[i-n+1] + ... + x[i]``,
    so ``rolling_mean(x[k:], n)[j] == rolling_mean(x, n)[k+j]`` bit for bit.  Same
    values as TA-Lib ``SMA`` up to rounding (~1e-16 relative).  Cost ``O(m*n)``.

    Parameters
    ----------
    x : array_like, shape (m,)
    n : int
        Window length in bars (>= 1).

    Returns
    -------
    numpy.ndarray, shape (m,)
        NaN for the first ``n-1`` bars (and for any window containing a NaN).
    """
    return rolling_sum(x, n) / _period(n)  # each window summed left to right, then / n


def ema(x: ArrayLike, n: int) -> np.ndarray:
    """Exponential moving average, ``alpha = 2/(n+1)``, seeded with the SMA of the
    first ``n`` values (TA-Lib ``EMA``).  Shape ``(m,)``, NaN for the first ``n-1`` bars.
    """
    return talib.EMA(_f64(x), timeperiod=_period(n, 2))


def rsi(x: ArrayLike, n: int = 14) -> np.ndarray:
    """Relative strength index in [0, 100] with Wilder smoothing of gains and losses
    (TA-Lib ``RSI``).  Shape ``(m,)``, NaN for the first ``n`` bars.
    """
    return talib.RSI(_f64(x), timeperiod=_period(n, 2))


@memoisable
def true_range(high: ArrayLike, low: ArrayLike, close: ArrayLike) -> np.ndarray:
    """True range ``max(high, close[i-1]) - min(low, close[i-1])`` (TA-Lib ``TRANGE``).

    Price distance (quote/base), shape ``(m,)``; NaN at bar 0 (no previous close).
    """
    return talib.TRANGE(_f64(high), _f64(low), _f64(close))


def atr(high: ArrayLike, low: ArrayLike, close: ArrayLike, n: int = 14) -> np.ndarray:
    """Average true range with Wilder smoothing (TA-Lib ``ATR``).

    Price distance, shape ``(m,)``, NaN for the first ``n`` bars.  Recursive: depends
    on the whole history; see :func:`atr_sma` for the finite-memory variant.
    """
    return talib.ATR(_f64(high), _f64(low), _f64(close), timeperiod=_period(n))


def atr_sma(high: ArrayLike, low: ArrayLike, close: ArrayLike, n: int = 14) -> np.ndarray:
    """Average true range as the simple mean of the last ``n`` true ranges.

    ``rolling_mean(TRANGE, n)`` (TA-Lib ``TRANGE`` + :func:`rolling_mean`): finite
    memory (``n+1`` bars), exact under truncation.  Price distance, shape ``(m,)``,
    NaN for the first ``n`` bars.
    """
    return rolling_mean(true_range(high, low, close), n)


def roc(x: ArrayLike, n: int) -> np.ndarray:
    """Rate of change in percent over ``n`` bars, ``(x[i] / x[i-n] - 1) * 100``
    (TA-Lib ``ROC``).  Point-wise (exact under truncation); shape ``(m,)``, NaN for
    the first ``n`` bars.
    """
    return talib.ROC(_f64(x), timeperiod=_period(n))


#: Momentum as a percent change over ``n`` bars: the same as :func:`roc`.
#: (TA-Lib's ``MOM`` is the absolute difference ``x[i] - x[i-n]``; not used here.)
momentum = roc


def volume_sma(volume: ArrayLike, n: int = 20) -> np.ndarray:
    """Average volume over the last ``n`` bars, current bar included (base units).

    Computed with :func:`rolling_mean` (exact; equal to TA-Lib ``SMA`` up to
    rounding).  Shape ``(m,)``, NaN for the first ``n-1`` bars.
    """
    return rolling_mean(volume, n)


# ------------------------------------------------------------------ finite-window additions
# Appended for the reversion, VWAP and regime code: every function below is finite-memory
# and bit-exact under truncation (each window is accumulated on its own, left to right).
__all__ += [
    "rolling_max",
    "rolling_min",
    "rolling_std",
    "rolling_sum",
    "rsi_cutler",
    "session_vwap",
]


@memoisable
def rolling_sum(x: ArrayLike, n: int) -> np.ndarray:
    """Exact finite-memory moving sum ``x[i-n+1] + ... + x[i]`` (summed left to right).

    ``rolling_sum(x[k:], n)[j] == rolling_sum(x, n)[k+j]`` bit for bit (the sum
    :func:`rolling_mean` divides by ``n``).  Shape ``(m,)``, units of ``x``; NaN for the
    first ``n-1`` bars and for any window containing a NaN.
    """
    a = _f64(x)
    n = _period(n)
    out = np.full(a.shape, np.nan)
    m = a.size - n + 1
    if m <= 0:
        return out
    acc = a[:m].copy()
    for k in range(1, n):
        acc += a[k : k + m]
    out[n - 1 :] = acc
    return out


@memoisable
def rolling_std(x: ArrayLike, n: int, ddof: int = 0) -> np.ndarray:
    """Exact finite-memory moving standard deviation of ``x[i-n+1 .. i]``.

    Two passes per window: ``mu = rolling_mean(x, n)``, then
    ``sqrt(sum((x[j] - mu[i])**2) / (n - ddof))`` accumulated left to right, so it is
    bit-exact under truncation.  ``ddof=0`` (default) is the population deviation that
    Bollinger bands use (J. Bollinger, *Bollinger on Bollinger Bands*, 2001, ch. 7);
    ``ddof=1`` equals pandas' ``rolling(n).std()``.  Shape ``(m,)``, units of ``x``; NaN
    for the first ``n-1`` bars.
    """
    a = _f64(x)
    n = _period(n)
    if not 0 <= ddof < n:
        raise ValueError(f"ddof must be in [0, {n - 1}], got {ddof!r}")
    out = np.full(a.shape, np.nan)
    m = a.size - n + 1
    if m <= 0:
        return out
    mu = rolling_mean(a, n)[n - 1 :]
    acc = (a[:m] - mu) ** 2
    for k in range(1, n):
        acc += (a[k : k + m] - mu) ** 2
    out[n - 1 :] = np.sqrt(acc / (n - ddof))
    return out


@memoisable
def rolling_min(x: ArrayLike, n: int) -> np.ndarray:
    """Lowest value of ``x[i-n+1 .. i]`` (exact).  Shape ``(m,)``; NaN for the first
    ``n-1`` bars and for windows containing a NaN."""
    a = _f64(x)
    n = _period(n)
    out = np.full(a.shape, np.nan)
    m = a.size - n + 1
    if m <= 0:
        return out
    acc = a[:m].copy()
    for k in range(1, n):
        acc = np.minimum(acc, a[k : k + m])  # NaN propagates
    out[n - 1 :] = acc
    return out


def rolling_max(x: ArrayLike, n: int) -> np.ndarray:
    """Highest value of ``x[i-n+1 .. i]`` (exact).  Shape ``(m,)``; NaN for the first
    ``n-1`` bars and for windows containing a NaN."""
    a = _f64(x)
    return -rolling_min(-a, n)


def rsi_cutler(x: ArrayLike, n: int = 14) -> np.ndarray:
    """Cutler's RSI in [0, 100]: simple (not Wilder) averages of gains and losses.

    With ``d[j] = x[j] - x[j-1]``, ``G = rolling_mean(max(d, 0), n)`` and
    ``L = rolling_mean(max(-d, 0), n)``: ``RSI = 100 * G / (G + L)``
    (= ``100 - 100 / (1 + G / L)``), and 50 where ``G + L == 0`` (no change in ``n``
    bars).  Source: Cutler's variant of Wilder's RSI (J. W. Wilder, *New Concepts in
    Technical Trading Systems*, 1978), which replaces the exponential smoothing by a
    simple moving average so that the value depends only on the last ``n + 1`` prices
    (en.wikipedia.org/wiki/Relative_strength_index#Cutler's_RSI).  Built on
    :func:`rolling_mean`, so it is bit-exact under truncation (TA-Lib's ``RSI`` is not).

    Shape ``(m,)``, dimensionless; NaN for the first ``n`` bars.
    """
    a = _f64(x)
    n = _period(n, 1)
    d = np.full(a.shape, np.nan)
    if a.size > 1:
        d[1:] = a[1:] - a[:-1]
    with np.errstate(invalid="ignore"):
        gain = rolling_mean(np.where(d > 0, d, np.where(np.isnan(d), np.nan, 0.0)), n)
        loss = rolling_mean(np.where(d < 0, -d, np.where(np.isnan(d), np.nan, 0.0)), n)
        tot = gain + loss
        return np.where(tot > 0, 100.0 * gain / np.where(tot > 0, tot, 1.0),
                        np.where(np.isnan(tot), np.nan, 50.0))


def session_vwap(
    high: ArrayLike, low: ArrayLike, close: ArrayLike, volume: ArrayLike,
    session: ArrayLike, max_bars: int,
) -> np.ndarray:
    """Volume-weighted average price of each bar's session so far.

    ``VWAP[i] = sum(tp[j] * volume[j]) / sum(volume[j])`` over ``j`` from
    ``a = max(s, i - max_bars + 1)`` to ``i``, where ``tp = (high + low + close) / 3`` is
    the typical price and ``s`` the first bar of bar ``i``'s session (the run of
    consecutive bars with the same ``session`` id).  The sums restart at each session
    start (the usual intraday VWAP, e.g. Berkowitz, Logue & Noser, "The total cost of
    transactions on the NYSE", *J. Finance* 43(1), 1988) and are accumulated left to
    right from ``a``, so the value depends only on the last ``max_bars`` bars, bit for
    bit.  ``max_bars`` at least the bars in a session gives the exact session VWAP.

    Parameters
    ----------
    high, low, close : array_like, shape (m,)
        Prices (quote/base).
    volume : array_like, shape (m,)
        Base units.
    session : array_like of int, shape (m,)
        Session id of each bar; negative = outside any session (VWAP NaN).
    max_bars : int
        Most bars one VWAP value spans (>= 1).

    Returns
    -------
    numpy.ndarray, shape (m,)
        Price (quote/base); NaN outside sessions and where the volume sum is 0.
    """
    h, lo, c, v = _f64(high), _f64(low), _f64(close), _f64(volume)
    sid = np.asarray(session, dtype=np.int64)
    L = _period(max_bars)
    m = c.size
    out = np.full(m, np.nan)
    if m == 0:
        return out
    pv = (h + lo + c) / 3.0 * v
    starts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]])
    ends = np.r_[starts[1:], m]
    for s, e in zip(starts, ends, strict=True):
        if sid[s] < 0:
            continue
        head = min(e, s + L)  # bars whose window starts at the session start
        num = np.add.accumulate(pv[s:head])
        den = np.add.accumulate(v[s:head])
        if e > head:  # windows of exactly L bars, summed left to right
            k = e - head
            n_acc = pv[head - L + 1 : head - L + 1 + k].copy()
            d_acc = v[head - L + 1 : head - L + 1 + k].copy()
            for j in range(1, L):
                n_acc += pv[head - L + 1 + j : head - L + 1 + j + k]
                d_acc += v[head - L + 1 + j : head - L + 1 + j + k]
            num, den = np.r_[num, n_acc], np.r_[den, d_acc]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[s:e] = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return out
