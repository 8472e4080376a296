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
live history and on a full backtest (see :class:`backend.strategies.StrategyRunner`)
therefore uses :func:`rolling_mean` (each window summed on its own, in a fixed
order) and :func:`atr_sma` (rolling mean of TA-Lib's ``TRANGE``) instead; ``TRANGE``
and ``ROC`` are point-wise, so they are exact too.
"""

from __future__ import annotations

import numpy as np
import talib
from numpy.typing import ArrayLike

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
    a = _f64(x)
    n = _period(n)
    out = np.full(a.shape, np.nan)
    m = a.size - n + 1
    if m <= 0:
        return out
    acc = a[:m].copy()
    for k in range(1, n):  # x[i-n+1] + x[i-n+2] + ... + x[i], left to right
        acc += a[k : k + m]
    out[n - 1 :] = acc / n
    return out


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
