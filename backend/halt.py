"""The trading halt latch (``mesh:halt``): who set it, why, since when.

One latch serves the kill switch, the daily-drawdown circuit breaker and the
supervisor (execution agent given up on).  While the key exists risk rejects every
signal and execution denies every new order.  It is cleared only by an explicit,
audited reset.  The orchestrator mirrors it into the database, so it survives the
loss of Redis' data as well as restarts of any process.

An unreadable latch value counts as halted (fail closed).
"""

from __future__ import annotations

from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.asyncio import Redis

from backend import channels
from backend.messages import now_ns

#: Key of the latch's mirror in the database (``Store.put_state``).
HALT_STATE = "halt"

HaltKind = Literal["circuit_breaker", "kill_switch", "supervisor", "restored"]


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
