"""The one typed schema for everything on the wire.

Every message carries ``id`` (unique), ``ts`` (ns since the Unix epoch, UTC),
``source`` (agent id), ``correlation_id`` (the signal it descends from, carried
signal -> approval -> order -> fill) and a ``type`` tag.  Commands are imperatives
(``SubmitOrder``), events are past tense (``OrderFilled``).

Serialization is JSON (orjson), so ``redis-cli`` shows readable payloads.
:func:`decode` raises :class:`DecodeError` for anything that is not a valid message;
agents send such payloads to the dead-letter channel and keep running.

Units: prices in quote currency per base unit, quantities in base units,
notional and cash in quote currency, times in ns since epoch (UTC).
"""

from __future__ import annotations

import functools
import hashlib
import re
import time
import uuid
from enum import StrEnum
from typing import Annotated, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from backend import channels

#: Nanoseconds in a UTC day (days are ``time_ns // NS_PER_DAY``).
NS_PER_DAY = 86_400_000_000_000

#: Largest payload an agent accepts; bigger ones are dead-lettered unread.
MAX_PAYLOAD_BYTES = 64 * 1024


def now_ns() -> int:
    """Wall-clock time in ns since the Unix epoch (UTC)."""
    return time.time_ns()


def new_id() -> str:
    """A random unique message id (32 hex chars)."""
    return uuid.uuid4().hex


def stable_id(*parts: object) -> str:
    """Deterministic 32-hex id from ``parts`` (SHA-256 prefix).

    Used so that a redelivered input produces the *same* output id, which makes
    every consumer idempotent by message id.
    """
    raw = "|".join(str(p) for p in parts).encode()
    return hashlib.sha256(raw).hexdigest()[:32]


class Side(StrEnum):
    """Order or signal side."""

    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """+1 for BUY, -1 for SELL."""
        return 1 if self is Side.BUY else -1

    def opposite(self) -> Side:
        """The other side."""
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderStatus(StrEnum):
    """Life cycle of an order.  UNKNOWN = sent but outcome not known (timeout)."""

    NEW = "NEW"  # intent persisted, not yet acknowledged by the venue
    ACCEPTED = "ACCEPTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    UNKNOWN = "UNKNOWN"


#: Statuses of an order that may still be working at the venue (not final).
NON_FINAL_STATUSES: tuple[str, ...] = (
    OrderStatus.NEW.value, OrderStatus.UNKNOWN.value, OrderStatus.ACCEPTED.value,
)


class AgentState(StrEnum):
    """Agent life-cycle states (DESIGN.md)."""

    STARTING = "starting"
    RUNNING = "running"
    DEGRADED = "degraded"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAULTED = "faulted"


class ExitReason(StrEnum):
    """Why a fill happened."""

    ENTRY = "entry"
    SIGNAL = "signal"  # closed by an opposite signal
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"
    FLATTEN = "flatten"  # kill switch / end of replay


