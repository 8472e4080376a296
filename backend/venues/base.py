"""The interface the execution agent uses to talk to a venue.

Every adapter sends our client order id to the venue and can look an order up by it,
which is what makes "timeout = UNKNOWN, resolve by asking" possible.  Adapters whose
state must be saved atomically with the agent's acknowledgement (the paper venue keeps
its book in Redis) stage it in the agent's transaction via :meth:`Venue.stage` and
adopt it in :meth:`Venue.commit`.
"""

from __future__ import annotations

from typing import Protocol

from redis.asyncio.client import Pipeline

from backend.messages import (
    BarClosed,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PortfolioMarked,
    PositionChanged,
    SubmitOrder,
)

VenueEvent = OrderAccepted | OrderRejected | OrderCancelled | OrderFilled | PositionChanged


class Venue(Protocol):
    """What execution needs from a venue (paper, ccxt, MT5, IBKR)."""

    name: str

    async def load(self) -> None:
        """Connect / load state; called once before anything else."""

    async def submit(self, order: SubmitOrder, now_ns: int) -> OrderAccepted | OrderRejected:
        """Place ``order`` (idempotent by client order id)."""

    async def order_status(self, client_order_id: str) -> str | None:
        """The venue's status of ``client_order_id`` (``OrderStatus`` value) or None."""

    async def open_orders(self) -> list[str]:
        """Client order ids of the venue's open orders."""

    async def positions(self) -> dict[str, float]:
        """Signed position per symbol (base units)."""

    async def cancel_all(self, reason: str, now_ns: int) -> list[OrderCancelled]:
        """Cancel every open order."""

    async def on_bar(self, bar: BarClosed) -> list[VenueEvent]:
        """Feed a bar (simulated venues match on it; real venues may ignore it)."""

    def portfolio(self, bar: BarClosed) -> PortfolioMarked:
        """Mark-to-market account state after ``bar``."""

    def stage(self, pipe: Pipeline) -> None:
        """Stage pending venue state in the agent's transaction."""

    def commit(self) -> None:
        """Adopt pending state after the transaction executed."""

    def rollback(self) -> None:
        """Drop pending state (the transaction failed)."""
