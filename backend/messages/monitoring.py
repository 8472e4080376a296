"""Monitoring messages: risk-limit alerts and ML model retraining and live quality."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from backend.messages.envelope import Message, Score


class RiskAlertRaised(Message):
    """A risk figure is near or over its limit (on ``risk_alerts``).

    ``metric`` names the figure (``"var_99"``, ``"cvar_99"``, ``"exposure"`` ...);
    ``value`` and ``limit`` in the metric's units (fractions of equity for VaR/CVaR),
    ``ratio = value / limit``; ``level`` ``"warning"`` when ``ratio`` crossed the
    configured alert ratio, ``"breach"`` when it reached 1; ``symbol`` empty for the
    whole portfolio.
    """

    type: Literal["risk_alert_raised"] = "risk_alert_raised"
    metric: str = Field(min_length=1, max_length=64)
    level: Literal["warning", "breach"]
    value: Annotated[float, Field(allow_inf_nan=False)]
    limit: Annotated[float, Field(allow_inf_nan=False)]
    ratio: Annotated[float, Field(allow_inf_nan=False)]
    symbol: str = Field(default="", max_length=32)
    method: str = Field(default="", max_length=32)
    reason: str = Field(default="", max_length=500)


class ModelRetrainStatus(Message):
    """A model (re)training changed state (on ``retrain_status``).

    ``trigger`` why it ran; ``version`` the model version produced (0 until one is);
    ``data_start``/``data_end`` the training bars' open times (ns UTC); ``cv_score``
    the mean time-series cross-validation score (accuracy in [0, 1]) or ``None``.
    """

    type: Literal["model_retrain_status"] = "model_retrain_status"
    model: str = Field(min_length=1, max_length=64)
    symbol: str = Field(min_length=1, max_length=32)
    status: Literal["started", "finished", "failed", "adopted", "skipped"]
    trigger: Literal["initial", "schedule", "hit_rate", "manual"]
    version: int = Field(default=0, ge=0)
    data_start: int = Field(default=0, ge=0)
    data_end: int = Field(default=0, ge=0)
    bars: int = Field(default=0, ge=0)
    cv_score: Score = None
    error: str = Field(default="", max_length=2000)


class ModelMetricsReported(Message):
    """Live quality of a model (on ``model_metrics``).

    ``hit_rate`` share of resolved predictions whose side matched the sign of the
    forward return (``None`` before any resolved), over the last ``window`` resolved
    ones (``predictions`` of them); ``threshold`` the hit rate below which it retrains.
    """

    type: Literal["model_metrics_reported"] = "model_metrics_reported"
    model: str = Field(min_length=1, max_length=64)
    symbol: str = Field(min_length=1, max_length=32)
    version: int = Field(ge=0)
    hit_rate: Score = None
    predictions: int = Field(default=0, ge=0)
    window: int = Field(default=0, ge=0)
    threshold: Annotated[float, Field(ge=0, le=1)] = 0.0
    cv_score: Score = None
    bar_seq: int = Field(default=0, ge=0)
