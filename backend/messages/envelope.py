"""The envelope every message shares (:class:`Message`) and the constrained field types.

Every message carries ``id`` (unique), ``ts`` (ns since the Unix epoch, UTC),
``source`` (agent id), ``correlation_id`` (the signal it descends from, carried
signal -> approval -> order -> fill) and a ``type`` tag.  Commands are imperatives
(``SubmitOrder``), events are past tense (``OrderFilled``).

Units: prices in quote currency per base unit, quantities in base units,
notional and cash in quote currency, times in ns since epoch (UTC).
"""

from __future__ import annotations

import time
from typing import Annotated

import orjson
from pydantic import BaseModel, ConfigDict, Field

from backend.messages.ids import new_id

#: Nanoseconds in a UTC day (days are ``time_ns // NS_PER_DAY``).
NS_PER_DAY = 86_400_000_000_000


def now_ns() -> int:
    """Wall-clock time in ns since the Unix epoch (UTC)."""
    return time.time_ns()


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

#: A score (objective units) or ``None`` when undefined (no trade, no variance ...).
Score = Annotated[float, Field(allow_inf_nan=False)] | None
