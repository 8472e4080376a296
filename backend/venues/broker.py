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
    "OrderUnresolved",
    "StopWouldTrigger",
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


class OrderUnresolved(VenueError):
    """An order whose outcome stayed unknown: the venue was asked for it (order *and*
    trade history) for longer than a request can live there and the answer is still
    not certain, because the venue neither bounds a request's lifetime nor refuses a
    reused client order id.  Nothing is resent: the order stays ``UNKNOWN``, its symbol
    is halted and a person decides (``docs/venues.md``).

    Attributes
    ----------
    client_order_id : str
    symbol : str
    """

    def __init__(self, client_order_id: str, symbol: str, why: str) -> None:
        super().__init__(why)
        self.client_order_id, self.symbol = client_order_id, symbol


class VenueRejected(VenueError):
    """The venue (or the client's pre-trade check of the venue's rules) refused for good.

    ``str(err)`` is the reason (e.g. ``"amount 0.0001 below the market minimum 0.001"``).
    """


class StopWouldTrigger(VenueRejected):
    """A stop order refused because the market is already past its trigger price
    (Binance ``Order would trigger immediately``): the stop is hit, exit now."""


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
    stop_price : float or None
        The trigger price of a resting stop order (quote/base), ``None`` for a market
        order.
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
    stop_price: float | None = None

    @property
    def final(self) -> bool:
        """True once the venue will change nothing more (filled, cancelled, rejected)."""
        return self.status in (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED)


@dataclass(frozen=True)
class VenueFill:
    """One execution (trade / deal / IB execution) of an order.

    ``fill_id`` is the venue's unique execution id (dedupe key); ``quantity`` the
    executed quantity (base units) as the venue reports it; ``fee`` the part of the fee
    paid in quote currency (the client converts a fee in a third currency or reports 0
    with a log line); ``base_fee`` the part paid in the *base* asset (base units: Binance
    spot takes a buy's fee out of the coins bought), which the ledger nets out of the
    position; ``time_ns`` the execution time (ns UTC).
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
    base_fee: float = 0.0


class BrokerClient(Protocol):
    """What a live venue needs from one broker or exchange API.

    Every method may raise :class:`VenueUnavailable`; order methods may raise
    :class:`VenueRejected`.  All are ``async`` (blocking SDKs run in a thread).

    What the venue guarantees, which decides how an order with an unknown outcome is
    resolved (:mod:`backend.venues.placement`):

    ``unique_client_order_ids``
        True when the venue refuses a client order id used by *any* earlier order,
        filled ones included: an order absent at a lookup may then be sent again at once
        (a late first request would be refused).  Binance spot refuses one only while
        the first order is open: False.
    ``request_lifetime_s``
        The longest time after it was sent that a request can still take effect at the
        venue (Binance: the ``recvWindow`` the request carries), ``None`` when the venue
        bounds nothing (MT5, IB).  Past it (plus ``venue.unknown_margin_s``) an order
        that neither the order lookup nor the trade history shows never landed.
    ``supports_stop_orders``
        True when :meth:`place_stop_order` rests a stop-market order at the venue (the
        position's protection while the execution agent is down).
    """

    name: str
    unique_client_order_ids: bool
    request_lifetime_s: float | None
    supports_stop_orders: bool

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

    async def place_stop_order(
        self, client_order_id: str, symbol: str, side: Side, quantity: float,
        stop_price: float,
    ) -> VenueOrder:
        """Rest a stop-market order (``quantity`` base units, triggered at
        ``stop_price`` quote/base: a sell when the price falls to it, a buy when it rises
        to it).  Only called when :attr:`supports_stop_orders`."""

    def quantity_step(self, symbol: str) -> float:
        """Optional: the venue's quantity step for ``symbol`` (base units; 0 = unknown).
        A position smaller than it is dust: it cannot be sold, and venues may report it
        as flat."""

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
