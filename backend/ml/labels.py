"""Labels of the ML classifier: the sign of the forward return over ``horizon`` bars.

``label[t] = sign(close[t + h] - close[t])``: +1 the price rose over the next ``h`` bars,
-1 it fell, 0 it closed unchanged (a tie: rare at ``h >= 3`` on the sample data, < 1%).
Rows with ``t + h`` beyond the data have no label (NaN) and are never used to train.
Training uses only rows labelled +1 or -1 (:func:`trainable`); ties are dropped, so the
classifier is binary (up / down) and its probability is ``p_up``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["forward_sign", "trainable"]


def forward_sign(close: np.ndarray, horizon: int, end: int | None = None) -> np.ndarray:
    """Sign of the forward return of each bar, using closes up to ``end`` only.

    Parameters
    ----------
    close : numpy.ndarray, shape (n,)
        Closes (quote/base).
    horizon : int
        ``h >= 1`` bars.
    end : int, optional
        Only ``close[:end]`` may be used (default: all ``n``): ``label[t]`` is NaN when
        ``t + h >= end``.  This is how training on a prefix never sees later prices.

    Returns
    -------
    numpy.ndarray
        Shape ``(n,)`` float64 in {-1, 0, +1}, NaN where unlabeled.
    """
    if int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be an integer >= 1, got {horizon!r}")
    c = np.asarray(close, dtype=np.float64)
    n = c.size
    end = n if end is None else max(0, min(int(end), n))
    out = np.full(n, np.nan)
    m = end - horizon
    if m > 0:
        out[:m] = np.sign(c[horizon:end] - c[:m])
    return out


def trainable(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Rows usable for training: every feature finite and a label of +1 or -1.

    Parameters
    ----------
    features : numpy.ndarray, shape (n, k)
    labels : numpy.ndarray, shape (n,)

    Returns
    -------
    numpy.ndarray
        Row indices, int64 shape ``(m,)``, ascending (time order).
    """
    ok = np.isfinite(features).all(axis=1) & np.isfinite(labels) & (labels != 0)
    return np.flatnonzero(ok)
