"""REST bodies of the optimizer and strategy endpoints (re-exported by
:mod:`backend.rest.models`).

Scores are in the objective's units (Sharpe, Sortino, Calmar annualised; ``return_dd`` =
total return / max drawdown), ``None`` when undefined (no trade, no variance).  Times in
ns since the Unix epoch (UTC).  ``params`` map parameter names to numbers.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from backend.rest.base import ApiModel, RequestModel

Objective = Literal["sharpe", "sortino", "calmar", "return_dd"]
Sizing = Literal["all-in", "risk"]
#: ``queued``: asked, not started yet; then the run's own status.
RunStatus = Literal["queued", "running", "finished", "failed"]
ParamValues = dict[str, int | float]


class OptimizerRunRequest(RequestModel):
    """Start an optimizer run on the bars the mesh recorded; an omitted field takes the
    ``[optimizer]`` configuration's value."""

    symbol: str = Field(min_length=1, max_length=32,
                        description="ETH/BTC, ETHBTC, ETH-BTC or ETH_BTC.")
    strategy: str | None = Field(
        default=None, min_length=1, max_length=64,
        description="Registry name (GET /api/strategies); default: the one the symbol's "
                    "strategy agent runs.")
    objective: Objective | None = None
    population: int | None = Field(default=None, ge=4, le=1000)
    generations: int | None = Field(default=None, ge=0, le=1000)
    walk_forward: int | None = Field(default=None, ge=1, le=20,
                                     description="Folds (at least 1: proposals need an "
                                                 "out-of-sample score).")
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    sizing: Sizing | None = None
    max_bars: int | None = Field(default=None, ge=100, le=200_000,
                                 description="Most recent bars of the symbol to use.")


class OptimizerRunAccepted(ApiModel):
    """A queued run (202): poll ``GET /api/optimizer/runs/{run_id}``.

    ``until_seq``: the run uses the bars published up to this replay seq.
    """

    run_id: str
    status: Literal["queued"] = "queued"
    symbol: str
    strategy: str
    until_seq: int
    message: str


class GenerationView(ApiModel):
    """Fitness of one generation of one walk-forward fold (``std``: population)."""

    fold: int
    generation: int
    best: float | None = None
    mean: float | None = None
    std: float | None = None
    evaluations: int = 0


class FoldView(ApiModel):
    """One walk-forward fold: the best parameters of its in-sample window
    ``[is_start, is_end)`` and their score on the next window ``[oos_start, oos_end)``."""

    fold: int
    params: ParamValues = Field(default_factory=dict)
    in_sample: float | None = None
    out_of_sample: float | None = None
    overfit: bool | None = None
    is_start: int = 0
    is_end: int = 0
    oos_start: int = 0
    oos_end: int = 0


class ProposalView(ApiModel):
    """What the optimizer made of a finished run, and whether it was applied.

    ``status``: ``proposed`` (waiting for approval, or for the orchestrator),
    ``applied`` (the command is queued for the strategy agent: it switches on its first
    bar with ``seq > after_seq``), ``not_proposed`` (``reason`` says why).  ``score`` is
    the run's mean out-of-sample score, ``baseline`` the running parameters' on the same
    windows.
    """

    status: Literal["proposed", "not_proposed", "applied"]
    reason: str
    strategy: str
    params: ParamValues
    current_strategy: str
    current_params: ParamValues
    score: float | None = None
    baseline: float | None = None
    margin: float = 0.0
    decided_ts: int
    applied_ts: int | None = None
    applied_by: str | None = None
    apply_reason: str | None = None
    command_id: str | None = None
    after_seq: int | None = None


class OptimizerRunView(ApiModel):
    """One optimizer run (newest last in lists).

    ``best_params`` are the last fold's fit with its ``in_sample`` / ``out_of_sample``
    scores; ``mean_*`` average the folds; ``overfit`` applies the rule to the means.
    ``appliable``: ``POST .../apply`` would apply it now.
    """

    run_id: str
    strategy: str
    symbol: str | None = None
    symbols: list[str] = Field(default_factory=list)
    objective: str = ""
    status: RunStatus
    started_ts: int | None = None
    finished_ts: int | None = None
    data_start: int | None = None
    data_end: int | None = None
    best_params: ParamValues = Field(default_factory=dict)
    in_sample: float | None = None
    out_of_sample: float | None = None
    mean_in_sample: float | None = None
    mean_out_of_sample: float | None = None
    overfit: bool | None = None
    evaluations: int = 0
    error: str = ""
    config: dict[str, Any] = Field(default_factory=dict)
    proposal: ProposalView | None = None
    proposed: bool = False
    applied: bool = False
    appliable: bool = False


class OptimizerRunDetail(OptimizerRunView):
    """A run with its folds and every generation's best / mean / std."""

    folds: list[FoldView] = Field(default_factory=list)
    generations: list[GenerationView] = Field(default_factory=list)


class ApplyResult(ApiModel):
    """A run's parameters queued for the strategy agent of its symbol (audited).

    The agent switches on its first bar with ``seq > after_seq``, without a restart.
    """

    run_id: str
    symbol: str
    agent_id: str
    strategy: str
    params: ParamValues
    old_strategy: str
    old_params: ParamValues
    after_seq: int
    command_id: str
    actor: str
    message: str


class ParamSpecView(ApiModel):
    """A declared, tunable parameter of a strategy (inclusive range, default, meaning)."""

    name: str
    kind: Literal["int", "float"]
    low: float
    high: float
    default: float
    doc: str = ""


class StrategyInfo(ApiModel):
    """A registered strategy and its parameters."""

    name: str
    params: list[ParamSpecView]


class PendingParamsView(ApiModel):
    """An accepted switch waiting for the agent's first bar with ``seq > after_seq``."""

    strategy: str
    params: ParamValues
    after_seq: int
    command_id: str
    run_id: str = ""
    actor: str = ""


class StrategyAgentView(ApiModel):
    """What the strategy agent of a symbol runs.

    ``source``: ``config`` (the settings), ``optimizer`` (an applied run: ``run_id``) or
    ``manual``; ``since_seq``: the first bar it applied to.  ``reported`` is False when the
    agent never wrote its state (not started yet): the rest is then the configuration.
    """

    agent_id: str
    symbol: str
    strategy: str
    params: ParamValues
    source: Literal["config", "optimizer", "manual"]
    since_seq: int = 0
    run_id: str = ""
    actor: str = ""
    updated_ts: int | None = None
    configured_strategy: str
    configured_params: ParamValues
    pending: PendingParamsView | None = None
    reported: bool = True


class StrategiesView(ApiModel):
    """The strategy registry and each strategy agent's active parameters."""

    registry: list[StrategyInfo]
    agents: list[StrategyAgentView]


class ApplyRequest(RequestModel):
    """Optional body of ``POST /api/optimizer/runs/{id}/apply``: why (audited)."""

    reason: str = Field(default="approved by an operator", min_length=3, max_length=500)
