"""Feature matrix of the ML classifier: finite-window, bit-exact functions of OHLCV bars.

Every column at bar ``t`` is a function of the bars ``t - FEATURE_WARMUP + 1 .. t`` only,
computed element-wise or with windows summed on their own in a fixed order
(:func:`backend.indicators.rolling_mean`, :func:`rolling_std` below, TA-Lib ``TRANGE``),
so ``feature_matrix(bars[k:])[j] == feature_matrix(bars)[k + j]`` bit for bit once
``j >= FEATURE_WARMUP - 1`` (the finite-memory rule of
:class:`backend.strategies.runner.StrategyRunner`).  No Wilder/exponential smoothing.

Columns (:data:`FEATURE_NAMES`), all dimensionless:

* ``ret_k`` (k = 1, 3, 6, 12, 24): simple return ``close[t] / close[t-k] - 1``;
* ``rsi_14``: Cutler's RSI (simple means of gains and losses over 14 bars, i.e.
  ``100 * G / (G + L)``), rescaled to ``(RSI - 50) / 50`` in [-1, 1] (0 when both are 0);
* ``dist_sma_k`` (k = 10, 20, 50): ``close / SMA(close, k) - 1``;
* ``sma_10_50``: ``SMA(10) / SMA(50) - 1`` (trend);
* ``bb_z_20``: Bollinger z-score ``(close - SMA20) / std20`` (population std; 0 if std 0);
* ``atr_pct_14``: ``mean(true range, 14) / close``;
* ``vol_ret_20``: standard deviation of the 1-bar returns over 20 bars;
* ``range_pct``: ``(high - low) / close``;  ``body_pct``: ``(close - open) / open``;
* ``vol_z_20``: volume z-score over 20 bars (0 if std 0);
* ``vol_ratio_5_50``: ``mean(volume, 5) / mean(volume, 50) - 1`` (0 if the mean is 0).

Warm-up: NaN until every column is defined (the first :data:`FEATURE_WARMUP` - 1 bars).
"""

from __future__ import annotations

import numpy as np

from backend import indicators as ind
from backend.marketdata.ohlcv import OHLCV

__all__ = ["FEATURE_NAMES", "FEATURE_SET", "FEATURE_WARMUP", "feature_matrix", "rolling_std"]

#: Version tag of the feature definitions (stored with each model; a model is only
#: usable with the same feature set).
FEATURE_SET = "ohlcv-v1"

_RET_LAGS = (1, 3, 6, 12, 24)
_SMA_LENS = (10, 20, 50)

FEATURE_NAMES: tuple[str, ...] = (
    *(f"ret_{k}" for k in _RET_LAGS),
    "rsi_14",
    *(f"dist_sma_{k}" for k in _SMA_LENS),
    "sma_10_50",
    "bb_z_20",
    "atr_pct_14",
    "vol_ret_20",
    "range_pct",
    "body_pct",
    "vol_z_20",
    "vol_ratio_5_50",
)

#: Bars needed before the first complete row (row ``FEATURE_WARMUP - 1``): the longest
#: window is 50 bars (SMA 50, the 50-bar volume mean); ``ret_24`` needs 25 bars,
#: ``vol_ret_20`` 21, ``rsi_14`` and ``atr_pct_14`` 15.
FEATURE_WARMUP = 50


def rolling_std(x: np.ndarray, n: int) -> np.ndarray:
    """Exact finite-memory population standard deviation over the last ``n`` values.

    ``sqrt(mean((x[i-k] - m[i])**2, k = n-1 .. 0))`` with ``m = rolling_mean(x, n)``; the
    squares are summed in the fixed order oldest -> newest, so the value at ``i`` depends
    only on ``x[i-n+1 .. i]`` bit for bit.

    Parameters
    ----------
    x : numpy.ndarray, shape (m,)
    n : int
        Window length (>= 1).

    Returns
    -------
    numpy.ndarray, shape (m,)
        NaN for the first ``n - 1`` values (and windows holding a NaN); units of ``x``.
    """
    a = np.ascontiguousarray(x, dtype=np.float64)
    mean = ind.rolling_mean(a, n)
    out = np.full(a.shape, np.nan)
    m = a.size - n + 1
    if m <= 0:
        return out
    mu = mean[n - 1:]
    acc = (a[:m] - mu) ** 2
    for k in range(1, n):
        acc += (a[k:k + m] - mu) ** 2
    out[n - 1:] = np.sqrt(acc / n)
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den``, 0 where ``den == 0`` (NaN stays NaN)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den == 0, 0.0, num / den)


def feature_matrix(bars: OHLCV) -> np.ndarray:
    """The feature matrix of ``bars``.

    Parameters
    ----------
    bars : OHLCV
        Shape ``(n,)`` arrays, time ascending; prices quote/base, volume base units.

    Returns
    -------
    numpy.ndarray
        Shape ``(n, len(FEATURE_NAMES))`` float64, columns in :data:`FEATURE_NAMES`
        order; row ``t`` uses only bars ``t - FEATURE_WARMUP + 1 .. t``; NaN rows during
        the warm-up (any row with a NaN is incomplete).
    """
    o = np.ascontiguousarray(bars.open, dtype=np.float64)
    h = np.ascontiguousarray(bars.high, dtype=np.float64)
    lo = np.ascontiguousarray(bars.low, dtype=np.float64)
    c = np.ascontiguousarray(bars.close, dtype=np.float64)
    v = np.ascontiguousarray(bars.volume, dtype=np.float64)
    cols: list[np.ndarray] = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for k in _RET_LAGS:
            cols.append(c / ind.lag(c, k) - 1.0)
        diff = c - ind.lag(c, 1)
        gain = ind.rolling_mean(np.where(diff > 0, diff, 0.0), 14)
        loss = ind.rolling_mean(np.where(diff < 0, -diff, 0.0), 14)
        gl = gain + loss
        rsi = np.where(gl == 0, 0.0, (gain - loss) / gl)  # (RSI - 50) / 50 = (G - L)/(G + L)
        rsi[:14] = np.nan  # bar 0 has no previous close: the first full window ends at 14
        cols.append(rsi)
        sma = {k: ind.rolling_mean(c, k) for k in _SMA_LENS}
        for k in _SMA_LENS:
            cols.append(c / sma[k] - 1.0)
        cols.append(sma[10] / sma[50] - 1.0)
        cols.append(_ratio(c - sma[20], rolling_std(c, 20)))
        cols.append(ind.atr_sma(h, lo, c, 14) / c)
        cols.append(rolling_std(c / ind.lag(c, 1) - 1.0, 20))
        cols.append((h - lo) / c)
        cols.append((c - o) / o)
        cols.append(_ratio(v - ind.rolling_mean(v, 20), rolling_std(v, 20)))
        cols.append(_ratio(ind.rolling_mean(v, 5), ind.rolling_mean(v, 50)) - 1.0)
    x = np.column_stack(cols) if cols else np.empty((c.size, 0))
    x[: min(FEATURE_WARMUP - 1, c.size)] = np.nan
    return x
