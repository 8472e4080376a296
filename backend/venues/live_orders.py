"""Orders of a live venue: their state events, and how the ledger tracks an order the
venue reported (:func:`track`).

Event ids derive from the venue and the client order id: a redelivered or retried input
produces the same ids, so every consumer of ``trading_events`` stays idempotent.
"""

from __future__ import annotations

from backend.messages import (
    ExitReason,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    OrderStatus,
    stable_id,
)
from backend.venues.broker import VenueOrder
from backend.venues.ledger import Ledger, LedgerOrder

__all__ = ["accepted", "cancelled", "rejected", "status_event", "track"]


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


def track(led: Ledger, found: VenueOrder, *, reduce_only: bool, correlation_id: str,
          bar_seq: int, exit_reason: ExitReason | None = None, stop_loss: float | None = None,
          take_profit: float | None = None, requested: float = 0.0) -> LedgerOrder:
    """Record ``found`` (the venue's record of one of our orders) in ``led`` and return
    the ledger's order.  The fills already applied to an order the ledger knew are kept
    (the venue's ``filled`` arrives as fills, by poll); a known order keeps its exit
    reason and requested quantity unless new ones are given."""
    prev = led.orders.get(found.client_order_id)
    o = LedgerOrder(
        client_order_id=found.client_order_id, symbol=found.symbol, side=found.side,
        quantity=found.quantity, filled=prev.filled if prev is not None else 0.0,
        status=found.status.value, venue_order_id=found.venue_order_id,
        reduce_only=reduce_only, stop_loss=stop_loss, take_profit=take_profit,
        correlation_id=correlation_id, bar_seq=bar_seq,
        exit_reason=exit_reason or (prev.exit_reason if prev is not None else None),
        stop_price=found.stop_price,
        requested=requested or (prev.requested if prev is not None else found.quantity),
    )
    led.orders[o.client_order_id] = o
    return o
