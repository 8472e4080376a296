"""Market regime of a bar, from closing prices only: trend direction and volatility level.

Every bar ``i`` with at least :data:`LOOKBACK` bars of history gets a label
``"<trend>/<vol>"``, e.g. ``"ranging/high_vol"``:

Trend (Kaufman's efficiency ratio over :data:`TREND_WINDOW` bars)
    ``ER = |c[i] - c[i-N]| / sum(|c[j] - c[j-1]|, j = i-N+1 .. i)`` in [0, 1]
    (P. J. Kaufman, *Smarter Trading*, 1995; *Trading Systems and Methods*, ch. 17): the
    net move over the path travelled.  ``trending_up`` when ``ER >= ER_MIN`` and the
    net move is up, ``trending_down`` when ``ER >= ER_MIN`` and it is down, else
    ``ranging`` (also when the price did not move at all).  ``ER_MIN = 0.2``: on the
    shipped 5-minute BTC pairs the 48-bar ER has a median of 0.06-0.11, a random walk's
    is ~0.1, so 0.2 means about twice as directional as noise (4-15% of their bars
    are trending).
Volatility (rolling deviation of log returns against its own trailing distribution)
    ``sigma[t] = std(ln(c[j] / c[j-1]), last VOL_WINDOW returns to t)`` (population);
    ``high_vol`` when ``sigma[i]`` is above the median of ``sigma`` over the last
    :data:`VOL_REFERENCE` bars (``i`` included), else ``low_vol``.

Finite memory, bit-exact: the label of bar ``i`` is computed from the window of its last
:data:`LOOKBACK` closes alone, each sum accumulated left to right, so it is the same
whatever came before the window (the live runner's capped history gives the backtest's
labels bit for bit).  Bars with fewer than ``LOOKBACK`` bars of history, or a window
holding a non-finite or non-positive close, get ``""`` (unknown).

The parameters are module constants: one definition of the regime for the whole mesh.

Gating (:func:`allowed_mask`): a list of allowed regimes, each a full label
(``"ranging/low_vol"``), a trend only (``"ranging"``: any volatility) or a volatility
only (``"high_vol"``: any trend).  An unknown label (``""``) is never allowed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike

from backend.marketdata.regime_names import LABELS, TRENDS, VOLS, matches, validate_regimes

__all__ = [
    "ER_MIN",
    "LABELS",
    "LOOKBACK",
    "TRENDS",
    "TREND_WINDOW",
    "VOLS",
    "VOL_REFERENCE",
    "VOL_WINDOW",
    "allowed_mask",
    "label_all",
    "labels_at",
    "matches",
    "validate_regimes",
]

#: Bars of the efficiency ratio (48 five-minute bars = 4 hours).
TREND_WINDOW = 48
#: Efficiency ratio at or above which the market is trending.
ER_MIN = 0.2
#: Log returns in one volatility estimate (24 five-minute bars = 2 hours).
VOL_WINDOW = 24
#: Volatility estimates the current one is ranked against (72 bars = 6 hours).
VOL_REFERENCE = 72
#: Closes one label depends on (the window: 96 bars = 8 hours).  Every strategy's
#: signals carry labels (``Strategy.generate``); they are the same live and in a backtest
#: when the live runner evaluates at least ``LOOKBACK`` bars, which the default
#: :class:`backend.strategies.runner.StrategyRunner` always does (>= min(max_history, 256)).
LOOKBACK = max(TREND_WINDOW + 1, VOL_WINDOW + VOL_REFERENCE)

_TABLE = np.array(LABELS + ("",), dtype=object)  # code 6 = unknown


def _codes(windows: np.ndarray) -> np.ndarray:
    """Label codes (index into ``_TABLE``) of ``windows``, shape ``(k, LOOKBACK)``."""
    k = windows.shape[0]
    out = np.full(k, len(LABELS), dtype=np.int64)
    if k == 0:
        return out
    w = windows
    ok = np.isfinite(w).all(axis=1) & (w > 0).all(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        # trend: efficiency ratio over the last TREND_WINDOW bars
        n = TREND_WINDOW
        last = w.shape[1] - 1
        net = w[:, last] - w[:, last - n]
        path = np.abs(w[:, last - n + 1] - w[:, last - n])
        for j in range(last - n + 2, last + 1):
            path += np.abs(w[:, j] - w[:, j - 1])
        er = np.where(path > 0, np.abs(net) / np.where(path > 0, path, 1.0), 0.0)
        trend = np.where(er >= ER_MIN, np.where(net > 0, 0, 1), 2)
        # volatility: std of log returns over VOL_WINDOW, for each of the last
        # VOL_REFERENCE bars; compare the newest with their median
        r = np.log(w[:, 1:] / w[:, :-1])  # (k, LOOKBACK - 1)
        r = r[:, r.shape[1] - (VOL_WINDOW + VOL_REFERENCE - 1):]
        win = sliding_window_view(r, VOL_WINDOW, axis=1)  # (k, VOL_REFERENCE, VOL_WINDOW)
        s = win[:, :, 0].copy()
        for j in range(1, VOL_WINDOW):
            s += win[:, :, j]
        mu = s / VOL_WINDOW
        ss = (win[:, :, 0] - mu) ** 2
        for j in range(1, VOL_WINDOW):
            ss += (win[:, :, j] - mu) ** 2
        sigma = np.sqrt(ss / VOL_WINDOW)
        med = np.median(sigma, axis=1)
        vol = np.where(sigma[:, -1] > med, 0, 1)
    code = trend * len(VOLS) + vol
    out[ok] = code[ok]
    return out


def labels_at(close: ArrayLike, idx: ArrayLike) -> np.ndarray:
    """Regime labels of the bars ``idx`` of a close series.

    Parameters
    ----------
    close : array_like, shape (m,)
        Closes (quote/base), time ascending.
    idx : array_like of int, shape (k,)
        Bar indices in ``[0, m)``.

    Returns
    -------
    numpy.ndarray of object (str), shape (k,)
        ``"<trend>/<vol>"``, or ``""`` where fewer than :data:`LOOKBACK` bars are
        available or the window holds a non-finite or non-positive close.
    """
    c = np.ascontiguousarray(close, dtype=np.float64)
    ix = np.asarray(idx, dtype=np.int64).reshape(-1)
    out = np.full(ix.shape, len(LABELS), dtype=np.int64)
    have = ix >= LOOKBACK - 1
    if have.any() and c.size >= LOOKBACK:
        windows = sliding_window_view(c, LOOKBACK)[ix[have] - (LOOKBACK - 1)]
        out[have] = _codes(windows)
    return _TABLE[out]


def label_all(close: ArrayLike) -> np.ndarray:
    """:func:`labels_at` of every bar: object array of str, shape ``(m,)``."""
    c = np.ascontiguousarray(close, dtype=np.float64)
    return labels_at(c, np.arange(c.size))


def allowed_mask(labels: np.ndarray, allowed: Sequence[str]) -> np.ndarray:
    """Boolean mask, shape ``(k,)``: which ``labels`` :func:`matches` ``allowed``."""
    return np.fromiter((matches(str(x), allowed) for x in labels), dtype=bool,
                       count=len(labels))
