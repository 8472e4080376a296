"""Optimizer messages: runs, their progress and results, parameter proposals, hot reload."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.messages.envelope import Message, Score

ParamValues = dict[str, float | int]


class OptimizerProgressed(Message):
    """One GA generation done (on ``retrain_status``).

    ``best``/``mean``/``std`` of the generation's fitness in the objective's units
    (``None`` when undefined), ``evaluations`` the fold's distinct parameter sets scored
    so far, ``best_params`` the best set found so far in this fold.
    """

    type: Literal["optimizer_progressed"] = "optimizer_progressed"
    run_id: str = Field(min_length=1, max_length=128)
    strategy: str = Field(min_length=1, max_length=64)
    objective: str = Field(min_length=1, max_length=32)
    fold: int = Field(ge=0)
    folds: int = Field(ge=1)
    generation: int = Field(ge=0)
    generations: int = Field(ge=0)
    best: Score = None
    mean: Score = None
    std: Score = None
    evaluations: int = Field(default=0, ge=0)
    best_params: ParamValues = Field(default_factory=dict)


class FoldScore(BaseModel):
    """One walk-forward fold inside an :class:`OptimizerFinished`.

    Windows ``[start, end)`` in ns UTC (``oos_*`` 0 without walk-forward).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    fold: int = Field(ge=0)
    params: ParamValues
    in_sample: Score = None
    out_of_sample: Score = None
    overfit: bool | None = None
    is_start: int = Field(ge=0)
    is_end: int = Field(ge=0)
    oos_start: int = Field(default=0, ge=0)
    oos_end: int = Field(default=0, ge=0)


class OptimizerFinished(Message):
    """An optimization run ended (on ``model_metrics``).

    ``best_params`` with its ``in_sample``/``out_of_sample`` scores (the last fold's
    fit), the folds' means, the overfit flag (``None``: no out-of-sample score), or
    ``status="failed"`` with ``error``.
    """

    type: Literal["optimizer_finished"] = "optimizer_finished"
    run_id: str = Field(min_length=1, max_length=128)
    strategy: str = Field(min_length=1, max_length=64)
    objective: str = Field(min_length=1, max_length=32)
    status: Literal["finished", "failed"] = "finished"
    symbols: list[str] = Field(default_factory=list)
    best_params: ParamValues = Field(default_factory=dict)
    in_sample: Score = None
    out_of_sample: Score = None
    mean_in_sample: Score = None
    mean_out_of_sample: Score = None
    overfit: bool | None = None
    folds: list[FoldScore] = Field(default_factory=list)
    evaluations: int = Field(default=0, ge=0)
    started_ns: int = Field(default=0, ge=0)
    finished_ns: int = Field(default=0, ge=0)
    error: str = Field(default="", max_length=2000)


# ------------------------------------------------------------------ optimizer in the mesh
Objective = Literal["sharpe", "sortino", "calmar", "return_dd"]


class RunOptimizer(Message):
    """Command to the optimizer agent (on ``optimizer:requests``): optimize ``strategy`` on
    the bars of ``symbol`` that the market_data agent has published.

    ``run_id`` names the run (its database row).  ``until_seq`` caps the bars used at that
    replay ``seq`` (the cursor when the run was asked, so a redelivered request sees the
    same data; 0 = every bar held); ``max_bars`` keeps the most recent bars of the symbol.
    ``requested_by`` / ``reason`` say who asked and why (``api@host``, ``schedule``).
    """

    type: Literal["run_optimizer"] = "run_optimizer"
    run_id: str = Field(min_length=1, max_length=128)
    symbol: str = Field(min_length=1, max_length=32)
    strategy: str = Field(min_length=1, max_length=64)
    objective: Objective = "sharpe"
    population: int = Field(default=30, ge=4, le=10_000)
    generations: int = Field(default=10, ge=0, le=10_000)
    walk_forward: int = Field(default=3, ge=1, le=100)
    seed: int = Field(default=0, ge=0)
    sizing: Literal["all-in", "risk"] = "risk"
    max_bars: int = Field(default=5000, ge=2)
    until_seq: int = Field(default=0, ge=0)
    requested_by: str = Field(default="", max_length=128)
    reason: str = Field(default="", max_length=500)


class ParamsProposed(Message):
    """The optimizer agent proposes ``params`` for the strategy agent of ``symbol`` (on
    ``optimizer:proposals``).

    ``score`` is run ``run_id``'s mean out-of-sample score over its walk-forward folds,
    ``baseline`` the running parameters' (``current_*``) mean score on the same windows
    (``None``: undefined, e.g. no trade); ``score > baseline + margin`` (objective units).
    """

    type: Literal["params_proposed"] = "params_proposed"
    run_id: str = Field(min_length=1, max_length=128)
    symbol: str = Field(min_length=1, max_length=32)
    strategy: str = Field(min_length=1, max_length=64)
    params: ParamValues
    current_strategy: str = Field(min_length=1, max_length=64)
    current_params: ParamValues = Field(default_factory=dict)
    objective: Objective = "sharpe"
    score: Annotated[float, Field(allow_inf_nan=False)]
    baseline: Score = None
    margin: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0


class UpdateStrategyParams(Message):
    """Command to the strategy agent of ``symbol`` (on ``strategy:params``): run
    ``strategy`` with ``params`` from its first bar with ``seq > after_seq`` on.

    ``after_seq`` is the market_data cursor read in the same WATCH/MULTI that queued the
    command, so every bar published before the command keeps the old parameters and every
    later bar gets the new ones, whatever the processes' timing.  ``run_id`` is the
    optimizer run (empty if set by hand); ``actor`` / ``reason`` are audited.
    """

    type: Literal["update_strategy_params"] = "update_strategy_params"
    symbol: str = Field(min_length=1, max_length=32)
    strategy: str = Field(min_length=1, max_length=64)
    params: ParamValues
    after_seq: int = Field(ge=0)
    run_id: str = Field(default="", max_length=128)
    actor: str = Field(min_length=1, max_length=128)
    reason: str = Field(default="", max_length=500)


class StrategyParamsUpdated(Message):
    """A strategy agent switched to ``params`` (on ``strategy:params``): its signals from
    bar ``from_seq`` on carry them.  ``command_id`` is the :class:`UpdateStrategyParams`."""

    type: Literal["strategy_params_updated"] = "strategy_params_updated"
    agent_id: str = Field(min_length=1, max_length=128)
    symbol: str = Field(min_length=1, max_length=32)
    strategy: str = Field(min_length=1, max_length=64)
    params: ParamValues
    old_strategy: str = Field(min_length=1, max_length=64)
    old_params: ParamValues = Field(default_factory=dict)
    from_seq: int = Field(ge=0)
    command_id: str = Field(min_length=1, max_length=128)
    run_id: str = Field(default="", max_length=128)
