"""The typed messages that flow on the Redis channels: one schema for everything on the wire.

Every message carries ``id`` (unique), ``ts`` (ns since the Unix epoch, UTC),
``source`` (agent id), ``correlation_id`` (the signal it descends from, carried
signal -> approval -> order -> fill) and a ``type`` tag.  Commands are imperatives
(``SubmitOrder``), events are past tense (``OrderFilled``).

Serialization is JSON (orjson), so ``redis-cli`` shows readable payloads.
:func:`decode` raises :class:`DecodeError` for anything that is not a valid message;
agents send such payloads to the dead-letter channel and keep running.

Units: prices in quote currency per base unit, quantities in base units,
notional and cash in quote currency, times in ns since epoch (UTC).

Every public name of the submodules is re-exported here (see ``__all__``): import from
``backend.messages``, not from a submodule.

Routine Listings
----------------
ids : Message and order ids: random ids, deterministic ids and client order ids.
envelope : The envelope every message shares (``Message``) and the constrained field types.
enums : Trading enumerations on the wire: order side, order status and exit reason.
market_data : Market data messages: the closed OHLCV bar (``BarClosed``).
signals : Pre-trade messages: strategy signals and the compliance and risk decisions on them.
orders : Order commands to execution: submit, cancel all (kill switch), resolve a halted symbol.
executions : Execution reports from the venue: order accepted, rejected, cancelled and filled.
portfolio : Position and portfolio messages: position changes and mark-to-market account state.
control : Agent control-plane messages: heartbeats, errors, dead letters, audits and commands.
optimizer : Optimizer messages: runs, their progress and results, parameter proposals, hot reload.
monitoring : Monitoring messages: risk-limit alerts and ML model retraining and live quality.
codec : Wire encoding and strict decoding of messages (``encode``, ``decode``).
"""

from __future__ import annotations

from backend.messages.codec import (
    CHANNEL_TYPES,
    MAX_PAYLOAD_BYTES,
    AnyMessage,
    DecodeError,
    decode,
    encode,
)
from backend.messages.control import (
    AgentCommand,
    AgentErrorRaised,
    AgentHeartbeat,
    AgentState,
    AuditRecorded,
    CircuitBreakerTripped,
    DeadLettered,
    ReplayFinished,
)
from backend.messages.enums import NON_FINAL_STATUSES, ExitReason, OrderStatus, Side
from backend.messages.envelope import (
    NS_PER_DAY,
    Finite,
    Message,
    Price,
    Qty,
    Score,
    now_ns,
)
from backend.messages.executions import OrderAccepted, OrderCancelled, OrderFilled, OrderRejected
from backend.messages.ids import client_order_id_for, new_id, stable_id
from backend.messages.market_data import BarClosed
from backend.messages.monitoring import ModelMetricsReported, ModelRetrainStatus, RiskAlertRaised
from backend.messages.optimizer import (
    FoldScore,
    Objective,
    OptimizerFinished,
    OptimizerProgressed,
    ParamsProposed,
    ParamValues,
    RunOptimizer,
    StrategyParamsUpdated,
    UpdateStrategyParams,
)
from backend.messages.orders import (
    CancelAllOrders,
    ClosedPosition,
    KillSwitchExecuted,
    ResolveSymbol,
    SubmitOrder,
)
from backend.messages.portfolio import PortfolioMarked, PositionChanged, PositionSnapshot
from backend.messages.signals import ComplianceDecided, RiskDecided, SignalGenerated

__all__ = [
    # ids
    "client_order_id_for",
    "new_id",
    "stable_id",
    # envelope
    "NS_PER_DAY",
    "Finite",
    "Message",
    "Price",
    "Qty",
    "Score",
    "now_ns",
    # enums
    "NON_FINAL_STATUSES",
    "ExitReason",
    "OrderStatus",
    "Side",
    # market_data
    "BarClosed",
    # signals
    "ComplianceDecided",
    "RiskDecided",
    "SignalGenerated",
    # orders
    "CancelAllOrders",
    "ClosedPosition",
    "KillSwitchExecuted",
    "ResolveSymbol",
    "SubmitOrder",
    # executions
    "OrderAccepted",
    "OrderCancelled",
    "OrderFilled",
    "OrderRejected",
    # portfolio
    "PortfolioMarked",
    "PositionChanged",
    "PositionSnapshot",
    # control
    "AgentCommand",
    "AgentErrorRaised",
    "AgentHeartbeat",
    "AgentState",
    "AuditRecorded",
    "CircuitBreakerTripped",
    "DeadLettered",
    "ReplayFinished",
    # optimizer
    "FoldScore",
    "Objective",
    "OptimizerFinished",
    "OptimizerProgressed",
    "ParamValues",
    "ParamsProposed",
    "RunOptimizer",
    "StrategyParamsUpdated",
    "UpdateStrategyParams",
    # monitoring
    "ModelMetricsReported",
    "ModelRetrainStatus",
    "RiskAlertRaised",
    # codec
    "CHANNEL_TYPES",
    "MAX_PAYLOAD_BYTES",
    "AnyMessage",
    "DecodeError",
    "decode",
    "encode",
]
