"""What an optimizer run in the mesh is worth: the running parameters' baseline, the verdict.

A run's candidate score is its **mean out-of-sample score** over its walk-forward folds
(each fold's best, scored on the window after the one it was fitted on).  The
**baseline** is the mean score of the parameters the strategy agent runs now, on the
*same* out-of-sample windows, with the same objective, cash, commission and sizing
(:func:`baseline_scores`).  The run is **proposed** when (:func:`judge`):

* it has a defined candidate score, and is not flagged overfit (unless allowed);
* its parameters differ from the running ones;
* ``score > baseline + margin`` (an undefined baseline, e.g. no trade, is beaten by any
  defined score).

The verdict is kept as a :class:`ProposalRecord` in the database (``mesh_state`` key
:func:`proposal_key`); the orchestrator marks it ``applied``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from backend.marketdata.candles import Candles
from backend.messages import stable_id
from backend.optimizer.fitness import Scorer
from backend.optimizer.models import OptimizeResult
from backend.optimizer.runner import fitness_context
from backend.optimizer.walkforward import mean_score
from backend.strategies.base import Strategy

__all__ = [
    "ProposalRecord",
    "Verdict",
    "baseline_scores",
    "candles_from_bars",
    "judge",
    "make_request",
    "proposal_key",
]

ParamValues = dict[str, int | float]


class ProposalRecord(BaseModel):
    """The verdict on one finished run and what became of it.

    ``status``: ``proposed`` (awaiting approval or the orchestrator), ``applied`` (the
    :class:`~backend.messages.UpdateStrategyParams` is queued; ``after_seq`` /
    ``command_id`` / ``applied_by`` say when and by whom), ``not_proposed`` (``reason``
    says why).  Scores in the objective's units (``None``: undefined).
    """

    model_config = ConfigDict(extra="ignore")

    run_id: str
    symbol: str
    status: Literal["proposed", "not_proposed", "applied"]
    reason: str
    strategy: str
    params: ParamValues
    current_strategy: str
    current_params: ParamValues
    objective: str
    score: float | None = None
    baseline: float | None = None
    baseline_folds: list[float | None] = []
    margin: float = 0.0
    decided_ts: int
    applied_ts: int | None = None
    applied_by: str | None = None
    apply_reason: str | None = None
    command_id: str | None = None
    after_seq: int | None = None


def proposal_key(run_id: str) -> str:
    """``mesh_state`` key of a run's :class:`ProposalRecord` (at most 64 characters)."""
    rid = run_id if len(run_id) <= 40 else stable_id("run", run_id)
    return f"optimizer_proposal:{rid}"


def candles_from_bars(symbol: str, bars: Mapping[int, Sequence[float]]) -> Candles:
    """``open_time -> (open, high, low, close, volume)`` as :class:`Candles` in time order."""
    times = sorted(bars)
    rows = np.array([bars[t] for t in times], dtype=np.float64).reshape(len(times), 5)
    return Candles(symbol, np.array(times, dtype=np.int64), *(rows[:, k].copy()
                                                               for k in range(5)))


def _defined(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def baseline_scores(
    run: OptimizeResult, candles: Mapping[str, Candles] | Sequence[Candles],
    strategy: str | Strategy, params: Mapping[str, Any], *, settings: Any = None,
) -> tuple[float | None, list[float | None]]:
    """Score ``strategy`` (a name or an instance, e.g. one built from configuration) with
    ``params`` on each out-of-sample window of ``run``.

    Same candles, objective, cash, commission and sizing as the run.  Returns the mean
    (``None`` if undefined) and the per-fold scores (``None`` where undefined).
    """
    name = strategy if isinstance(strategy, str) else strategy.name
    cfg = run.config.model_copy(update={"strategy": name, "fixed": {}})
    ctx = fitness_context(candles, cfg, settings=settings,
                          strategy=None if isinstance(strategy, str) else strategy)
    scorer = Scorer(ctx)
    raw = [scorer.score(ctx.window(f.out_of_sample_window.start, f.out_of_sample_window.end),
                        params)
           for f in run.folds if f.out_of_sample_window is not None]
    return _defined(mean_score(raw)), [_defined(s) for s in raw]


@dataclass(frozen=True)
class Verdict:
    """Whether to propose a run's parameters, and why (scores ``None`` when undefined)."""

    propose: bool
    reason: str
    score: float | None
    baseline: float | None


def judge(
    score: float | None, baseline: float | None, *, margin: float, overfit: bool | None,
    reject_overfit: bool = True, same_params: bool = False,
) -> Verdict:
    """The proposal rule of the module docstring.

    Parameters
    ----------
    score : float or None
        The run's mean out-of-sample score (``None`` / ``-inf``: undefined).
    baseline : float or None
        The running parameters' mean score on the same windows.
    margin : float
        Required improvement, objective units (>= 0).
    overfit : bool or None
        The run's overfit flag.
    reject_overfit : bool
        Refuse runs flagged overfit.
    same_params : bool
        The run's parameters are the running ones.
    """
    s, b = _defined(score), _defined(baseline)
    if s is None:
        return Verdict(False, "the run has no defined out-of-sample score", s, b)
    if overfit and reject_overfit:
        return Verdict(False, "the run is flagged overfit (out-of-sample lost most of the "
                              "in-sample score)", s, b)
    if same_params:
        return Verdict(False, "the best parameters are the running ones", s, b)
    if b is None:
        return Verdict(True, f"out-of-sample {s:.4g} vs running parameters: undefined "
                             "(e.g. no trade) on the same windows", s, b)
    if s > b + margin:
        return Verdict(True, f"out-of-sample {s:.4g} beats the running parameters' {b:.4g} "
                             f"by {s - b:.4g} > margin {margin:g}", s, b)
    return Verdict(False, f"out-of-sample {s:.4g} does not beat the running parameters' "
                          f"{b:.4g} by more than the margin {margin:g}", s, b)


def make_request(settings: Any, symbol: str, strategy: str, *, run_id: str, until_seq: int,
                 requested_by: str, reason: str, **overrides: Any) -> Any:
    """A :class:`~backend.messages.RunOptimizer` for ``symbol``: ``settings.optimizer``'s
    GA settings, with ``overrides`` (``None`` values ignored) on top."""
    from backend.messages import RunOptimizer

    cfg = settings.optimizer
    fields: dict[str, Any] = {
        "objective": cfg.objective, "population": cfg.population,
        "generations": cfg.generations, "walk_forward": cfg.walk_forward, "seed": cfg.seed,
        "sizing": cfg.sizing, "max_bars": cfg.max_bars,
    }
    fields.update({k: v for k, v in overrides.items() if v is not None})
    return RunOptimizer(id=run_id, source=requested_by.split("@")[0] or "optimizer",
                        correlation_id=run_id, run_id=run_id, symbol=symbol,
                        strategy=strategy, until_seq=until_seq, requested_by=requested_by,
                        reason=reason, **fields)
