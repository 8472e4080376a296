"""Orders of a live venue: their state events, and at-most-once placement of the
orders the adapter sends itself (bracket exits, kill-switch closes).

Event ids derive from the venue and the client order id: a redelivered or retried input
produces the same ids, so every consumer of ``trading_events`` stays idempotent.
"""

from __future__ import annotations

from backend.messages import (
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    OrderStatus,
    Side,
    stable_id,
)
from backend.venues.broker import BrokerClient, VenueOrder, VenueUnavailable
from backend.venues.ledger import LedgerOrder

__all__ = ["accepted", "cancelled", "place_once", "rejected", "status_event"]


def accepted(venue: str, o: LedgerOrder, now: int) -> OrderAccepted:
    """``o`` is working at ``venue`` (``now`` ns)."""
    return OrderAccepted(
        id=stable_id("live", venue, "order_accepted", o.client_order_id), ts=now,
        source=f"venue:{venue}", correlation_id=o.correlation_id,
        client_order_id=o.client_order_id, venue_order_id=o.venue_order_id, symbol=o.symbol,
        side=o.side, quantity=o.quantity,
    )


def rejected(venue: str, coid: str, symbol: str, reason: str, corr: str, now: int
             ) -> OrderRejected:
    """The venue (or the adapter's pre-check) refused ``coid``."""
    return OrderRejected(
        id=stable_id("live", venue, "order_rejected", coid), ts=now, source=f"venue:{venue}",
        correlation_id=corr, client_order_id=coid, symbol=symbol,
        reason=(reason or "rejected by the venue")[:500],
    )


def cancelled(venue: str, coid: str, symbol: str, reason: str, corr: str, now: int
              ) -> OrderCancelled:
    """``coid`` was cancelled (by us or by the venue)."""
    return OrderCancelled(
        id=stable_id("live", venue, "order_cancelled", coid), ts=now, source=f"venue:{venue}",
        correlation_id=corr, client_order_id=coid, symbol=symbol,
        reason=(reason or "cancelled at the venue")[:500],
    )


def status_event(venue: str, o: LedgerOrder, reason: str, now: int
                 ) -> OrderAccepted | OrderRejected | OrderCancelled:
    """The event that reports ``o``'s venue status (rejected, cancelled, else accepted)."""
    if o.status == OrderStatus.REJECTED.value:
        return rejected(venue, o.client_order_id, o.symbol, reason, o.correlation_id, now)
    if o.status == OrderStatus.CANCELLED.value:
        return cancelled(venue, o.client_order_id, o.symbol, reason, o.correlation_id, now)
    return accepted(venue, o, now)


async def place_once(client: BrokerClient, coid: str, symbol: str, side: Side, qty: float
                     ) -> VenueOrder:
    """Send a market order of the adapter's own at most once: the venue is asked by
    client order id first, and again after an unknown outcome (``VenueUnavailable`` when
    it is still not there: the caller retries the whole step later)."""
    found = await client.fetch_order(coid, symbol)
    if found is not None:
        return found
    try:
        return await client.place_market_order(coid, symbol, side, qty)
    except VenueUnavailable as exc:
        found = await client.fetch_order(coid, symbol)
        if found is None:
            raise VenueUnavailable(
                f"order {coid} not at the venue after a failed send: {exc}") from exc
        return found
