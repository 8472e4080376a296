"""The optimizer's configuration and results (pydantic v2).

Scores are in the objective's own unit (Sharpe, Sortino and Calmar annualised, a year
being ``periods_per_year`` bars; ``return_dd`` = total return / max drawdown); an
undefined score (no trade, no variance, infeasible parameters) is ``-inf`` in memory and
``null`` in JSON.  Times in ns since the Unix epoch (UTC); cash in quote currency;
commission a fraction of notional per side.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from backend.common import json_safe
from backend.optimizer.names import Objective, Sizing

__all__ = [
    "FoldResult",
    "GenerationStats",
    "HallOfFameEntry",
    "OptimizeConfig",
    "OptimizeResult",
    "WindowInfo",
]



class OptimizeConfig(BaseModel):
    """What to optimize and how (everything that changes the result, plus execution).

    Attributes
    ----------
    strategy : str
        Registry name.
    objective : {"sharpe", "sortino", "calmar", "return_dd"}
    population : int
        Individuals per generation (>= 4).
    generations : int
        Generations after the initial population (>= 0).
    cx_prob, mut_prob : float
        Probability that a pair is crossed over / an individual is mutated.
    tournament : int
        Tournament size of the selection.
    elite : int
        Best individuals of the hall of fame copied unchanged into each new generation.
    hof_size : int
        Distinct best individuals kept in the hall of fame (>= elite).
    cx_eta, mut_eta : float
        Crowding degrees of the crossover and the mutation.
    indpb : float or None
        Per-gene mutation probability (default ``1 / genes``).
    seed_defaults : bool
        The strategy's default parameters are one member of the initial population.
    seed : int
        Seed of Python's ``random`` (DEAP's generator); the same seed, data and config
        give the same result.
    walk_forward : int
        Folds (0: one fit on all the data, no out-of-sample score).
    anchored : bool
        Anchored (growing) in-sample windows instead of rolling ones.
    overfit_ratio : float
        Out-of-sample score must keep this share of the in-sample one.
    cash, commission : float
        Per symbol account (quote) and fee per side (fraction of notional).
    sizing : {"all-in", "risk"}
    whole_units : bool
    fixed : dict
        Parameters held at a value instead of evolved.
    workers : int
        Local processes (1 = in process).
    scheduler : str or None
        Dask scheduler address.
    """

    model_config = ConfigDict(extra="forbid")

    strategy: str
    objective: Objective = "sharpe"
    population: int = Field(default=50, ge=4, le=100_000)
    generations: int = Field(default=30, ge=0, le=100_000)
    cx_prob: float = Field(default=0.7, ge=0, le=1)
    mut_prob: float = Field(default=0.3, ge=0, le=1)
    tournament: int = Field(default=3, ge=1)
    elite: int = Field(default=2, ge=0)
    hof_size: int = Field(default=5, ge=1)
    cx_eta: float = Field(default=15.0, gt=0)
    mut_eta: float = Field(default=20.0, gt=0)
    indpb: float | None = Field(default=None, gt=0, le=1)
    seed_defaults: bool = True
    seed: int = Field(default=0, ge=0)
    walk_forward: int = Field(default=0, ge=0, le=1000)
    anchored: bool = False
    overfit_ratio: float = Field(default=0.5, ge=0, le=1)
    cash: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    commission: float = Field(default=0.001, ge=0, lt=0.1)
    sizing: Sizing = "risk"
    whole_units: bool = False
    fixed: dict[str, float | int] = Field(default_factory=dict)
    workers: int = Field(default=1, ge=1, le=1024)
    scheduler: str | None = None


class GenerationStats(BaseModel):
    """Fitness of one generation (after evaluation and elitism).

    ``best`` is the highest fitness; ``mean``/``std`` (population standard deviation)
    are over the individuals with a defined fitness (``None`` if there are none);
    ``invalid`` counts the others; ``evaluations`` is the fold's running total of
    distinct parameter sets scored.
    """

    fold: int
    generation: int
    best: float
    mean: float | None
    std: float | None
    invalid: int
    evaluations: int
    best_params: dict[str, int | float]


class HallOfFameEntry(BaseModel):
    """One of the best distinct parameter sets of a fold, with its in-sample score."""

    params: dict[str, int | float]
    score: float


class WindowInfo(BaseModel):
    """A time window ``[start, end)`` in ns UTC and the bars in it (all symbols)."""

    start: int
    end: int
    bars: int


class FoldResult(BaseModel):
    """One walk-forward fold: its windows, the GA's best and both scores."""

    fold: int
    in_sample_window: WindowInfo
    out_of_sample_window: WindowInfo | None = None
    best_params: dict[str, int | float]
    in_sample: float
    out_of_sample: float | None = None
    overfit: bool | None = None
    evaluations: int = 0
    hall_of_fame: list[HallOfFameEntry] = Field(default_factory=list)
    generations: list[GenerationStats] = Field(default_factory=list)


class OptimizeResult(BaseModel):
    """A whole optimization run.

    ``best_params`` are the last fold's fit (the most recent in-sample window), with
    that fold's ``in_sample``/``out_of_sample`` scores; ``mean_in_sample`` /
    ``mean_out_of_sample`` average the folds and ``overfit`` applies the rule
    (:mod:`backend.optimizer.walkforward`) to those means.
    """

    run_id: str
    status: Literal["running", "finished", "failed"] = "finished"
    config: OptimizeConfig
    symbols: list[str]
    data_start: int
    data_end: int
    started_ns: int
    finished_ns: int | None = None
    elapsed_s: float = 0.0  # wall time of the GA and the scoring, s
    executor: str = "in-process"
    folds: list[FoldResult] = Field(default_factory=list)
    best_params: dict[str, int | float] = Field(default_factory=dict)
    in_sample: float | None = None
    out_of_sample: float | None = None
    mean_in_sample: float | None = None
    mean_out_of_sample: float | None = None
    overfit: bool | None = None
    evaluations: int = 0
    error: str = ""

    def to_json(self, indent: bool = True) -> bytes:
        """JSON bytes (orjson); infinities become ``null``."""
        opt = orjson.OPT_INDENT_2 if indent else 0
        return orjson.dumps(json_safe(self.model_dump(mode="json")), option=opt)

    def outcome(self) -> dict[str, Any]:
        """The run without its identity and timings: equal for equal seeds and inputs."""
        drop: dict[str, Any] = {k: True for k in ("run_id", "started_ns", "finished_ns",
                                                   "elapsed_s", "executor")}
        drop["config"] = {"workers": True, "scheduler": True}
        return self.model_dump(exclude=drop)
