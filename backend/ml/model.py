"""A trained ML classifier: the fitted scikit-learn pipeline, its metadata, and ``p_up``.

The pipeline is ``StandardScaler -> LogisticRegression`` (:mod:`backend.ml.train`).
Predictions do **not** go through scikit-learn's ``predict_proba``: that multiplies the
feature matrix by the coefficients with BLAS, whose rounding may depend on how many rows
are in the batch, which would break the bit-exact live == backtest rule.
:meth:`TrainedModel.p_up` evaluates the same formula row by row in a fixed order::

    z[t] = b + sum_k w_k * (x[t, k] - mu_k) / s_k      (k in feature order)
    p_up[t] = 1 / (1 + exp(-z[t]))

(``mu``, ``s`` the scaler's mean and scale, ``w``, ``b`` the logistic regression's
coefficients and intercept for the class +1), so a row's probability depends only on
that row.  It equals ``predict_proba(X)[:, 1]`` to ~1e-15.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MODEL_NAME", "ModelMeta", "TrainedModel"]

#: Name of the model family (directory name in the store, ``model`` in messages).
MODEL_NAME = "ml_classifier"


class ModelMeta(BaseModel):
    """Metadata of one trained model (the ``vNNNN.json`` next to ``vNNNN.joblib``).

    Attributes
    ----------
    model, symbol : str
        ``ml_classifier`` and ``BASE/QUOTE``.
    version : int
        Store version (0 until saved).
    feature_set : str
        :data:`backend.ml.features.FEATURE_SET` the model was trained with.
    features : list of str
        Column names, in order.
    horizon : int
        Label horizon (bars).
    params : dict
        Training hyper-parameters (``C``).
    data_start, data_end : int
        Open times (ns UTC) of the first and last bar of the training data.
    bars : int
        Bars of training data; ``rows`` of them labelled and complete (used to fit).
    cv_scores : list of float
        Accuracy on each time-series CV test fold (in [0, 1]); ``cv_score`` their mean.
    cv_gap : int
        Bars left out between each CV training and test fold (>= ``horizon``).
    up_share : float
        Share of +1 labels among the training rows (class balance).
    sklearn_version : str
    trained_at : int
        ns UTC (wall clock: informational only).
    trigger : str
        ``initial``, ``schedule``, ``hit_rate`` or ``manual``.
    trigger_seq : int
        Bar seq that triggered a live retrain (0 otherwise): makes a retried retrain
        reuse the version it already saved.
    sha256 : str
        Of the ``.joblib`` file (set by the store, checked on load).
    """

    model_config = ConfigDict(extra="ignore")

    model: str = MODEL_NAME
    symbol: str
    version: int = Field(default=0, ge=0)
    feature_set: str
    features: list[str]
    horizon: int = Field(ge=1)
    params: dict[str, float] = Field(default_factory=dict)
    data_start: int = Field(ge=0)
    data_end: int = Field(ge=0)
    bars: int = Field(ge=0)
    rows: int = Field(ge=0)
    cv_scores: list[float] = Field(default_factory=list)
    cv_score: float | None = None
    cv_gap: int = Field(default=0, ge=0)
    up_share: float = Field(ge=0, le=1)
    sklearn_version: str = ""
    trained_at: int = Field(default=0, ge=0)
    trigger: str = "manual"
    trigger_seq: int = Field(default=0, ge=0)
    sha256: str = ""


@dataclass(frozen=True, eq=False)
class TrainedModel:
    """A fitted pipeline and its metadata, with the exact row-wise probability.

    Attributes
    ----------
    pipeline : sklearn.pipeline.Pipeline
        ``StandardScaler`` then ``LogisticRegression`` (classes -1, +1).
    meta : ModelMeta
    """

    pipeline: Any
    meta: ModelMeta
    _mu: np.ndarray = field(init=False, repr=False)
    _s: np.ndarray = field(init=False, repr=False)
    _w: np.ndarray = field(init=False, repr=False)
    _b: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        scaler, clf = self.pipeline[0], self.pipeline[-1]
        classes = [int(c) for c in clf.classes_]
        if classes != [-1, 1]:
            raise ValueError(f"model classes must be [-1, 1], got {classes}")
        k = len(self.meta.features)
        w = np.asarray(clf.coef_, dtype=np.float64).reshape(-1)
        if w.size != k or np.asarray(scaler.mean_).size != k:
            raise ValueError(f"model has {w.size} coefficients for {k} features")
        object.__setattr__(self, "_mu", np.asarray(scaler.mean_, dtype=np.float64).copy())
        object.__setattr__(self, "_s", np.asarray(scaler.scale_, dtype=np.float64).copy())
        object.__setattr__(self, "_w", w.copy())
        object.__setattr__(self, "_b", float(np.asarray(clf.intercept_).reshape(-1)[0]))

    @property
    def version(self) -> int:
        """Store version (0 = not saved)."""
        return self.meta.version

    def with_meta(self, **changes: Any) -> TrainedModel:
        """The same pipeline with metadata fields replaced."""
        return TrainedModel(self.pipeline, self.meta.model_copy(update=changes))

    def p_up(self, x: np.ndarray) -> np.ndarray:
        """Probability that the forward return is positive, row by row.

        Parameters
        ----------
        x : numpy.ndarray
            Shape ``(n, k)`` feature matrix (:func:`backend.ml.features.feature_matrix`).

        Returns
        -------
        numpy.ndarray
            Shape ``(n,)`` float64 in [0, 1]; NaN where a feature is NaN.  Row ``t``
            depends only on ``x[t]`` (bit-exact whatever the batch).
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self._w.size:
            raise ValueError(f"expected a feature matrix (n, {self._w.size}), got {x.shape}")
        z = np.full(x.shape[0], self._b)
        for k in range(self._w.size):
            z += self._w[k] * ((x[:, k] - self._mu[k]) / self._s[k])
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-z))
