"""Genetic-algorithm optimizer (DEAP) of strategy parameters, with walk-forward validation.

* :class:`Genome` -- genes from a strategy's declared :class:`ParamSpec` s (int and float
  ranges), bounded crossover/mutation, repair of cross-parameter constraints;
* :func:`optimize` -- the GA (tournament selection, elitism, hall of fame, seeded) per
  walk-forward fold, in-sample fit and out-of-sample score, the overfit flag;
* :class:`FitnessContext` / :class:`Scorer` -- fitness with the fast all-in evaluator
  (or ``sizing="risk"`` through the backtester);
* :func:`make_executor` -- in process, a local process pool, or Dask distributed;
* :class:`StoreObserver` (database) and :func:`optimize_async` / :class:`BusObserver`
  (``retrain_status`` and ``model_metrics``).

Units: cash in quote currency, commission a fraction of notional per side, times in ns
UTC, scores in the objective's units (see :mod:`backend.optimizer.models`).
"""

from __future__ import annotations

from backend.optimizer.fitness import GA_OBJECTIVES, FitnessContext, Scorer, Window
from backend.optimizer.ga import GAResult, run_ga
from backend.optimizer.genome import INFEASIBLE, Gene, Genome
from backend.optimizer.models import (
    FoldResult,
    GenerationStats,
    HallOfFameEntry,
    OptimizeConfig,
    OptimizeResult,
    WindowInfo,
)
from backend.optimizer.parallel import (
    DaskExecutor,
    Executor,
    InProcess,
    ProcessPool,
    make_executor,
)
from backend.optimizer.publish import BusObserver, optimize_async
from backend.optimizer.runner import (
    Observer,
    StoreObserver,
    finished_message,
    fitness_context,
    optimize,
    progress_message,
)
from backend.optimizer.walkforward import OVERFIT_RATIO, Fold, is_overfit, split_folds

__all__ = [
    "GA_OBJECTIVES",
    "INFEASIBLE",
    "OVERFIT_RATIO",
    "BusObserver",
    "DaskExecutor",
    "Executor",
    "FitnessContext",
    "Fold",
    "FoldResult",
    "GAResult",
    "Gene",
    "GenerationStats",
    "Genome",
    "HallOfFameEntry",
    "InProcess",
    "Observer",
    "OptimizeConfig",
    "OptimizeResult",
    "ProcessPool",
    "Scorer",
    "StoreObserver",
    "Window",
    "WindowInfo",
    "finished_message",
    "fitness_context",
    "is_overfit",
    "make_executor",
    "optimize",
    "optimize_async",
    "progress_message",
    "run_ga",
    "split_folds",
]
