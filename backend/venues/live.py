"""``LiveVenue``: the :class:`~backend.venues.base.Venue` over any
:class:`~backend.venues.broker.BrokerClient` (ccxt, MT5, IBKR, test fakes).

The client speaks the venue's API; this class adds everything venue-independent:

* a local **ledger** (:mod:`backend.venues.ledger`) of positions, average prices,
  realized P&L, fees and cash, built from the venue's fills, each applied once
  (deduplicated by the venue's fill id);
* **fills by polling**: :meth:`LiveVenue.poll` (the execution agent calls it every
  ``venue.poll_s`` while orders are working, and on every bar) fetches fills since a
  little before the latest one seen and order updates (cancellations, rejections);
* **brackets**: a position's stop loss / take profit is checked against every bar; a
  hit sends a reduce-only market order with a deterministic client order id
  (:func:`~backend.venues.ledger.exit_coid`), looked up at the venue before it is sent,
  so a bar handled twice never exits twice;
* **marks**: :class:`~backend.messages.PortfolioMarked` from the venue's balances (cash
  in ``quote_currency``, refreshed once per bar time) and the ledger's positions;
* the kill switch's **flatten**: real market orders closing the venue's positions, ids
  derived from the command id and the symbol.

The ledger lives in Redis (:func:`ledger_keys`), changes staged in the agent's
transaction like the paper book (:meth:`stage` / :meth:`commit` / :meth:`rollback`).

Units: quantities base units, prices quote/base, cash and fees in the account (quote)
currency, times ns UTC.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from backend.messages import (
    BarClosed,
    ExitReason,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderStatus,
    PortfolioMarked,
    Side,
    SubmitOrder,
    now_ns,
)
from backend.venues import ledger as lg
from backend.venues import live_orders as le
from backend.venues.base import BookPosition, PositionFix, VenueEvent
from backend.venues.broker import BrokerClient, VenueOrder, VenueRejected
from backend.venues.ledger import Accounting, Ledger, LedgerOrder

__all__ = ["FILL_OVERLAP_NS", "LiveVenue", "ledger_keys"]

log = logging.getLogger("venue.live")

#: Polls ask for fills from this long before the latest fill applied (a venue may report
#: an execution late); the overlap is deduplicated by fill id.
FILL_OVERLAP_NS = 60 * 1_000_000_000


def ledger_keys(name: str) -> tuple[str, str, str]:
    """Redis keys of venue ``name``'s ledger: (blob, orders hash, fills hash)."""
    base = f"venue:live:{name}"
    return f"{base}:ledger", f"{base}:orders", f"{base}:fills"


