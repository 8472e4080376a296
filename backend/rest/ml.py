"""REST bodies of ``GET /api/models`` (re-exported by :mod:`backend.rest.models`).

Pydantic only, so the dashboard can import them without scikit-learn.  Times in ns UTC,
accuracies and hit rates as fractions in [0, 1].
"""

from __future__ import annotations

from pydantic import Field

from backend.rest.base import ApiModel

__all__ = ["ModelLiveView", "ModelVersionView", "ModelsView"]


class ModelVersionView(ApiModel):
    """One saved model version (its metadata file).

    ``data_start``/``data_end``: open times of the first and last training bar;
    ``cv_scores``: accuracy per time-series CV fold, ``cv_score`` their mean.
    """

    model: str
    symbol: str
    version: int
    horizon: int
    params: dict[str, float] = Field(default_factory=dict)
    features: list[str] = Field(default_factory=list)
    feature_set: str = ""
    data_start: int
    data_end: int
    bars: int
    rows: int = 0
    cv_scores: list[float] = Field(default_factory=list)
    cv_score: float | None = None
    cv_gap: int = 0
    up_share: float | None = None
    trigger: str = ""
    trigger_seq: int = 0
    trained_at: int = 0
    sklearn_version: str = ""
    sha256: str = ""


class ModelLiveView(ApiModel):
    """What a symbol's strategy agent predicts with, and how well (its ML state).

    ``version``: the active version (``None``: no model yet); ``since_seq``: the first bar
    it applied to; ``pending_version``: trained, adopted on the bar after
    ``pending_after_seq``; ``hit_rate`` over the last ``resolved`` resolved calls
    (``window`` at most); ``threshold``: it retrains below this.
    """

    symbol: str
    agent_id: str
    version: int | None = None
    since_seq: int = 0
    trigger: str = ""
    cv_score: float | None = None
    pending_version: int | None = None
    pending_after_seq: int | None = None
    hit_rate: float | None = None
    resolved: int = 0
    window: int = 0
    threshold: float = 0.0
    bars: int = 0
    bars_since_train: int = 0
    reported: bool = True


class ModelsView(ApiModel):
    """Every saved ``ml_classifier`` version and each symbol's live model state."""

    models_dir: str
    versions: list[ModelVersionView]
    live: list[ModelLiveView]
