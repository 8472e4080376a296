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
    now_ns,
    stable_id,
)
from backend.persistence import Store
from backend.venues.base import Venue
from backend.venues.placement import OrderIntent


async def record_event(store: Store, venue: Venue, ev: object) -> None:
    """Persist one venue event (runs the database calls in a worker thread)."""
    if isinstance(ev, OrderAccepted):
        await asyncio.to_thread(_record_accepted, store, ev)
    elif isinstance(ev, OrderRejected):
        await asyncio.to_thread(store.update_order_status, ev.client_order_id,
                                OrderStatus.REJECTED, None, ev.reason)
    elif isinstance(ev, OrderCancelled):  # an order the venue cancelled at once (expired)
        await asyncio.to_thread(store.update_order_status, ev.client_order_id,
                                OrderStatus.CANCELLED, venue.venue_order_id(ev.client_order_id),
                                ev.reason)
    elif isinstance(ev, OrderFilled):
        status = venue.fill_status(ev.client_order_id)
        await asyncio.to_thread(record_fill, store, ev, status)
    elif isinstance(ev, PositionChanged):
        await asyncio.to_thread(store.upsert_position, ev)


def _record_accepted(store: Store, ev: OrderAccepted) -> None:
    with store.unit_of_work():  # the order's row (if missing) and its status together
        ensure_order(store, ev.client_order_id, ev.symbol, ev.side, ev.quantity,
                     ev.correlation_id, ev.ts, ev.source)
        store.update_order_status(ev.client_order_id, OrderStatus.ACCEPTED, ev.venue_order_id)


def ensure_order(store: Store, coid: str, symbol: str, side: Side, qty: float, corr: str,
                 ts: int, source: str, bar_seq: int = 0, *,
                 stop_price: float | None = None) -> None:
    """Give an order the venue adapter placed itself (bracket exit, protective stop --
    its trigger price as ``stop_loss`` --, flatten: reduce-only) or an external one
    (client order id ``ext-...``) a row, so every fill has an order."""
    if store.get_order(coid) is not None:
        return
    if coid.startswith("ext-"):
        store.record_external_order(coid, symbol, side.value, qty, OrderStatus.ACCEPTED.value,
                                    coid[4:], ts=ts)
        return
    store.record_order_intent(SubmitOrder(
        id=stable_id("exit-order", coid), ts=ts, source=source, correlation_id=corr,
        client_order_id=coid, symbol=symbol, side=side, quantity=max(qty, 1e-12),
        reduce_only=True, signal_id=(corr or "-")[:64], bar_seq=bar_seq, stop_loss=stop_price,
    ))


def record_fill(store: Store, fill: OrderFilled, status: OrderStatus) -> None:
    """Insert a fill (its order row first, if missing) and move its order to ``status``
    (``FILLED`` or ``PARTIALLY_FILLED``, as the venue adapter saw it), in one write
    transaction."""
    with store.unit_of_work():
        ensure_order(store, fill.client_order_id, fill.symbol, fill.side, fill.quantity,
                     fill.correlation_id, fill.ts, fill.source, fill.bar_seq)
        store.record_fill(fill)
        store.update_order_status(fill.client_order_id, status)


class StoreJournal:
    """The execution agent's :class:`~backend.venues.placement.SendJournal`: sends are
    recorded in the ``orders`` table (``sent_ts``, ``send_attempts``) before the venue is
    called, on a database engine opened ``durable`` (SQLite ``synchronous=FULL``).

    Orders the venue adapter places itself (exits, protective stops, kill-switch closes)
    get their reduce-only row here, before their first send.
    """

    def __init__(self, store: Store, source: str) -> None:
        self.store, self.source = store, source

    async def sending(self, intent: OrderIntent) -> int:
        """See :meth:`backend.venues.placement.SendJournal.sending`."""
        ts = now_ns()

        def work() -> None:
            with self.store.unit_of_work():  # the row (if missing) and the send mark
                ensure_order(self.store, intent.client_order_id, intent.symbol, intent.side,
                             intent.quantity, intent.correlation_id, ts, self.source,
                             intent.bar_seq, stop_price=intent.stop_price)
                self.store.mark_order_sent(intent.client_order_id, ts)

        await asyncio.to_thread(work)
        return ts

    async def last_sent(self, client_order_id: str) -> int | None:
        """See :meth:`backend.venues.placement.SendJournal.last_sent`.  An order whose
        status shows the venue answered it (accepted, filled, cancelled, UNKNOWN) counts
        as sent even without a ``sent_ts`` (rows written before it existed)."""
        row = await asyncio.to_thread(self.store.get_order, client_order_id)
        if row is None:
            return None
        if row["sent_ts"] is not None:
            return int(row["sent_ts"])
        if row["status"] in (OrderStatus.NEW.value, OrderStatus.REJECTED.value):
            return None
        return int(row["updated_ts"] or row["created_ts"])

    async def unknown(self, client_order_id: str, why: str) -> None:
        """See :meth:`backend.venues.placement.SendJournal.unknown`."""
        await asyncio.to_thread(self.store.update_order_status, client_order_id,
                                OrderStatus.UNKNOWN, None, why[:500])


#: ``mesh_state`` key prefix of a live venue's baseline (holdings before the mesh traded).
BASELINE_STATE = "venue_baseline:"


async def load_venue(venue: Venue, store: Store) -> None:
    """Load ``venue``; a live venue's baseline (what it held before the mesh traded) is
    kept durable in the database, so a ledger rebuilt after Redis lost it starts from the
    same baseline instead of counting the mesh's positions as the trader's."""
    key = BASELINE_STATE + venue.name
    saved = await asyncio.to_thread(store.get_state, key)
    await venue.load(baseline=saved["positions"] if saved else None)
    if saved is None and venue.polls:
        await asyncio.to_thread(store.put_state, key,
                                {"positions": venue.baseline, "ts": now_ns()})
