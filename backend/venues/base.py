"""The interface the execution agent uses to talk to a venue.

Two implementations: :class:`~backend.venues.paper.PaperVenue` (the simulated venue,
its book in Redis) and :class:`~backend.venues.live.LiveVenue` (any real venue through
a :class:`~backend.venues.broker.BrokerClient`).  Both answer the same questions, so
the execution agent's UNKNOWN-order protocol and its reconciliation on start are one
code path for every venue (see ``docs/venues.md``).

Every adapter sends our client order id to the venue and can look an order up by it
(:meth:`Venue.fetch_order`), which is what makes "timeout = UNKNOWN, resolve by asking"
possible.  Calls that need the venue raise
:class:`~backend.venues.broker.VenueUnavailable` when it cannot be reached or the
outcome is not known.

Adapters keep local state (the paper book; the live venue's ledger of positions and
fills) in Redis.  Changes are *pending* until the agent's Redis transaction executes:
:meth:`Venue.stage` adds them to that transaction, :meth:`Venue.commit` adopts them
after it executed, :meth:`Venue.rollback` drops them.  So a venue event, its effect on
the local state and the acknowledgement of the input that caused it are atomic.

Units: quantities in base units (positions signed), prices in quote currency per base
unit, times in ns since the Unix epoch (UTC).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio.client import Pipeline

from backend.messages import (
    BarClosed,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderStatus,
    PortfolioMarked,
    PositionChanged,
    SubmitOrder,
)
from backend.venues.broker import VenueOrder

__all__ = ["BookPosition", "PositionFix", "Venue", "VenueEvent"]

VenueEvent = OrderAccepted | OrderRejected | OrderCancelled | OrderFilled | PositionChanged


@dataclass(frozen=True)
class BookPosition:
    """A position as the adapter's local book/ledger holds it.

    ``quantity`` signed base units; ``avg_price`` quote/base (0 when flat);
    ``realized_pnl`` the symbol's cumulative gross realized P&L (quote currency).
    """

    quantity: float
    avg_price: float
    realized_pnl: float


@dataclass(frozen=True)
class PositionFix:
    """One correction of the local ledger to the venue's position (reconciliation).

    ``before``/``after`` signed base units; ``event`` the :class:`PositionChanged` the
    correction produced (to persist and publish).
    """

    symbol: str
    before: float
    after: float
    event: PositionChanged


class Venue(Protocol):
    """What execution needs from a venue (paper, ccxt, MT5, IBKR).

    Attributes
    ----------
    name : str
        ``"paper"`` or the broker client's name (``"ccxt:binance"``, ``"mt5"``, ...).
    polls : bool
        True when fills and order updates must be fetched (:meth:`poll`): the agent
        then polls every ``venue.poll_s`` seconds besides every bar.  False for the
        paper venue, whose fills happen on bars.
    """

    name: str
    polls: bool

    async def load(self) -> None:
        """Connect and load the local state; called before anything else (and again
        after a failed reconciliation).  Raises ``VenueUnavailable``."""

    async def close(self) -> None:
        """Release connections; never raises."""

    async def submit(
        self, order: SubmitOrder, now_ns: int,
    ) -> OrderAccepted | OrderRejected | OrderCancelled:
        """Place ``order`` at the venue.

        A definitive refusal is an :class:`OrderRejected` (an order the venue took but
        cancelled at once, an :class:`OrderCancelled`).  Raises ``VenueUnavailable``
        when the outcome is unknown: the caller marks the order UNKNOWN and resolves it
        with :meth:`fetch_order` before anything is resent.
        """

    async def fetch_order(self, client_order_id: str, symbol: str) -> VenueOrder | None:
        """The venue's view of one of our orders, ``None`` when the venue definitely
        does not know it.  Raises ``VenueUnavailable``."""

    def adopt(self, order: SubmitOrder, found: VenueOrder, now_ns: int) -> VenueEvent:
        """Take over an order the venue already has (found by :meth:`fetch_order` after a
        timeout or a redelivery) without sending it again; returns the event that
        reports its state (accepted, rejected or cancelled)."""

    def fill_status(self, client_order_id: str) -> OrderStatus:
        """The status of an order after the fills the adapter has seen so far
        (``FILLED`` or ``PARTIALLY_FILLED``)."""

    async def open_orders(self) -> list[str]:
        """Client order ids of the venue's working orders (ours and external)."""

    async def open_venue_orders(self) -> list[VenueOrder]:
        """The venue's working orders (ours and external) in full."""

    async def positions(self) -> dict[str, float]:
        """The venue's signed position per symbol (base units), flat ones omitted."""

    def book_positions(self) -> dict[str, BookPosition]:
        """The local book's/ledger's positions (flat ones omitted)."""

    async def fills_of(self, client_order_ids: Collection[str]) -> list[OrderFilled]:
        """The fills the adapter executed or applied for these orders, oldest first
        (what the database must hold; reconciliation records the missing ones)."""

    async def poll(self, now_ns: int, since_ns: int | None = None) -> list[VenueEvent]:
        """Fills and order updates since the last poll (from ``since_ns`` if given).

        Idempotent: a fill already applied is skipped (deduplicated by the venue's fill
        id), events have ids derived from the venue's ids.  Raises ``VenueUnavailable``.
        """

    async def sync_positions(self, now_ns: int) -> list[PositionFix]:
        """Correct the local ledger to the venue's positions (reconciliation)."""

    async def cancel_all(self, reason: str, now_ns: int) -> list[OrderCancelled]:
        """Cancel every working order at the venue (ours and external)."""

    async def flatten(self, now_ns: int, command_id: str) -> list[VenueEvent]:
        """Close every position with market orders (kill switch).

        Client order ids are derived from ``command_id`` and the symbol, so a
        redelivered command never closes twice.
        """

    async def on_bar(self, bar: BarClosed) -> list[VenueEvent]:
        """Feed a closed bar (the paper venue matches on it; a live venue polls fills,
        marks the symbol and checks stop-loss/take-profit brackets)."""

    def portfolio(self, bar: BarClosed) -> PortfolioMarked:
        """Mark-to-market account state after ``bar``."""

    def current_mark(self) -> PortfolioMarked | None:
        """Account state now, at the last marks (``None`` before any bar)."""

    def stage(self, pipe: Pipeline) -> None:
        """Stage pending venue state in the agent's transaction."""

    def commit(self) -> None:
        """Adopt pending state after the transaction executed."""

    def rollback(self) -> None:
        """Drop pending state (the transaction failed)."""

