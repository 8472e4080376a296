"""Per-symbol trading halts: a symbol the execution agent cannot settle by itself.

Set when an order's outcome stayed unknown at a venue that cannot guarantee it never
landed, or when the venue holds another position than the books say
(:class:`~backend.venues.base.VenueAlarm`).  While a symbol is halted, risk rejects new
entries for it (rule ``symbol_halted``) and execution denies new orders for it that are
not reduce-only; exits (reduce-only) still pass, so positions can always be closed.  It
is cleared only by a person (``tradingmesh resolve``, audited).

Durable first: the database copy (``mesh_state`` key ``halt:symbol:<SYMBOL>``) is
written before the Redis one (hash :data:`backend.channels.SYMBOL_HALTS_KEY`), and the
orchestrator puts back into Redis every halt the database has and Redis lacks (Redis
lost its data).  An unreadable entry counts as halted (fail closed).
"""

from __future__ import annotations

from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from backend import channels
from backend.messages import now_ns

__all__ = ["SymbolHalt", "parse_symbol_halt", "read_symbol_halts", "state_key",
           "symbol_halt"]

#: Prefix of the database keys (``Store.put_state``) of symbol halts.
STATE_PREFIX = "halt:symbol:"

SymbolHaltKind = Literal["order_unknown", "position_mismatch", "unreadable"]


class SymbolHalt(BaseModel):
    """One halted symbol: why, set by whom, since when (ns UTC), and the order
    concerned (``""`` for a position mismatch)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    symbol: str = Field(min_length=1, max_length=32)
    kind: SymbolHaltKind
    reason: str = Field(default="", max_length=1000)
    by: str = "execution"
    client_order_id: str = ""
    ts: int = Field(default_factory=now_ns)

    def to_json(self) -> bytes:
        """Serialized value of the hash field."""
        return orjson.dumps(self.model_dump(mode="json"))

    def stage(self, pipe: Pipeline) -> None:
        """Latch it in Redis inside a transaction (after the database copy)."""
        pipe.hset(channels.SYMBOL_HALTS_KEY, self.symbol, self.to_json())


def state_key(symbol: str) -> str:
    """Database key of ``symbol``'s halt."""
    return f"{STATE_PREFIX}{symbol}"


def parse_symbol_halt(symbol: str, raw: bytes | str) -> SymbolHalt:
    """Decode one hash value; unreadable -> halted (fail closed)."""
    try:
        return SymbolHalt.model_validate(orjson.loads(raw))
    except (orjson.JSONDecodeError, ValidationError, TypeError):
        return SymbolHalt(symbol=symbol, kind="unreadable", reason="unreadable halt record",
                          ts=0)


async def read_symbol_halts(redis: Redis) -> dict[str, SymbolHalt]:
    """Every halted symbol as Redis holds them."""
    raw = await redis.hgetall(channels.SYMBOL_HALTS_KEY)
    out = {}
    for k, v in raw.items():
        sym = k.decode() if isinstance(k, bytes) else str(k)
        out[sym] = parse_symbol_halt(sym, v)
    return out


async def symbol_halt(redis: Redis, symbol: str) -> SymbolHalt | None:
    """``symbol``'s halt, ``None`` when it may trade."""
    raw = await redis.hget(channels.SYMBOL_HALTS_KEY, symbol)
    return None if raw is None else parse_symbol_halt(symbol, raw)
