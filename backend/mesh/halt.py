"""The trading halt latch (``mesh:halt``): who set it, why, since when -- durable first.

One latch serves the kill switch, the daily-drawdown circuit breaker and the
supervisor (execution agent given up on).  While it exists risk rejects every new entry
and execution denies every new order that is not reduce-only.

**The database is the latch's source of truth** (``mesh_state`` key :data:`HALT_STATE`):
:func:`latch` writes it there first, then in Redis.  It is cleared only by an explicit,
audited :func:`reset`, which replaces the database latch with a reset record
(:class:`HaltReset`, a generation number and a time) in one transaction, then does the
same in Redis.  :func:`sync_latch` (the orchestrator, at start and every few seconds)
keeps Redis in step: a latch the database has and Redis lacks (Redis lost its data) is
put back; a latch only Redis has is added to the database if it is newer than the last
reset, else it is the leftover of a reset that did not finish and is removed.  Nothing
but a reset ever deletes the database latch.  A component that latched itself (the risk
agent's breaker) stays halted while the latch is missing unless a reset newer than its
own latch exists (:func:`read_reset`).

An unreadable latch value counts as halted (fail closed).
"""

from __future__ import annotations

import asyncio
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.asyncio import Redis

from backend import channels
from backend.messages import now_ns
from backend.persistence import Store

#: Database key of the latch (``Store.put_state``): the source of truth.
HALT_STATE = "halt"
#: Database key of the last reset (:class:`HaltReset`).
HALT_RESET_STATE = "halt_reset"

HaltKind = Literal["circuit_breaker", "kill_switch", "supervisor", "restored", "stuck",
                   "data_loss"]


class HaltState(BaseModel):
    """Value of the latch (JSON in ``mesh:halt``; time in ns UTC)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    halted: Literal[True] = True
    kind: HaltKind = "kill_switch"
    by: str = "unknown"
    reason: str = Field(default="", max_length=1000)
    ts: int = Field(default_factory=now_ns)

    def to_json(self) -> bytes:
        """Serialized value for the key."""
        return orjson.dumps(self.model_dump(mode="json"))


def parse_halt(raw: bytes | str | None) -> HaltState | None:
    """Decode a stored latch; ``None`` if absent; unreadable -> halted (fail closed)."""
    if raw is None:
        return None
    try:
        return HaltState.model_validate(orjson.loads(raw))
    except (orjson.JSONDecodeError, ValidationError, TypeError):
        return HaltState(kind="restored", by="unknown", reason="unreadable halt record", ts=0)


async def read_halt(redis: Redis) -> HaltState | None:
    """The latch as stored in Redis (``None`` = trading allowed)."""
    return parse_halt(await redis.get(channels.HALT_KEY))


class HaltReset(BaseModel):
    """The last audited reset of the latch: ``generation`` counts resets, ``ts`` (ns UTC)
    when it happened; a latch set before ``ts`` is over."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    generation: int = Field(ge=1)
    ts: int
    by: str = ""
    reason: str = Field(default="", max_length=1000)

    def to_json(self) -> bytes:
        """Serialized value for ``mesh:halt:reset``."""
        return orjson.dumps(self.model_dump(mode="json"))


async def read_reset(redis: Redis) -> HaltReset | None:
    """The last reset as Redis holds it (``None``: none, or unreadable)."""
    raw = await redis.get(channels.HALT_RESET_KEY)
    if raw is None:
        return None
    try:
        return HaltReset.model_validate(orjson.loads(raw))
    except (orjson.JSONDecodeError, ValidationError, TypeError):
        return None


async def latch(redis: Redis, store: Store, halt: HaltState) -> HaltState:
    """Latch ``halt`` in the database first (kept if one is there), then in Redis; the
    latch in force.  Raises Redis errors after the database write (it is durable then)."""
    held = HaltState.model_validate(
        await asyncio.to_thread(store.put_state_if_absent, HALT_STATE,
                                halt.model_dump(mode="json")))
    await redis.set(channels.HALT_KEY, held.to_json(), nx=True)
    return await read_halt(redis) or held


async def reset(redis: Redis, store: Store, *, reason: str, actor: str
                ) -> tuple[HaltState | None, HaltReset]:
    """Clear the latch: database (latch out, reset record in, one transaction), then
    Redis (the same, in one MULTI/EXEC).  Returns the latch that was in force (``None``:
    there was none) and the reset record."""
    prev = await read_halt(redis)
    if prev is None:
        db = await asyncio.to_thread(store.get_state, HALT_STATE)
        prev = HaltState.model_validate(db) if db else None
    last = await asyncio.to_thread(store.get_state, HALT_RESET_STATE)
    rec = HaltReset(generation=int((last or {}).get("generation", 0)) + 1, ts=now_ns(),
                    by=actor, reason=reason[:1000])
    await asyncio.to_thread(store.swap_states, {HALT_RESET_STATE: rec.model_dump(mode="json")},
                            [HALT_STATE])
    pipe = redis.pipeline(transaction=True)
    pipe.delete(channels.HALT_KEY)
    pipe.set(channels.HALT_RESET_KEY, rec.to_json())
    await pipe.execute()
    return prev, rec


async def sync_latch(redis: Redis, store: Store) -> tuple[HaltState | None, str]:
    """Make Redis agree with the database (see the module docstring).

    Returns the latch in force and what was done: ``"restored"`` (Redis lacked the
    database's latch), ``"recorded"`` (Redis had a latch the database lacked),
    ``"reset finished"`` (a Redis latch older than the last reset removed) or ``""``.
    """
    db = await asyncio.to_thread(store.get_state, HALT_STATE)
    last = await asyncio.to_thread(store.get_state, HALT_RESET_STATE)
    rec = HaltReset.model_validate(last) if last else None
    if rec is not None and await read_reset(redis) != rec:
        await redis.set(channels.HALT_RESET_KEY, rec.to_json())
    halt = await read_halt(redis)
    if db is not None:
        durable = HaltState.model_validate(db)
        if halt is None:
            await redis.set(channels.HALT_KEY, durable.to_json(), nx=True)
            return await read_halt(redis) or durable, "restored"
        return halt, ""
    if halt is None:
        return None, ""
    if rec is not None and halt.ts <= rec.ts:  # a reset that did not reach Redis
        await redis.delete(channels.HALT_KEY)
        return None, "reset finished"
    await asyncio.to_thread(store.put_state_if_absent, HALT_STATE, halt.model_dump(mode="json"))
    return halt, "recorded"
