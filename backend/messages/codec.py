"""Wire encoding and strict decoding of messages (:func:`encode`, :func:`decode`).

Serialization is JSON (orjson), so ``redis-cli`` shows readable payloads.
:func:`decode` raises :class:`DecodeError` for anything that is not a valid message;
agents send such payloads to the dead-letter channel and keep running.
:data:`AnyMessage` is the union of every message type, discriminated by ``type``.
"""

from __future__ import annotations

import functools
import re
from typing import Annotated

import orjson
from pydantic import Field, TypeAdapter, ValidationError

from backend import channels
from backend.messages.control import (
    AgentCommand,
    AgentErrorRaised,
    AgentHeartbeat,
    AuditRecorded,
    CircuitBreakerTripped,
    DeadLettered,
    ReplayFinished,
)
from backend.messages.envelope import Message
from backend.messages.executions import OrderAccepted, OrderCancelled, OrderFilled, OrderRejected
from backend.messages.market_data import BarClosed
from backend.messages.monitoring import ModelMetricsReported, ModelRetrainStatus, RiskAlertRaised
from backend.messages.optimizer import (
    OptimizerFinished,
    OptimizerProgressed,
    ParamsProposed,
    RunOptimizer,
    StrategyParamsUpdated,
    UpdateStrategyParams,
)
from backend.messages.orders import CancelAllOrders, KillSwitchExecuted, ResolveSymbol, SubmitOrder
from backend.messages.portfolio import PortfolioMarked, PositionChanged
from backend.messages.signals import ComplianceDecided, RiskDecided, SignalGenerated

#: Largest payload an agent accepts; bigger ones are dead-lettered unread.
MAX_PAYLOAD_BYTES = 64 * 1024

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
