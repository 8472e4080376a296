"""How the execution agent persists venue events (idempotent, safe to repeat).

Every event is written to the database *before* the Redis transaction that publishes it
(and acknowledges its input) executes, so a crash in between redoes the write on
redelivery; every write is an insert-or-ignore or a forward-only status update.
"""

from __future__ import annotations

import asyncio

from backend.messages import (
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderStatus,
    PositionChanged,
    Side,
    SubmitOrder,
    stable_id,
)
from backend.persistence import Store
from backend.venues.base import Venue


async def record_event(store: Store, venue: Venue, ev: object) -> None:
    """Persist one venue event (runs the database calls in a worker thread)."""
    if isinstance(ev, OrderAccepted):
        await asyncio.to_thread(ensure_order, store, ev.client_order_id, ev.symbol, ev.side,
                                ev.quantity, ev.correlation_id, ev.ts, ev.source)
        await asyncio.to_thread(store.update_order_status, ev.client_order_id,
                                OrderStatus.ACCEPTED, ev.venue_order_id)
    elif isinstance(ev, OrderRejected):
        await asyncio.to_thread(store.update_order_status, ev.client_order_id,
                                OrderStatus.REJECTED, None, ev.reason)
    elif isinstance(ev, OrderCancelled):
        await asyncio.to_thread(store.update_order_status, ev.client_order_id,
                                OrderStatus.CANCELLED, None, ev.reason)
    elif isinstance(ev, OrderFilled):
        status = venue.fill_status(ev.client_order_id)
        await asyncio.to_thread(record_fill, store, ev, status)
    elif isinstance(ev, PositionChanged):
        await asyncio.to_thread(store.upsert_position, ev)


def ensure_order(store: Store, coid: str, symbol: str, side: Side, qty: float, corr: str,
                 ts: int, source: str, bar_seq: int = 0) -> None:
    """Give an order the venue adapter placed itself (bracket exit, flatten: reduce-only)
    or an external one (client order id ``ext-...``) a row, so every fill has an order."""
    if store.get_order(coid) is not None:
        return
    if coid.startswith("ext-"):
        store.record_external_order(coid, symbol, side.value, qty, OrderStatus.ACCEPTED.value,
                                    coid[4:], ts=ts)
        return
    store.record_order_intent(SubmitOrder(
        id=stable_id("exit-order", coid), ts=ts, source=source, correlation_id=corr,
        client_order_id=coid, symbol=symbol, side=side, quantity=max(qty, 1e-12),
        reduce_only=True, signal_id=(corr or "-")[:64], bar_seq=bar_seq,
    ))


def record_fill(store: Store, fill: OrderFilled, status: OrderStatus) -> None:
    """Insert a fill (its order row first, if missing) and move its order to ``status``
    (``FILLED`` or ``PARTIALLY_FILLED``, as the venue adapter saw it)."""
    ensure_order(store, fill.client_order_id, fill.symbol, fill.side, fill.quantity,
                 fill.correlation_id, fill.ts, fill.source, fill.bar_seq)
    store.record_fill(fill)
    store.update_order_status(fill.client_order_id, status)