class Message(BaseModel):
    """Common envelope fields of every message."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default_factory=new_id, min_length=1, max_length=128)
    ts: int = Field(default_factory=now_ns, ge=0)
    source: str = Field(min_length=1, max_length=128)
    correlation_id: str = Field(default="", max_length=128)

    def to_json(self) -> bytes:
        """Serialize to JSON bytes."""
        return orjson.dumps(self.model_dump(mode="json"))


Price = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Qty = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


# ------------------------------------------------------------------ market data
class BarClosed(Message):
    """One OHLCV candle, published when it closes.

    ``seq`` is the replay's global sequence number (strictly increasing across all
    symbols); downstream agents use it to order work deterministically.
    ``open_time`` is the bar's open time in ns (UTC).  ``epoch`` is the deployment epoch
    of the sequence (kept in the database, one more each time a sequence starts afresh,
    e.g. after Redis lost its data): ``(epoch, seq)`` never repeats for the life of the
    database, and neither do the signal and client order ids derived from it.
    """

    type: Literal["bar_closed"] = "bar_closed"
    symbol: str = Field(min_length=1, max_length=32)
    timeframe: str = "5m"
    open_time: int = Field(ge=0)
    open: Price
    high: Price
    low: Price
    close: Price
    volume: Qty
    seq: int = Field(ge=0)
    epoch: int = Field(default=1, ge=1)


# ------------------------------------------------------------------ pipeline
class SignalGenerated(Message):
    """A strategy wants to trade.  ``correlation_id == id`` (the chain starts here).

    ``entry_price`` is the reference price (last close); ``stop_loss`` and
    ``take_profit`` are absolute prices.  ``bar_seq``/``bar_time`` identify the bar
    the signal was computed on.
    """

    type: Literal["signal_generated"] = "signal_generated"
    symbol: str = Field(min_length=1, max_length=32)
    side: Side
    confidence: float = Field(ge=0.0, le=1.0)
    entry_price: Price
    stop_loss: Price
    take_profit: Price
    reason: str = Field(max_length=500)
    strategy: str = Field(min_length=1, max_length=64)
    params: dict[str, float | int | str | bool] = Field(default_factory=dict)
    bar_seq: int = Field(ge=0)
    bar_time: int = Field(ge=0)
    #: Market regime at the bar (``backend.regime``: ``trending_up``, ``trending_down``,
    #: ``ranging``, each with ``/high_vol`` or ``/low_vol``), ``""`` when not computed.
    regime: str = Field(default="", max_length=48)


class ComplianceDecided(Message):
    """Compliance approved (on ``signals:approved``) or rejected (``signals:rejected``)."""

    type: Literal["compliance_decided"] = "compliance_decided"
    approved: bool
    rule: str = Field(max_length=64)  # rule that decided ("ok" when approved)
    reason: str = Field(max_length=500)
    signal: SignalGenerated


class RiskDecided(Message):
    """Risk's decision on an approved signal; rejections go to ``signals:rejected``.

    ``quantity`` in base units, ``notional`` in quote currency (0 when rejected).
    """

    type: Literal["risk_decided"] = "risk_decided"
    approved: bool
    rule: str = Field(max_length=64)
    reason: str = Field(max_length=500)
    signal: SignalGenerated
    quantity: Qty = 0.0
    notional: Qty = 0.0
    equity: Finite = 0.0


class SubmitOrder(Message):
    """Command to execution: place a market order.

    ``client_order_id`` is derived deterministically from the signal id.
    ``reduce_only`` orders only close an existing position; ``stop_loss`` and
    ``take_profit`` (absolute prices) attach a bracket to the resulting position.
    ``ref_price`` is the price it was sized at; ``expires_at`` (ns) the wall-clock time
    after which execution refuses it if it was never sent (a queue that held it too long).
    """

    type: Literal["submit_order"] = "submit_order"
    client_order_id: str = Field(min_length=1, max_length=64)
    symbol: str = Field(min_length=1, max_length=32)
    side: Side
    quantity: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    order_type: Literal["MARKET"] = "MARKET"
    reduce_only: bool = False
    stop_loss: Price | None = None
    take_profit: Price | None = None
    signal_id: str = Field(min_length=1, max_length=64)
    bar_seq: int = Field(ge=0)
    #: The price the order was sized at (the signal's entry price, quote/base).
    ref_price: Price | None = None
    #: Wall-clock time (ns UTC) after which an order never sent is refused, not sent.
    expires_at: int | None = Field(default=None, ge=0)


class CancelAllOrders(Message):
    """Command to execution: cancel every open order; with ``flatten`` (the kill switch)
    also close every position with market orders and report a :class:`KillSwitchExecuted`;
    with ``entries_only`` (a circuit-breaker trip) only our orders that are not
    reduce-only (exits and protective stops stay).
    """

    type: Literal["cancel_all_orders"] = "cancel_all_orders"
    reason: str = Field(max_length=500)
    flatten: bool = False
    entries_only: bool = False


class ResolveSymbol(Message):
    """Command to execution: a person resolved what halted ``symbol`` (on ``orders``).

    ``not_placed``: client order ids left ``UNKNOWN`` that the person confirmed are not
    at the venue (looked up once more; found -> adopted, else ``REJECTED``);
    ``adopt_venue_position``: set the books' position to what the venue holds.
    Execution then clears the symbol's halt if nothing unresolved is left, and answers
    with an :class:`AuditRecorded` (action ``symbol_resumed`` or ``symbol_still_halted``)
    whose ``correlation_id`` is this command's id.
    """

    type: Literal["resolve_symbol"] = "resolve_symbol"
    symbol: str = Field(min_length=1, max_length=32)
    reason: str = Field(min_length=1, max_length=500)
    actor: str = Field(default="operator", max_length=64)
    adopt_venue_position: bool = False
    not_placed: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=100)


class ClosedPosition(BaseModel):
    """A position the kill switch closed: signed quantity before (base units), fill price."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str
    quantity: Finite
    price: Qty
    client_order_id: str


