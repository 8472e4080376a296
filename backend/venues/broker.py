"""The contract between a live venue and a broker/exchange client (ccxt, MT5, IBKR).

A :class:`BrokerClient` is the thin, venue-specific layer: it speaks the venue's API,
rounds to the venue's precision and limits, and maps the venue's order states to ours.
Everything venue-independent -- the local ledger, stop-loss/take-profit brackets, marks,
reconciliation, the UNKNOWN-outcome protocol -- lives above it
(:mod:`backend.venues.live` and the execution agent), so the three clients stay small
and are tested against fakes of their venues.

Rules every client follows (DESIGN.md, money safety):

* every order carries our client order id to the venue (ccxt ``clientOrderId`` /
  Binance ``newClientOrderId``, MT5 ``comment``, IB ``orderRef``) and can be looked up
  by it (:meth:`BrokerClient.fetch_order`);
* a call whose outcome is not known (timeout, connection lost mid-call) raises
  :class:`VenueUnavailable`; the caller then treats a submitted order as UNKNOWN and
  asks by client order id before anything is resent -- a client never retries an order
  creation by itself;
* a definitive refusal (precision, limits, funds, market closed) raises
  :class:`VenueRejected` with the venue's reason;
* secrets (API keys, passwords) are never logged nor put in exception messages.

Units: quantities in base units (lots/shares are converted by the client), prices in
quote currency per base unit, fees in quote currency, times in ns since the epoch (UTC).
Symbols are ours (``BASE/QUOTE``, e.g. ``ETH/BTC``, ``EUR/USD``, ``AAPL/USD``); the
client maps them to the venue's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from backend.messages import OrderStatus, Side

__all__ = [
    "BrokerClient",
    "VenueError",
    "VenueFill",
    "VenueOrder",
    "VenueRejected",
    "VenueUnavailable",
]


class VenueError(Exception):
    """Base of the errors a :class:`BrokerClient` raises."""


class VenueUnavailable(VenueError):
    """The venue could not be reached, or a call's outcome is unknown (timeout).

    Retryable.  For an order creation it means the order may or may not exist at the
    venue: look it up by client order id before resending.
    """


class VenueRejected(VenueError):
    """The venue (or the client's pre-trade check of the venue's rules) refused for good.

    ``str(err)`` is the reason (e.g. ``"amount 0.0001 below the market minimum 0.001"``).
    """


@dataclass(frozen=True)
class VenueOrder:
    """An order as the venue reports it.

    Attributes
    ----------
    client_order_id : str
        Ours, as sent (for an order we did not place, the venue's id prefixed
        ``ext-``).
    venue_order_id : str
        The venue's order id / ticket.
    symbol : str
        ``BASE/QUOTE``.
    side : Side
    quantity : float
        Ordered, base units.
    filled : float
        Filled so far, base units (``0 <= filled <= quantity``).
    avg_price : float or None
        Average fill price (quote/base), ``None`` before any fill.
    status : OrderStatus
        ``ACCEPTED`` (working, nothing filled), ``PARTIALLY_FILLED``, ``FILLED``,
        ``CANCELLED`` (possibly partially filled) or ``REJECTED``.
    reason : str
        The venue's text for a rejection or cancellation, else ``""``.
    external : bool
        True when the order was not placed by us (no client order id of ours).
    """

    client_order_id: str
    venue_order_id: str
    symbol: str
    side: Side
    quantity: float
    filled: float
    avg_price: float | None
    status: OrderStatus
    reason: str = ""
    external: bool = False


@dataclass(frozen=True)
class VenueFill:
    """One execution (trade / deal / IB execution) of an order.

    ``fill_id`` is the venue's unique execution id (dedupe key); ``fee`` in quote
    currency (the client converts other fee currencies or reports 0 with a log line);
    ``time_ns`` the execution time (ns UTC).
    """

    fill_id: str
    client_order_id: str
    venue_order_id: str
    symbol: str
    side: Side
    quantity: float
    price: float
    fee: float
    time_ns: int


class BrokerClient(Protocol):
    """What a live venue needs from one broker or exchange API.

    Every method may raise :class:`VenueUnavailable`; order methods may raise
    :class:`VenueRejected`.  All are ``async`` (blocking SDKs run in a thread).
    """

    name: str

    async def connect(self) -> None:
        """Log in / load markets / connect; idempotent (a reconnect after loss)."""

    async def close(self) -> None:
        """Release connections; never raises."""

    async def place_market_order(
        self, client_order_id: str, symbol: str, side: Side, quantity: float
    ) -> VenueOrder:
        """Send a market order tagged with ``client_order_id``; ``quantity`` base units,
        rounded by the client to the venue's step (the returned ``quantity`` is what was
        sent)."""

    async def fetch_order(self, client_order_id: str, symbol: str) -> VenueOrder | None:
        """The order with our ``client_order_id``, or ``None`` when the venue definitely
        does not know it (never ``None`` on a failed call: that raises)."""

    async def fetch_open_orders(self, symbols: Sequence[str] | None = None) -> list[VenueOrder]:
        """Working orders (ours and external) of ``symbols`` (all when ``None``)."""

    async def cancel_order(self, client_order_id: str, symbol: str) -> VenueOrder:
        """Cancel a working order; returns its final state (already final: unchanged)."""

    async def fetch_fills(self, symbols: Sequence[str], since_ns: int) -> list[VenueFill]:
        """Executions of ``symbols`` at or after ``since_ns``, oldest first."""

    async def fetch_positions(self) -> dict[str, float]:
        """Signed position per symbol in base units (flat ones omitted).  Spot
        exchanges derive it from base-currency balances of the configured symbols."""

    async def fetch_balances(self) -> dict[str, float]:
        """Total balance per currency (free + used)."""
