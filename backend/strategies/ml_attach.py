"""Putting a trained model into a (possibly wrapped) ``ml_classifier`` strategy.

A configured strategy may be the :class:`~backend.strategies.ml_classifier.MlClassifier`
itself or a wrapper around it that keeps it as ``inner`` (e.g.
:class:`~backend.strategies.regime_gate.RegimeGated`, which every configured strategy is
built as).  :func:`find_ml` finds it; :func:`attach_model` returns the same structure
with a :class:`~backend.strategies.ml_classifier.FittedMlClassifier` inside (wrappers are
shallow-copied, the original is left unchanged).  A ``combined`` strategy with an ML
component is not handled.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from backend.ml.model import TrainedModel
from backend.strategies.base import Strategy
from backend.strategies.ml_classifier import FittedMlClassifier, MlClassifier

__all__ = ["attach_model", "find_ml"]

_MAX_DEPTH = 8


def find_ml(strategy: Strategy) -> MlClassifier | None:
    """The :class:`MlClassifier` ``strategy`` is or wraps (through ``inner``), or ``None``."""
    s: object = strategy
    for _ in range(_MAX_DEPTH):
        if isinstance(s, MlClassifier):
            return s
        s = getattr(s, "inner", None)
        if s is None:
            return None
    return None


def attach_model(strategy: Strategy,
                 model: TrainedModel | Mapping[str, TrainedModel]) -> Strategy:
    """``strategy`` with ``FittedMlClassifier(model)`` in place of its ML classifier.

    A copied wrapper's ``config`` (if it has one) is cleared: the configuration does not
    hold the model, so nothing may rebuild the strategy from it
    (:func:`backend.strategies.build.config_of` then refuses it).

    Raises
    ------
    ValueError
        ``strategy`` is not (and does not wrap) an ``ml_classifier``.
    """
    if isinstance(strategy, MlClassifier):
        return FittedMlClassifier(model)
    inner = getattr(strategy, "inner", None)
    if inner is None or find_ml(strategy) is None:
        raise ValueError(f"strategy {strategy.name!r} is not an ml_classifier")
    out = copy.copy(strategy)
    out.inner = attach_model(inner, model)  # type: ignore[attr-defined]
    if hasattr(out, "config"):
        out.config = None  # type: ignore[attr-defined]
    return out
