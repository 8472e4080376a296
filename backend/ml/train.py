"""Training the ML classifier: features + labels -> a fitted, cross-validated model.

Pipeline: ``StandardScaler`` then ``LogisticRegression`` (L2, ``C``, lbfgs): no
randomness, so the same data gives the same model.  Rows: every bar of the training data
whose features are complete and whose label (sign of the forward return over
``horizon`` bars, :mod:`backend.ml.labels`) is +1 or -1 *within the training data*.

Cross-validation: :class:`sklearn.model_selection.TimeSeriesSplit` over those rows in time
order, ``gap = horizon``: each test fold comes after its training fold, and at least
``horizon`` rows (so >= ``horizon`` bars) are left out between them, so no training
label (which looks ``horizon`` bars ahead) reaches into the test fold.  The score is the
accuracy on each test fold (share of rows whose predicted side matched the label), in
[0, 1]; 0.5 is a coin toss.  The final model is fitted on all rows.

Source: scikit-learn user guide, "Cross-validation of time series data"
(``TimeSeriesSplit``); the labelling is the "fixed-time horizon" method of M. Lopez de
Prado, *Advances in Financial Machine Learning* (2018), ch. 3.2.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import sklearn
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import TimeSeriesSplit
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from backend.marketdata.ohlcv import OHLCV
from backend.ml.features import FEATURE_NAMES, FEATURE_SET, feature_matrix
from backend.ml.labels import forward_sign, trainable
from backend.ml.model import ModelMeta, TrainedModel

__all__ = ["CV_SPLITS", "MIN_ROWS", "cv_folds", "make_pipeline", "train_model"]

#: Time-series CV folds.
CV_SPLITS = 5
#: Fewest trainable rows (complete features, +1/-1 label) a model is fitted on.
MIN_ROWS = 200


def make_pipeline(C: float = 1.0) -> Pipeline:  # noqa: N803 - scikit-learn's name
    """The unfitted, deterministic pipeline: standardise, then L2 logistic regression.

    Parameters
    ----------
    C : float
        Inverse regularisation strength (> 0; smaller = stronger shrinkage).
    """
    return Pipeline([
        ("scale", StandardScaler()),
        ("logit", LogisticRegression(C=float(C), max_iter=2000)),
    ])


def cv_folds(rows: np.ndarray, horizon: int, n_splits: int = CV_SPLITS,
             ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Time-series CV folds over the trainable ``rows`` (bar indices, ascending).

    Returns
    -------
    list of (train, test)
        Bar indices (int64 arrays); every test bar comes after every training bar, with
        ``test.min() - train.max() > horizon`` (the training labels, which use closes up
        to ``train.max() + horizon``, end before the first test bar).
    """
    splitter = TimeSeriesSplit(n_splits=n_splits, gap=int(horizon))
    return [(rows[a], rows[b]) for a, b in splitter.split(rows)]


def train_model(
    bars: OHLCV,
    *,
    symbol: str,
    horizon: int,
    C: float = 1.0,  # noqa: N803 - scikit-learn's name
    end: int | None = None,
    n_splits: int = CV_SPLITS,
    trigger: str = "manual",
    trigger_seq: int = 0,
) -> TrainedModel:
    """Fit and cross-validate a classifier on the bars ``[0, end)``.

    Parameters
    ----------
    bars : OHLCV
        Shape ``(n,)`` arrays, time ascending (prices quote/base, volume base units).
    symbol : str
        ``BASE/QUOTE`` (metadata).
    horizon : int
        Label horizon in bars (>= 1).
    C : float
        Logistic-regression inverse regularisation.
    end : int, optional
        Use only bars ``0 .. end-1`` (features *and* labels); default all.  Labels whose
        forward close lies at or after ``end`` are not used.
    n_splits : int
        CV folds.
    trigger, trigger_seq
        Why it was trained, recorded in the metadata.

    Returns
    -------
    TrainedModel
        Version 0 (not saved; see :class:`backend.ml.store.ModelStore`).

    Raises
    ------
    ValueError
        Fewer than :data:`MIN_ROWS` trainable rows, or a single class among them.
    """
    n = len(bars.close) if end is None else max(0, min(int(end), len(bars.close)))
    close = np.asarray(bars.close, dtype=np.float64)[:n]
    x = feature_matrix(_Prefix(bars, n))
    y = forward_sign(close, horizon)
    rows = trainable(x, y)
    if rows.size < MIN_ROWS:
        raise ValueError(f"too little data to train: {rows.size} labelled bars with complete "
                         f"features out of {n} (need >= {MIN_ROWS})")
    ups = int(np.count_nonzero(y[rows] > 0))
    if ups in (0, rows.size):
        raise ValueError("cannot train: the forward return has a single sign over the data")
    base = make_pipeline(C)
    scores: list[float] = []
    # one BLAS thread: 5000 x 17 matrices are too small to gain from threads, and a busy
    # machine makes threaded BLAS several times slower (and its sums order-dependent)
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        for tr, te in cv_folds(rows, horizon, n_splits):
            if np.unique(y[tr]).size < 2:
                scores.append(float(np.mean(y[te] == y[tr][0])))
                continue
            m = clone(base).fit(x[tr], y[tr])
            scores.append(float(np.mean(m.predict(x[te]) == y[te])))
        pipe = clone(base).fit(x[rows], y[rows])
    t = np.asarray(bars.time)
    meta = ModelMeta(
        symbol=symbol, feature_set=FEATURE_SET, features=list(FEATURE_NAMES),
        horizon=int(horizon), params={"C": float(C)}, data_start=int(t[0]),
        data_end=int(t[n - 1]), bars=n, rows=int(rows.size), cv_scores=scores,
        cv_score=float(np.mean(scores)) if scores else None, cv_gap=int(horizon),
        up_share=ups / rows.size, sklearn_version=sklearn.__version__,
        trained_at=time.time_ns(), trigger=trigger, trigger_seq=int(trigger_seq),
    )
    return TrainedModel(pipe, meta)


class _Prefix:
    """The first ``n`` bars of an OHLCV (views)."""

    def __init__(self, bars: OHLCV, n: int) -> None:
        self.time = np.asarray(bars.time)[:n]
        self.open = np.asarray(bars.open)[:n]
        self.high = np.asarray(bars.high)[:n]
        self.low = np.asarray(bars.low)[:n]
        self.close = np.asarray(bars.close)[:n]
        self.volume = np.asarray(bars.volume)[:n]


