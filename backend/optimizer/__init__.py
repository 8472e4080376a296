"""Genetic-algorithm optimizer (DEAP) of strategy parameters, with walk-forward validation.

* :mod:`backend.optimizer.names` -- the objectives and sizings by name (``GA_OBJECTIVES``,
  ``SIZINGS``);
* :mod:`backend.optimizer.models` -- the configuration and results (``OptimizeConfig``,
  ``OptimizeResult``; pydantic, no numeric library);
* :mod:`backend.optimizer.genome` -- genes from a strategy's declared ``ParamSpec`` s (int
  and float ranges), bounded crossover/mutation, repair of cross-parameter constraints;
* :mod:`backend.optimizer.fitness` -- ``FitnessContext`` / ``Scorer``: fitness with the
  fast all-in evaluator (or ``sizing="risk"`` through the backtester);
* :mod:`backend.optimizer.ga` -- the GA on one window (tournament selection, elitism, hall
  of fame, seeded);
* :mod:`backend.optimizer.walkforward` -- walk-forward folds and the overfit flag;
* :mod:`backend.optimizer.runner` -- ``optimize``: one run, fold by fold, with observers
  (``StoreObserver`` writes the database);
* :mod:`backend.optimizer.parallel` -- ``make_executor``: in process, a local process pool,
  or Dask distributed;
* :mod:`backend.optimizer.publish` -- ``optimize_async`` / ``BusObserver``
  (``retrain_status`` and ``model_metrics``);
* :mod:`backend.optimizer.proposal` -- what a run in the mesh is worth against the running
  parameters.

Units: cash in quote currency, commission a fraction of notional per side, times in ns
UTC, scores in the objective's units (see :mod:`backend.optimizer.models`).

Nothing is imported here: import the submodules.  The package stays light so that the
command line and the API load the optimizer's models without DEAP, NumPy or the backtester.
"""

__all__ = [
    "fitness",
    "ga",
    "genome",
    "models",
    "names",
    "parallel",
    "proposal",
    "publish",
    "runner",
    "walkforward",
]