class KillSwitchExecuted(Message):
    """Execution carried out a flattening :class:`CancelAllOrders` (``command_id``).

    ``open_orders_left`` / ``positions_left`` are what the venue still shows afterwards
    (empty when the account is flat).
    """

    type: Literal["kill_switch_executed"] = "kill_switch_executed"
    command_id: str
    cancelled: list[str] = Field(default_factory=list)
    flattened: list[ClosedPosition] = Field(default_factory=list)
    open_orders_left: list[str] = Field(default_factory=list)
    positions_left: dict[str, float] = Field(default_factory=dict)


# ------------------------------------------------------------------ trading events
class OrderAccepted(Message):
    """The venue accepted an order."""

    type: Literal["order_accepted"] = "order_accepted"
    client_order_id: str
    venue_order_id: str
    symbol: str
    side: Side
    quantity: Qty


class OrderRejected(Message):
    """The venue or execution refused an order (reason given)."""

    type: Literal["order_rejected"] = "order_rejected"
    client_order_id: str
    symbol: str
    reason: str = Field(max_length=500)


class OrderCancelled(Message):
    """An open order was cancelled."""

    type: Literal["order_cancelled"] = "order_cancelled"
    client_order_id: str
    symbol: str
    reason: str = Field(max_length=500)


class OrderFilled(Message):
    """A (possibly partial) fill.

    ``price`` in quote per base, ``quantity`` in base units, ``fee`` in quote currency,
    ``realized_pnl`` in quote currency: gross P&L of the quantity this fill closed,
    before fees (0 for a fill that only opens or adds); net = sum(realized) - sum(fee).
    ``order_done``: the venue has now executed the whole ordered quantity (a fee taken in
    the base asset makes ``quantity`` smaller than what was ordered, so summing fills
    cannot tell).
    """

    type: Literal["order_filled"] = "order_filled"
    fill_id: str
    client_order_id: str
    symbol: str
    side: Side
    quantity: Qty
    price: Price
    fee: Qty
    realized_pnl: Finite = 0.0
    exit_reason: ExitReason = ExitReason.ENTRY
    bar_seq: int = Field(ge=0)
    fill_time: int = Field(ge=0)
    order_done: bool = False


class PositionChanged(Message):
    """Position after a fill.  ``quantity`` signed (base units), ``avg_price`` quote/base."""

    type: Literal["position_changed"] = "position_changed"
    symbol: str
    quantity: Finite
    avg_price: Qty
    realized_pnl: Finite