class LiveVenue:
    """A real venue behind a :class:`BrokerClient`, with a local ledger in Redis.

    Parameters
    ----------
    client
        The broker/exchange client (not yet connected: :meth:`load` connects).
    redis
        The execution agent's Redis client (ledger storage).
    symbols
        The mesh's symbols: fills are fetched for them (and any symbol held or ordered).
    quote_currency
        The account currency whose balance is the ledger's cash.
    accounting
        ``"spot"`` or ``"margin"`` (see :mod:`backend.venues.ledger`).
    """

    polls = True

    def __init__(self, client: BrokerClient, redis: Redis, *, symbols: Sequence[str],
                 quote_currency: str, accounting: Accounting = "spot") -> None:
        self.client, self.redis, self.name = client, redis, client.name
        self.symbols, self.quote = list(symbols), quote_currency
        self.keys = ledger_keys(self.name)
        self.ledger = Ledger(accounting=accounting)
        self._next: Ledger | None = None
        self._new_fills: dict[str, OrderFilled] = {}
        self._synced_bar_time = -1  # bar time of the last on-bar poll + balance refresh

    # ------------------------------------------------------------------ state
    @property
    def _cur(self) -> Ledger:
        return self._next if self._next is not None else self.ledger

    def _w(self) -> Ledger:
        """The pending ledger (a clone of the committed one), created on first change."""
        if self._next is None:
            self._next = self.ledger.clone()
        return self._next

    async def load(self) -> None:
        """Connect the client, load the ledger from Redis (new: cursor = now), refresh
        the balances.  Raises ``VenueUnavailable``."""
        await self.client.connect()
        blob_key, orders_key, fills_key = self.keys
        raw = await self.redis.get(blob_key)
        if raw is None:
            led = Ledger(accounting=self.ledger.accounting, fill_cursor_ns=now_ns())
        else:
            data = orjson.loads(raw)
            orders = await self.redis.hgetall(orders_key)
            data["orders"] = {k.decode(): orjson.loads(v) for k, v in orders.items()}
            fills = await self.redis.hgetall(fills_key)
            data["fills"] = {
                k.decode(): int(orjson.loads(v)["fill_time"]) for k, v in fills.items()}
            led = Ledger.model_validate(data)
        self._refresh_cash(led, await self.client.fetch_balances())
        self.ledger, self._next, self._new_fills = led, None, {}

    async def close(self) -> None:
        """Close the client (never raises)."""
        await self.client.close()

    def stage(self, pipe: Pipeline) -> None:
        """Stage the pending ledger: blob, changed orders, new fills."""
        if self._next is None:
            return
        new, old = self._next, self.ledger
        blob_key, orders_key, fills_key = self.keys
        blob = new.model_dump(mode="json", exclude={"orders", "fills"})
        pipe.set(blob_key, orjson.dumps(blob))
        changed = {k: v.model_dump_json() for k, v in new.orders.items() if old.orders.get(k) != v}
        if changed:
            pipe.hset(orders_key, mapping=changed)
        if self._new_fills:
            pipe.hset(fills_key, mapping={k: v.to_json() for k, v in self._new_fills.items()})

    def commit(self) -> None:
        """Adopt the pending ledger after the transaction executed."""
        if self._next is not None:
            self.ledger = self._next
        self._next, self._new_fills = None, {}

    def rollback(self) -> None:
        """Forget the pending ledger (transaction not executed)."""
        self._next, self._new_fills = None, {}

    def _refresh_cash(self, led: Ledger, balances: dict[str, float]) -> None:
        led.balances = dict(balances)
        if self.quote in balances:
            led.cash = float(balances[self.quote])

    # ------------------------------------------------------------------ orders
    async def submit(
        self, order: SubmitOrder, now_ns: int,
    ) -> OrderAccepted | OrderRejected | OrderCancelled:
        """Send a market order with our client order id.

        A reduce-only order is cut to the ledger's opposite position (rejected when
        there is none).  ``VenueRejected`` becomes an :class:`OrderRejected`;
        ``VenueUnavailable`` propagates (outcome unknown).
        """
        w = self._w()
        coid, qty = order.client_order_id, order.quantity
        if order.reduce_only:
            pos = w.position_qty(order.symbol)
            if not pos * order.side.sign < 0:
                reason = f"reduce_only {order.side.value} but position is {pos:.8g}"
                return le.rejected(self.name, coid, order.symbol, reason,
                                   order.correlation_id, now_ns)
            qty = min(qty, abs(pos))
        try:
            found = await self.client.place_market_order(coid, order.symbol, order.side, qty)
        except VenueRejected as exc:
            return le.rejected(self.name, coid, order.symbol, str(exc),
                               order.correlation_id, now_ns)
        return self.adopt(order, found, now_ns)  # type: ignore[return-value]

    def adopt(self, order: SubmitOrder, found: VenueOrder, now_ns: int) -> VenueEvent:
        """Take over ``found`` (the venue's record of ``order``) without sending anything:
        the ledger tracks it (its fills come by :meth:`poll`) and the event reports it."""
        w = self._w()
        prev = w.orders.get(order.client_order_id)
        o = LedgerOrder(
            client_order_id=order.client_order_id, symbol=found.symbol, side=found.side,
            quantity=found.quantity, filled=prev.filled if prev is not None else 0.0,
            status=found.status.value, venue_order_id=found.venue_order_id,
            reduce_only=order.reduce_only, stop_loss=order.stop_loss,
            take_profit=order.take_profit, correlation_id=order.correlation_id,
            bar_seq=order.bar_seq, exit_reason=prev.exit_reason if prev is not None else None,
        )
        w.orders[o.client_order_id] = o
        return le.status_event(self.name, o, found.reason, now_ns)

    async def fetch_order(self, client_order_id: str, symbol: str) -> VenueOrder | None:
        """The venue's record of ``client_order_id`` (``None``: definitely unknown)."""
        return await self.client.fetch_order(client_order_id, symbol)

    def fill_status(self, client_order_id: str) -> OrderStatus:
        """``FILLED`` once the ledger saw the whole quantity filled, else
        ``PARTIALLY_FILLED`` (``FILLED`` for an order the ledger does not track)."""
        o = self._cur.orders.get(client_order_id)
        if o is None or o.complete:
            return OrderStatus.FILLED
        return OrderStatus.PARTIALLY_FILLED

    async def _own_order(
        self, w: Ledger, coid: str, symbol: str, side: Side, qty: float, *,
        reason: ExitReason, corr: str, bar_seq: int, now: int,
    ) -> VenueEvent:
        try:
            found = await le.place_once(self.client, coid, symbol, side, qty)
        except VenueRejected as exc:
            return le.rejected(self.name, coid, symbol, str(exc), corr, now)
        prev = w.orders.get(coid)
        o = LedgerOrder(
            client_order_id=coid, symbol=symbol, side=side, quantity=found.quantity,
            filled=prev.filled if prev is not None else 0.0, status=found.status.value,
            venue_order_id=found.venue_order_id, reduce_only=True, correlation_id=corr,
            bar_seq=bar_seq, exit_reason=reason,
        )
        w.orders[coid] = o
        return le.status_event(self.name, o, found.reason, now)

    async def open_orders(self) -> list[str]:
        """Client order ids of the venue's working orders (ours and external)."""
        return [o.client_order_id for o in await self.client.fetch_open_orders(None)]

    async def open_venue_orders(self) -> list[VenueOrder]:
        """The venue's working orders (ours and external)."""
        return list(await self.client.fetch_open_orders(None))

    async def cancel_all(self, reason: str, now_ns: int) -> list[OrderCancelled]:
        """Cancel every working order at the venue (ours and external)."""
        w = self._w()
        events: list[OrderCancelled] = []
        for vo in await self.client.fetch_open_orders(None):
            try:
                final = await self.client.cancel_order(vo.client_order_id, vo.symbol)
            except VenueRejected as exc:  # e.g. filled meanwhile: reported as left over
                log.warning("cancel of %s refused: %s", vo.client_order_id, exc)
                continue
            o = w.orders.get(vo.client_order_id)
            if o is not None:
                w.orders[o.client_order_id] = o.model_copy(update={"status": final.status.value})
                self._drop_pending_exit(w, o.client_order_id)
            if final.status is OrderStatus.CANCELLED:
                corr = o.correlation_id if o is not None else ""
                events.append(le.cancelled(self.name, vo.client_order_id, vo.symbol, reason, corr,
                                              now_ns))
        return events

    async def flatten(self, now_ns: int, command_id: str) -> list[VenueEvent]:
        """Close every position the venue reports with a market order (client order id
        from ``command_id`` + symbol, sent at most once), then fetch the fills."""
        w = self._w()
        events: list[VenueEvent] = []
        for sym, qty in sorted((await self.client.fetch_positions()).items()):
            if qty == 0:
                continue
            side = Side.SELL if qty > 0 else Side.BUY
            events.append(await self._own_order(
                w, lg.flatten_coid(command_id, sym), sym, side, abs(qty),
                reason=ExitReason.FLATTEN, corr=command_id,
                bar_seq=w.last_bar_seq.get(sym, 0), now=now_ns))
        events += await self._poll(w, None, now_ns)
        return events

    # ------------------------------------------------------------------ positions
    async def positions(self) -> dict[str, float]:
        """The venue's signed positions (base units), flat ones omitted."""
        return {s: q for s, q in (await self.client.fetch_positions()).items() if q}

    def book_positions(self) -> dict[str, BookPosition]:
        """The ledger's positions (flat ones omitted)."""
        return {s: BookPosition(p.quantity, p.avg_price, p.realized_pnl)
                for s, p in self._cur.positions.items() if p.quantity}

    async def sync_positions(self, now_ns: int) -> list[PositionFix]:
        """Set every ledger position that differs from the venue's to the venue's."""
        w = self._w()
        venue = await self.client.fetch_positions()
        held = {s for s, p in w.positions.items() if p.quantity}
        fixes = []
        for sym in sorted(set(venue) | held):
            before, after = w.position_qty(sym), float(venue.get(sym, 0.0))
            if lg.same_quantity(before, after):
                continue
            fixes.append(PositionFix(sym, before, after,
                                     lg.set_position(w, sym, after, self.name, now_ns)))
        return fixes

    # ------------------------------------------------------------------ fills
    async def fills_of(self, client_order_ids: Collection[str]) -> list[OrderFilled]:
        """Fills the ledger applied for these orders, oldest first."""
        want = set(client_order_ids)
        raw = await self.redis.hvals(self.keys[2])
        fills = {f.fill_id: f for f in (OrderFilled.model_validate_json(r) for r in raw)
                 if f.client_order_id in want}
        fills.update({k: f for k, f in self._new_fills.items() if f.client_order_id in want})
        return sorted(fills.values(), key=lambda f: (f.fill_time, f.fill_id))

    async def poll(self, now_ns: int, since_ns: int | None = None) -> list[VenueEvent]:
        """New fills and order updates; skipped (``[]``, no venue call) when no order is
        working and no ``since_ns`` is given (fills of external orders come with bars)."""
        if since_ns is None and not any(o.working for o in self._cur.orders.values()):
            return []
        return await self._poll(self._w(), since_ns, now_ns)

    async def _poll(self, w: Ledger, since_ns: int | None, now: int) -> list[VenueEvent]:
        start = w.fill_cursor_ns - FILL_OVERLAP_NS
        if since_ns is not None:
            start = min(start, since_ns)
        symbols = set(self.symbols) | {s for s, p in w.positions.items() if p.quantity}
        symbols |= {o.symbol for o in w.orders.values() if o.working}
        fills = await self.client.fetch_fills(sorted(symbols), max(start, 0))
        events: list[VenueEvent] = []
        for vf in sorted(fills, key=lambda f: (f.time_ns, f.fill_id)):
            evs, _ = lg.apply_fill(w, vf, self.name)
            for ev in evs:
                if isinstance(ev, OrderFilled):
                    self._new_fills[ev.fill_id] = ev
            events += evs
        for o in [o for o in w.orders.values() if o.working]:
            found = await self.client.fetch_order(o.client_order_id, o.symbol)
            if found is None:
                continue
            if found.status in (OrderStatus.CANCELLED, OrderStatus.REJECTED):
                o = o.model_copy(update={"status": found.status.value})
                w.orders[o.client_order_id] = o
                self._drop_pending_exit(w, o.client_order_id)
                events.append(le.status_event(self.name, o, found.reason, now))
            elif found.status.value != o.status:
                w.orders[o.client_order_id] = o.model_copy(update={"status": found.status.value})
        return events

    @staticmethod
    def _drop_pending_exit(w: Ledger, coid: str) -> None:
        for sym, p in w.positions.items():
            if p.exit_coid == coid:
                w.positions[sym] = p.model_copy(update={"exit_coid": ""})

    # ------------------------------------------------------------------ bars
    async def on_bar(self, bar: BarClosed) -> list[VenueEvent]:
        """Day roll, fills and balances (once per bar time), mark, bracket check.

        A bar whose seq is not above the last one of its symbol changes nothing.
        Raises ``VenueUnavailable`` (the agent retries the bar).
        """
        w = self._w()
        sym = bar.symbol
        if bar.seq <= w.last_bar_seq.get(sym, -1):
            return []
        lg.roll_day(w, bar.open_time)
        events: list[VenueEvent] = []
        if bar.open_time > self._synced_bar_time:
            events += await self._poll(w, None, bar.open_time)
            self._refresh_cash(w, await self.client.fetch_balances())
        w.marks[sym] = bar.close
        w.last_bar_seq[sym] = bar.seq
        w.last_bar_time = max(w.last_bar_time, bar.open_time)
        pos = w.positions.get(sym)
        hit = lg.bracket_hit(pos, bar.high, bar.low) if pos is not None else None
        if pos is not None and hit is not None:
            entry = pos.entry_coid or f"{sym}@{bar.seq}"
            coid = lg.exit_coid(self.name, entry, hit)
            side = Side.SELL if pos.quantity > 0 else Side.BUY
            ev = await self._own_order(
                w, coid, sym, side, abs(pos.quantity), reason=hit, corr=pos.correlation_id,
                bar_seq=bar.seq, now=bar.open_time)
            if not isinstance(ev, OrderRejected):
                w.positions[sym] = w.positions[sym].model_copy(update={"exit_coid": coid})
            events.append(ev)
        self._synced_bar_time = max(self._synced_bar_time, bar.open_time)
        return events

    def portfolio(self, bar: BarClosed) -> PortfolioMarked:
        """Account state after ``bar``."""
        return lg.portfolio_mark(self._cur, bar.seq, bar.open_time, self.name)

    def current_mark(self) -> PortfolioMarked | None:
        """Account state at the last marks (``None`` before any bar)."""
        cur = self._cur
        if not cur.last_bar_seq:
            return None
        return lg.portfolio_mark(cur, max(cur.last_bar_seq.values()), cur.last_bar_time,
                                 self.name)
