"""What the execution agent's helpers (watch, symbol resolution) need of the agent: a
protocol, so they hold no reference to the agent's class."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from backend.messages import Message
from backend.persistence import Store
from backend.settings import Settings
from backend.venues.base import Venue, VenueAlarm

__all__ = ["ExecutionPort"]


class ExecutionPort(Protocol):
    """What the watch needs of the execution agent."""

    settings: Settings
    agent_id: str
    venue: Venue | None
    store: Store
    redis: Redis | None
    log: logging.Logger
    problems: dict[str, str]
    lock: asyncio.Lock

    async def wait_stop(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for a stop request; True if one came."""

    async def record(self, ev: object) -> None:
        """Persist one venue event."""

    def emit(self, pipe: Pipeline, channel: str, msg: Message) -> None:
        """Stage a message in the transaction."""

    async def alarms(self, pipe: Pipeline, extra: list[VenueAlarm] | None = None) -> None:
        """Stage the venue's alarms and ``extra``."""