class PositionSnapshot(BaseModel):
    """One position inside a :class:`PortfolioMarked`: signed base units, quote prices."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    quantity: Finite
    avg_price: Qty
    mark: Qty


class PortfolioMarked(Message):
    """Mark-to-market account state after the execution agent processed bar ``bar_seq``.

    ``cash``, ``equity`` (cash + positions at marks), ``exposure`` (sum of
    ``|qty * mark|``), ``day_start_equity`` (equity at the start of the UTC day
    ``day`` = ``bar_time // 86_400e9``) and ``traded_notional_today`` are in quote currency.
    """

    type: Literal["portfolio_marked"] = "portfolio_marked"
    bar_seq: int = Field(ge=0)
    bar_time: int = Field(ge=0)
    cash: Finite
    equity: Finite
    exposure: Qty
    day: int = Field(ge=0)
    day_start_equity: Finite
    traded_notional_today: Qty = 0.0
    positions: dict[str, PositionSnapshot] = Field(default_factory=dict)


# ------------------------------------------------------------------ agent plane
class AgentHeartbeat(Message):
    """Published every second on ``agent:status`` and kept in ``agent:health:<id>``."""

    type: Literal["agent_heartbeat"] = "agent_heartbeat"
    agent_id: str
    role: str
    state: AgentState
    pid: int
    started_at: int
    messages_in: int = 0
    messages_out: int = 0
    errors: int = 0
    dead_letters: int = 0
    last_message_at: int = 0
    last_error: str = ""


class AgentErrorRaised(Message):
    """An agent caught an error (published on ``agent:errors``)."""

    type: Literal["agent_error_raised"] = "agent_error_raised"
    agent_id: str
    error: str = Field(max_length=2000)
    fatal: bool = False


class DeadLettered(Message):
    """A payload an agent could not decode or validate, with the reason.

    ``payload`` is a bounded prefix of the raw bytes (UTF-8, undecodable bytes replaced),
    ``size`` the raw payload's full length in bytes, ``entry_id`` the stream entry it came
    from (``""`` when not read from a stream).
    """

    type: Literal["dead_lettered"] = "dead_lettered"
    agent_id: str
    channel: str
    reason: str = Field(max_length=2000)
    payload: str = Field(max_length=4096)  # truncated raw payload
    size: int = Field(default=0, ge=0)
    entry_id: str = Field(default="", max_length=64)


class CircuitBreakerTripped(Message):
    """Risk latched HALTED (daily drawdown limit, kill switch, ...)."""

    type: Literal["circuit_breaker_tripped"] = "circuit_breaker_tripped"
    reason: str
    drawdown: Finite = 0.0
    limit: Finite = 0.0


class AuditRecorded(Message):
    """A decision written to the audit log."""

    type: Literal["audit_recorded"] = "audit_recorded"
    actor: str
    action: str
    decision: str
    reason: str = Field(max_length=1000)
    subject_id: str = ""


class AgentCommand(Message):
    """Control command to one agent (``target`` agent id or ``*``)."""

    type: Literal["agent_command"] = "agent_command"
    target: str
    command: Literal["stop", "pause", "resume", "flatten"]


class ReplayFinished(Message):
    """market_data finished a finite replay (on ``agent:broadcast``)."""

    type: Literal["replay_finished"] = "replay_finished"
    bars: int
    last_seq: int


# ------------------------------------------------------------------ optimizer
#: A score (objective units) or ``None`` when undefined (no trade, no variance ...).
Score = Annotated[float, Field(allow_inf_nan=False)] | None
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
    sizing: Literal["all-in", "risk"] = "all-in"
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


# ------------------------------------------------------------------ risk / models
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


AnyMessage = Annotated[
    BarClosed
    | SignalGenerated
    | ComplianceDecided
    | RiskDecided
    | SubmitOrder
    | CancelAllOrders
    | ResolveSymbol
    | KillSwitchExecuted
    | OrderAccepted
    | OrderRejected
    | OrderCancelled
    | OrderFilled
    | PositionChanged
    | PortfolioMarked
    | AgentHeartbeat
    | AgentErrorRaised
    | DeadLettered
    | CircuitBreakerTripped
    | AuditRecorded
    | AgentCommand
    | ReplayFinished
    | OptimizerProgressed
    | OptimizerFinished
    | RunOptimizer
    | ParamsProposed
    | UpdateStrategyParams
    | StrategyParamsUpdated
    | RiskAlertRaised
    | ModelRetrainStatus
    | ModelMetricsReported,
    Field(discriminator="type"),
]

_ADAPTER: TypeAdapter[AnyMessage] = TypeAdapter(AnyMessage)


#: ``type`` tags a consumed stream carries (``docs/channels.md``); :func:`decode` with
#: ``channel`` rejects any other message there (e.g. a ``submit_order`` on ``signals``).
CHANNEL_TYPES: dict[str, frozenset[str]] = {
    channels.MARKET_DATA: frozenset({"bar_closed"}),
    channels.SIGNALS: frozenset({"signal_generated"}),
    channels.SIGNALS_APPROVED: frozenset({"compliance_decided"}),
    channels.ORDERS: frozenset({"submit_order", "cancel_all_orders", "resolve_symbol"}),
    channels.TRADING_EVENTS: frozenset({
        "order_accepted", "order_rejected", "order_cancelled", "order_filled",
        "position_changed", "portfolio_marked", "kill_switch_executed",
    }),
    channels.OPTIMIZER_REQUESTS: frozenset({"run_optimizer"}),
    channels.OPTIMIZER_PROPOSALS: frozenset({"params_proposed"}),
    channels.STRATEGY_PARAMS: frozenset({"update_strategy_params", "strategy_params_updated"}),
}

#: JSON integers must fit a signed 64-bit integer (SQLite INTEGER, Redis counters).
_INT64 = (-(2**63), 2**63 - 1)
#: A run of 19+ digits: the only way a payload can spell an integer outside int64.
_LONG_DIGITS = re.compile(rb"\d{19,}")


class DecodeError(ValueError):
    """A payload is not a valid message; ``str(err)`` says why."""


def _has_big_int(data: object) -> bool:
    """True if a message dump holds an integer outside int64 (iterative: no recursion)."""
    lo, hi = _INT64
    stack = [data]
    while stack:
        v = stack.pop()
        t = type(v)
        if t is int:
            if not lo <= v <= hi:  # type: ignore[operator]  # v is an int (t is int)
                return True
        elif t is dict:
            stack.extend(v.values())  # type: ignore[attr-defined]
        elif t is list:
            stack.extend(v)  # type: ignore[arg-type]
    return False


@functools.cache
def _nested_messages(cls: type[Message]) -> tuple[str, ...]:
    """Names of ``cls``'s fields that hold a message (e.g. ``signal``)."""
    return tuple(n for n, f in cls.model_fields.items()
                 if isinstance(f.annotation, type) and issubclass(f.annotation, Message))


def _missing_envelope(msg: Message, path: str = "") -> str | None:
    """``"<path>id"`` if a message (or one nested in it) came without ``id``/``ts``."""
    for name in ("id", "ts"):
        if name not in msg.model_fields_set:
            return f"{path}{name}"
    for name in _nested_messages(type(msg)):
        found = _missing_envelope(getattr(msg, name), f"{path}{name}.")
        if found:
            return found
    return None


def decode(raw: bytes | str, channel: str | None = None) -> AnyMessage:
    """Parse and validate one wire payload.

    Validation is strict: no type coercion (``"1.5"`` is not a number, ``true`` is not
    an integer), integers must fit int64, non-finite numbers are not JSON, unknown fields
    are refused, and ``id`` and ``ts`` must be on the wire (not defaulted).

    Parameters
    ----------
    raw
        JSON bytes/str as published on a channel or stored in a stream entry.
    channel
        The channel or stream it was read from; when it is one of :data:`CHANNEL_TYPES`,
        a message of another type is refused.

    Returns
    -------
    AnyMessage
        The concrete message model selected by its ``type`` tag.

    Raises
    ------
    DecodeError
        Oversized payload, invalid JSON (or not UTF-8), not an object, unknown ``type``,
        a field that fails validation, or a type the channel does not carry; the message
        names the problem.
    """
    if isinstance(raw, str):
        raw = raw.encode("utf-8", errors="replace")
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise DecodeError(f"payload of {len(raw)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DecodeError(f"expected a JSON object, got {type(data).__name__}")
    try:
        msg = _ADAPTER.validate_json(raw, strict=True)
    except ValidationError as exc:
        errs = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in exc.errors()[:5]
        )
        raise DecodeError(f"invalid message: {errs}") from None
    if any(int(d) > _INT64[1] for d in _LONG_DIGITS.findall(raw)) and _has_big_int(
            msg.model_dump()):  # checked on the validator's parse: it keeps big ints
        raise DecodeError("invalid message: an integer outside the 64-bit range")
    missing = _missing_envelope(msg)
    if missing is not None:
        raise DecodeError(f"invalid message: {missing}: field required on the wire")
    allowed = CHANNEL_TYPES.get(channel) if channel is not None else None
    if allowed is not None and msg.type not in allowed:
        raise DecodeError(
            f"wrong channel: {msg.type!r} is not carried on {channel!r} "
            f"(expected {', '.join(sorted(allowed))})"
        )
    return msg


def encode(msg: Message) -> bytes:
    """Serialize a message to JSON bytes (same as ``msg.to_json()``)."""
    return msg.to_json()


def client_order_id_for(signal_id: str, leg: str = "o") -> str:
    """Deterministic client order id for the order born from ``signal_id``.

    ``leg`` distinguishes several orders from one signal (``"o"`` the order itself,
    ``"c"`` a close of the opposite position).  Format ``tm-<leg>-<24 hex>`` (at most
    30 chars: fits every venue's limit, e.g. Binance 36).
    """
    return f"tm-{leg}-{stable_id('coid', signal_id, leg)[:24]}"
