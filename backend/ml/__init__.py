"""Machine-learning models of the ``ml_classifier`` strategy.

* :mod:`backend.ml.features` -- finite-window, bit-exact OHLCV features;
* :mod:`backend.ml.labels` -- sign of the forward return (no label past the data's end);
* :mod:`backend.ml.model` -- a trained model, its metadata, the exact ``p_up``;
* :mod:`backend.ml.train` -- deterministic pipeline, time-series cross-validation;
* :mod:`backend.ml.store` -- versioned model files with SHA-256 checks;
* :mod:`backend.ml.live` -- the live hit-rate monitor, retrain rule and agent state;

Nothing is imported here: :mod:`backend.strategies` imports these modules.
"""

__all__ = [
    "features",
    "labels",
    "live",
    "model",
    "store",
    "train",
]
