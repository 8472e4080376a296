"""Fills of a live venue by polling: each new fill applied to the ledger once, order updates taken.

:class:`FillPoller` asks the venue for the fills of the mesh's symbols (and of every symbol
held or ordered) since the ledger's fill cursor, less :data:`FILL_OVERLAP_NS`; applies them
oldest first (:func:`backend.venues.ledger.apply_fill`: a fill already applied is skipped,
so the overlap is harmless); keeps the ``OrderFilled`` events for the agent's transaction
(:class:`~backend.venues.live_state.LedgerState`); then asks the venue about every working
order: a cancellation or rejection becomes an event, any other change of status is
recorded.  Re-protecting the positions that changed is the venue's
(:mod:`backend.venues.live_brackets`).

Every venue call goes through the :class:`~backend.venues.placement.Placer`.

Units: times ns UTC.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from backend.messages import OrderFilled, OrderStatus
from backend.venues import ledger as lg
from backend.venues import live_orders as le
from backend.venues.base import VenueEvent
from backend.venues.broker import BrokerClient, VenueOrder
from backend.venues.ledger import Ledger
from backend.venues.live_state import LedgerState
from backend.venues.placement import Placer

__all__ = ["FILL_OVERLAP_NS", "FillPoller"]

#: Polls ask for fills from this long before the latest fill applied (a venue may report
#: an execution late); the overlap is deduplicated by fill id.
FILL_OVERLAP_NS = 60 * 1_000_000_000


class FillPoller:
    """New fills and order updates of one live venue, applied to a ledger.

    Parameters
    ----------
    name
        The venue's name (part of the fills' keys and of the events' ids).
    client
        The venue's client.
    placer
        Makes the venue calls (a venue that cannot be asked raises ``VenueUnavailable``).
    state
        The ledger's state in Redis: the fills applied are kept in its ``new_fills``.
    symbols
        The mesh's symbols: their fills are fetched even when nothing is held or ordered.
    fetch_order
        ``await fetch_order(client_order_id, symbol)``: the venue's record of one of our
        orders (``None``: definitely unknown).
    """

    def __init__(self, name: str, client: BrokerClient, placer: Placer, state: LedgerState,
                 symbols: Sequence[str],
                 fetch_order: Callable[[str, str], Awaitable[VenueOrder | None]]) -> None:
        self.name, self.client, self.placer, self.state = name, client, placer, state
        self.symbols, self.fetch_order = symbols, fetch_order

    async def fetch_fills(self, w: Ledger, since_ns: int | None = None) -> list:
        """The venue's fills since ``w``'s fill cursor less :data:`FILL_OVERLAP_NS` (since
        ``since_ns`` when that is earlier), of the mesh's symbols and every symbol ``w``
        holds or has a working order in."""
        start = w.fill_cursor_ns - FILL_OVERLAP_NS
        if since_ns is not None:
            start = min(start, since_ns)
        symbols = set(self.symbols) | {s for s, p in w.positions.items() if p.quantity}
        symbols |= {o.symbol for o in w.orders.values() if o.working}
        return await self.placer.call(
            "fetch_fills", lambda: self.client.fetch_fills(sorted(symbols), max(start, 0)))

    async def poll(self, w: Ledger, since_ns: int | None, now: int
                   ) -> tuple[list[VenueEvent], set[str]]:
        """Apply the new fills to ``w`` (see :meth:`fetch_fills`) and take the updates of
        its working orders (``now`` ns: the time of their events).

        Returns
        -------
        tuple
            The events, oldest fill first, and the symbols whose position changed or
            whose order was cancelled or rejected.
        """
        events: list[VenueEvent] = []
        touched: set[str] = set()
        fills = await self.fetch_fills(w, since_ns)
        for vf in sorted(fills, key=lambda f: (f.time_ns, f.fill_id)):
            evs, _ = lg.apply_fill(w, vf, self.name)
            for ev in evs:
                if isinstance(ev, OrderFilled):
                    self.state.new_fills[ev.fill_id] = ev
                    touched.add(ev.symbol)
            events += evs
        for o in [o for o in w.orders.values() if o.working]:
            found = await self.fetch_order(o.client_order_id, o.symbol)
            if found is None:
                continue
            if found.status in (OrderStatus.CANCELLED, OrderStatus.REJECTED):
                o = o.model_copy(update={"status": found.status.value})
                w.orders[o.client_order_id] = o
                lg.drop_pending_exit(w, o.client_order_id)
                events.append(le.status_event(self.name, o, found.reason, now))
                touched.add(o.symbol)
            elif found.status.value != o.status:
                w.orders[o.client_order_id] = o.model_copy(update={"status": found.status.value})
        return events, touched
