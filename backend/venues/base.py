"""The interface the execution agent uses to talk to a venue.

Two implementations: :class:`~backend.venues.paper.adapter.PaperVenue` (the simulated venue,
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
from typing import Literal, Protocol

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

__all__ = ["AlarmKind", "BookPosition", "PositionFix", "Venue", "VenueAlarm", "VenueEvent"]

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


AlarmKind = Literal["order_unknown", "position_mismatch", "protection_failed", "id_collision"]


@dataclass(frozen=True)
class VenueAlarm:
    """Something about one symbol the venue adapter cannot settle by itself.

    ``order_unknown``: an order's outcome stayed unknown (not resent; the symbol must be
    halted until a person resolves it); ``position_mismatch``: the venue holds another
    quantity than the books say (halt the symbol; never overwritten silently);
    ``protection_failed``: the venue refused a protective stop (the agent's own bracket
    check still guards the position while the agent runs); ``id_collision``: an order
    reused another order's client order id and was refused (nothing sent).
    """

    symbol: str
    kind: AlarmKind
    reason: str
    client_order_id: str = ""

    @property
    def halts(self) -> bool:
        """True when the symbol must stop taking new entries until a person clears it."""
        return self.kind in ("order_unknown", "position_mismatch")

    @property
    def level(self) -> Literal["warning", "breach"]:
        """The ``risk_alerts`` level: ``breach`` when it halts or refused an order."""
        return "breach" if self.halts or self.kind == "id_collision" else "warning"


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

    async def load(self, baseline: dict[str, float] | None = None) -> None:
        """Connect and load the local state; called before anything else (and again
        after a failed reconciliation).  ``baseline``: what the venue held per symbol
        before the mesh traded, as the database remembers it (a new local state starts
        from it).  Raises ``VenueUnavailable``."""

    @property
    def baseline(self) -> dict[str, float]:
        """What the venue held per symbol before the mesh traded (base units)."""

    def known_orders(self) -> set[str]:
        """Client order ids the local state (book, ledger) tracks."""

    async def close(self) -> None:
        """Release connections; never raises."""

    async def place(self, order: SubmitOrder, now_ns: int, *, send: bool = True
                    ) -> list[VenueEvent]:
        """Place ``order`` unless the venue may already have it; the events, the order's
        own last (before it, e.g. the cancellation of a protective stop a reduce-only
        order needed out of the way).

        An order the venue has (a redelivery, a retry after a timeout) is adopted and
        reported, never sent twice; an order it may have (sent before, outcome unknown)
        is resolved first (:mod:`backend.venues.placement`).  With ``send=False``
        (trading halted) nothing new is sent: an order the venue does not have gives
        ``[]``.  A definitive refusal is an :class:`OrderRejected`.

        Raises ``VenueUnavailable`` (the venue cannot be asked now: retry later) and
        ``OrderUnresolved`` (the outcome stays unknown: halt the symbol, tell a person).
        """

    async def lookup(self, order: SubmitOrder, sent_ns: int | None) -> VenueOrder | None:
        """The venue's record of ``order`` for reconciliation: an order sent at
        ``sent_ns`` is resolved by the UNKNOWN protocol (raises ``OrderUnresolved``); one
        never sent (``None``) is not there."""

    async def fetch_order(self, client_order_id: str, symbol: str) -> VenueOrder | None:
        """The venue's view of one of our orders, ``None`` when the venue definitely
        does not know it.  Raises ``VenueUnavailable``."""

    def adopt(self, order: SubmitOrder, found: VenueOrder, now_ns: int) -> VenueEvent:
        """Take over an order the venue already has (found by :meth:`fetch_order` after a
        timeout or a redelivery) without sending it again; returns the event that
        reports its state (accepted, rejected or cancelled)."""

    def venue_order_id(self, client_order_id: str) -> str | None:
        """The venue's id of one of our orders, when the local state knows it."""

    def fill_status(self, client_order_id: str) -> OrderStatus:
        """The status of an order after the fills the adapter has seen so far
        (``FILLED`` or ``PARTIALLY_FILLED``)."""

    async def open_orders(self) -> list[str]:
        """Client order ids of the venue's working orders (ours and external)."""

    async def open_venue_orders(self) -> list[VenueOrder]:
        """The venue's working orders (ours and external) in full."""

    async def positions(self) -> dict[str, float]:
        """The mesh's signed position per symbol as the venue holds it (base units;
        holdings that were there before the mesh traded are left out), flat ones
        omitted."""

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

    async def check_positions(self, now_ns: int) -> tuple[list[VenueEvent], list[VenueAlarm]]:
        """Compare the books with the venue's positions on a consistent snapshot (fills
        applied up to it; symbols with working orders skipped).  Returns the events of
        the fills applied meanwhile and one ``position_mismatch`` alarm per symbol that
        differs; nothing is overwritten."""

    async def adopt_position(self, symbol: str, now_ns: int) -> PositionFix | None:
        """Set the books' position of ``symbol`` to the venue's (an operator's decision
        after a mismatch, audited by the caller); ``None`` when they already agree."""

    def take_alarms(self) -> list[VenueAlarm]:
        """The alarms raised since the last call (and clears them)."""

    async def cancel_all(self, reason: str, now_ns: int, *, keep_protective: bool = False,
                         entries_only: bool = False) -> list[OrderCancelled]:
        """Cancel every working order at the venue (ours and external); with
        ``keep_protective`` the protective stops resting for our positions stay; with
        ``entries_only`` only our orders that are not reduce-only."""

    async def flatten(self, now_ns: int, command_id: str) -> list[VenueEvent]:
        """Close the mesh's positions with market orders (kill switch).

        Client order ids are derived from ``command_id``, the symbol and an attempt
        number, so a redelivered command never closes twice and a close that expired
        partly filled is followed by another.
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

