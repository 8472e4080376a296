"""Typed bodies of the orchestrator's REST API (shown in its OpenAPI schema).

They live in ``backend`` so that the dashboard and scripts can parse responses with the
same models the server validates them with.  Units: prices in quote currency per base
unit, quantities in base units (signed: + long, - short), cash / equity / P&L / notional
in quote currency, times in ns since the Unix epoch (UTC), durations in seconds,
fractions (drawdown, VaR, CVaR, exposure_pct) as plain fractions (0.02 = 2%).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from backend.rest.base import ApiModel, RequestModel
from backend.rest.ml import (  # noqa: F401 - GET /api/models, re-exported
    ModelLiveView,
    ModelsView,
    ModelVersionView,
)
from backend.rest.optimizer import (  # noqa: F401 - the optimizer's bodies, re-exported
    ApplyRequest,
    ApplyResult,
    FoldView,
    GenerationView,
    OptimizerRunAccepted,
    OptimizerRunDetail,
    OptimizerRunRequest,
    OptimizerRunView,
    ParamSpecView,
    PendingParamsView,
    ProposalView,
    StrategiesView,
    StrategyAgentView,
    StrategyInfo,
)
from backend.rest.report import (  # noqa: F401 - the report's bodies, re-exported
    BreakdownRow,
    EvaluationReport,
    ParamChange,
    ParamSuggestion,
    ReportPoint,
)
from backend.rest.risk import EquityBandView, PortfolioMetricsView, RiskLimitsView
from backend.rest.trades import Trade


class FieldError(ApiModel):
    """One invalid input: where (``query.limit``, ``body.reason``) and what is wrong."""

    field: str
    message: str


class ErrorBody(ApiModel):
    """Every 4xx/5xx answer: a clear message (and, for 422, each invalid field)."""

    detail: str
    errors: list[FieldError] | None = None


# ---------------------------------------------------------------------- agents
AgentStatus = Literal[
    "starting", "running", "degraded", "stopping", "stopped", "faulted",
    "no_heartbeat", "restarting", "given_up",
]


class AgentInfo(ApiModel):
    """One agent as the supervisor and its heartbeat see it.

    ``state`` is the agent's own state from its heartbeat, or what the supervisor knows
    when there is none: ``no_heartbeat`` (process up, key expired or not yet written),
    ``restarting`` (waiting for its backoff), ``given_up`` (restart limit reached),
    ``stopped`` (stopped by an operator).  ``stale`` = heartbeat older than the TTL.
    """

    agent_id: str
    role: str
    symbol: str | None = None
    state: AgentStatus
    desired: Literal["running", "stopped"]
    pid: int | None = None
    uptime_s: float | None = None
    restarts: int = 0
    heartbeat_age_s: float | None = None
    stale: bool = False
    messages_in: int = 0
    messages_out: int = 0
    errors: int = 0
    dead_letters: int = 0
    last_error: str = ""


class AgentList(ApiModel):
    """Every agent of the mesh."""

    ts: int
    agents: list[AgentInfo]


class AgentAction(ApiModel):
    """What a start / stop / restart / create did."""

    agent_id: str
    action: Literal["start", "stop", "restart", "create"]
    ok: bool
    pid: int | None = None
    restarts: int = 0
    message: str


# ---------------------------------------------------------------------- trading
class OrderView(ApiModel):
    """One order as recorded by execution (``status`` an ``OrderStatus`` value)."""

    client_order_id: str
    signal_id: str | None = None
    correlation_id: str | None = None
    symbol: str
    side: str
    quantity: float
    reduce_only: bool
    stop_loss: float | None = None
    take_profit: float | None = None
    status: str
    venue_order_id: str | None = None
    reason: str | None = None
    created_ts: int
    updated_ts: int
    bar_seq: int | None = None


class FillView(ApiModel):
    """One fill (``realized_pnl`` net of nothing: fees are separate)."""

    fill_id: str
    client_order_id: str | None = None
    correlation_id: str | None = None
    symbol: str
    side: str
    quantity: float
    price: float
    fee: float
    realized_pnl: float
    exit_reason: str | None = None
    bar_seq: int | None = None
    fill_time: int | None = None
    ts: int


class DecisionView(ApiModel):
    """A compliance or risk decision on a signal, with its rule and reason."""

    stage: Literal["compliance", "risk"]
    approved: bool
    rule: str | None = None
    reason: str | None = None
    quantity: float | None = None
    notional: float | None = None
    ts: int


class SignalView(ApiModel):
    """A signal and what became of it.

    ``outcome``: ``ordered`` (risk approved; ``client_order_id`` set), ``rejected`` (by
    the stage in ``rejected_by``) or ``pending`` (no final decision recorded yet).
    """

    id: str
    ts: int
    symbol: str
    side: str
    confidence: float | None = None
    entry_price: float | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    strategy: str | None = None
    reason: str | None = None
    bar_seq: int | None = None
    bar_time: int | None = None
    #: Market regime of the signal's bar (``backend.marketdata.regime``), ``""`` when unknown.
    regime: str = ""
    compliance: DecisionView | None = None
    risk: DecisionView | None = None
    outcome: Literal["ordered", "rejected", "pending"]
    rejected_by: Literal["compliance", "risk"] | None = None
    client_order_id: str | None = None


class EquityPoint(ApiModel):
    """Equity after one bar; ``drawdown`` from the running peak (fraction, >= 0)."""

    bar_seq: int
    bar_time: int
    equity: float
    cash: float
    exposure: float
    drawdown: float


class PositionView(ApiModel):
    """An open position marked at the last close."""

    symbol: str
    quantity: float
    avg_price: float
    mark: float
    notional: float
    unrealized_pnl: float


class Positions(ApiModel):
    """Open positions and account state after bar ``bar_seq`` (None before any bar)."""

    bar_seq: int | None = None
    bar_time: int | None = None
    cash: float | None = None
    equity: float | None = None
    exposure: float | None = None
    halted: bool
    positions: list[PositionView]


class SymbolPnL(ApiModel):
    """Realised (closed trades, net of their fees) and unrealised P&L of one symbol."""

    realized: float = 0.0
    fees: float = 0.0
    unrealized: float = 0.0
    trades: int = 0


class PnL(ApiModel):
    """Account P&L: ``total = equity - initial_cash``."""

    initial_cash: float
    equity: float | None = None
    total: float | None = None
    total_return: float | None = None
    realized: float
    unrealized: float
    fees: float
    by_symbol: dict[str, SymbolPnL]


class TradeList(ApiModel):
    """Closed round trips and the trades still open."""

    closed: list[Trade]
    open: list[Trade]


# ---------------------------------------------------------------------- risk
HaltKind = Literal["none", "circuit_breaker", "kill_switch", "supervisor", "restored"]


class BreakerState(ApiModel):
    """The trading halt latch and the daily-drawdown circuit breaker that can set it."""

    halted: bool
    kind: HaltKind = "none"
    by: str | None = None
    reason: str | None = None
    since: int | None = None
    daily_drawdown: float | None = None
    limit: float
    equity: float | None = None
    day_start_equity: float | None = None


class ResetRequest(RequestModel):
    """An operator's reset of the halt latch; the reason is audited."""

    reason: str = Field(min_length=3, max_length=500)


class ResetResult(ApiModel):
    """What a reset did."""

    was_halted: bool
    halted: bool
    previous_reason: str | None = None
    message: str


class VaREstimate(ApiModel):
    """Value at Risk and Conditional VaR (expected shortfall) over ``horizon`` bars; a loss
    is positive (a negative figure means even the tail quantile is a gain).

    ``var``/``cvar`` are fractions of equity; ``var_quote``/``cvar_quote`` in quote
    currency (fraction x current equity).  ``monte_carlo``: simulated GBM outcomes.
    """

    method: Literal["historical", "parametric", "monte_carlo"]
    level: float
    var: float | None = None
    cvar: float | None = None
    var_quote: float | None = None
    cvar_quote: float | None = None
    horizon: int = 1  # bars


class SymbolExposure(ApiModel):
    """Gross notional of one symbol's position and its share of equity."""

    quantity: float
    notional: float
    exposure_pct: float | None = None
    estimates: list[VaREstimate] = Field(default_factory=list)  # VaR of this position


class RiskFigures(ApiModel):
    """Exposure now and VaR / CVaR of the equity curve's bar returns."""

    equity: float | None = None
    exposure: float = 0.0
    exposure_pct: float | None = None
    by_symbol: dict[str, SymbolExposure]
    observations: int
    estimates: list[VaREstimate]
    # positions x the symbols' bar returns (backend.risk.portfolio_var), and the analytics
    position_estimates: list[VaREstimate] = Field(default_factory=list)
    position_observations: int = 0
    metrics: PortfolioMetricsView | None = None
    limits: RiskLimitsView | None = None
    equity_band: EquityBandView | None = None


# ---------------------------------------------------------------------- plumbing
class AuditView(ApiModel):
    """One audit log entry."""

    id: str
    ts: int
    actor: str
    action: str
    decision: str
    reason: str | None = None
    subject_id: str | None = None
    correlation_id: str | None = None


class GroupStats(ApiModel):
    """A consumer group of a stream: entries delivered but not acked, and not yet read."""

    group: str
    consumers: int
    pending: int
    lag: int | None = None
    last_delivered_id: str


class StreamStats(ApiModel):
    """One Redis Stream: its length and its consumer groups."""

    stream: str
    length: int
    groups: list[GroupStats]


class ChannelStats(ApiModel):
    """Messages published per channel since the mesh started, and the streams."""

    ts: int
    messages: dict[str, int]
    streams: list[StreamStats]


class Health(ApiModel):
    """Liveness: the control plane answers."""

    status: Literal["ok"] = "ok"
    ts: int
    uptime_s: float


class Ready(ApiModel):
    """Readiness: Redis reachable and every agent that should run is running."""

    ready: bool
    redis: bool
    agents_running: int
    agents_expected: int
    not_running: list[str]


class EmergencyStopRequest(RequestModel):
    """Optional body of an emergency stop."""

    reason: str = Field(default="emergency stop", min_length=1, max_length=500)
    wait_s: float = Field(
        default=10.0, ge=0, le=60, strict=True,
        description="How long to wait for execution to confirm cancel + flatten.",
    )


class FlattenedPosition(ApiModel):
    """A position closed by the kill switch with a market order."""

    symbol: str
    quantity: float
    price: float
    client_order_id: str


class EmergencyStopResult(ApiModel):
    """What the kill switch did and what is left.

    ``confirmed`` is False when execution did not report back within ``wait_s``: the
    command stays queued on the durable ``orders`` stream and runs when execution is up;
    HALTED is latched either way.
    """

    halted: bool
    latched_at: int
    reason: str
    command_id: str
    confirmed: bool
    cancelled_orders: list[str]
    flattened: list[FlattenedPosition]
    open_orders_left: list[str]
    positions_left: dict[str, float]
    message: str
